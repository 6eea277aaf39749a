"""The batch executor: a run's calls through providers' batch APIs (``runner.executor: batch``).

See :mod:`simsurvey.runner.batch._drive` for the rounds (defer, submit, poll, collect),
:mod:`._jsonl` for the request file, :mod:`._state` for ``state.json`` and :mod:`._providers` for
the OpenAI-family (litellm), Anthropic and file (``vllm run-batch``) clients.
"""

from simsurvey.runner.batch._drive import drive

__all__ = ["drive"]
