"""The one respondent interface: a backend takes a batch of requests, returns results in order.

Exception hierarchy::

    BackendError           a backend failed on a request
    ├── RetryableError     429 / 5xx / timeout / connection reset: the runner retries with
    │                      backoff (honouring ``retry_after`` when the server gave one)
    ├── UnreachableError   connection refused, unknown host: nothing is listening, so waiting
    │                      does not help; the row keeps the error at once (no retries) and the
    │                      runner's circuit breaker stops a run whose calls keep failing
    └── FatalBackendError  bad credentials, unknown model, invalid URL, missing optional
                           dependency: the run stops (a user error if the config caused it)

A failure of one request that another request would not have (a 400 from a content filter, a
prompt longer than the context window) is neither: it is returned as ``Result(error=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Elicitation = Literal["logprobs", "sample", "both"]


@dataclass(frozen=True)
class Request:
    """One call to a respondent.

    Attributes:
        messages: Chat messages (``{"role": ..., "content": ...}``); the persona text comes
            first so providers' prefix caches (and the local backend's KV cache) can reuse it.
        labels: The answer labels as displayed, in display order ("A", "B", ... or "1", "2", ...
            or the option texts); logprob elicitation returns one probability per label.
        elicitation: ``logprobs`` (distribution over labels from next-token probabilities),
            ``sample`` (generated text, parsed), or ``both``.
        temperature: Sampling temperature for ``sample``.
        max_tokens: Generation cap for ``sample``.
        seed: Per-request sampling seed (derived from the run seed and the row key).
        prefix_key: Identifies the shared prefix (persona) so a backend can reuse its KV cache.
        context: What non-LLM backends (baselines) answer from: ``question_id``, ``option_order``
            (canonical codes in display order), ``persona`` (dict of demographic codes or None).
            Not part of the cache key: everything an LLM sees is in ``messages``.
    """

    messages: tuple[dict[str, str], ...]
    labels: tuple[str, ...]
    elicitation: Elicitation = "sample"
    temperature: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    prefix_key: str | None = None
    context: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Result:
    """What a backend returned for one request.

    Attributes:
        text: Generated text (``sample``/``both``), else None.
        label_probs: One probability per displayed label, renormalized over the labels
            (``logprobs``/``both``), else None.
        missing_mass: Probability mass that fell outside the labels before renormalizing.
        prompt_tokens / completion_tokens: Token counts when known.
        cost_usd: Cost of the call when known (litellm's cost map), 0 for local backends.
        latency_s: Wall time of the call.
        error: Set when the call failed for good; the row is kept with ``valid=False``.
        top_tokens: The first generated position's ``(token, logprob)`` pairs as the server
            listed them (logprob elicitation), so an answer without mass on the labels can be
            read; None when the backend gives none.
        extra: Backend-specific details (not part of the contract).
    """

    text: str | None = None
    label_probs: tuple[float, ...] | None = None
    missing_mass: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float = 0.0
    error: str | None = None
    extra: dict = field(default_factory=dict)
    top_tokens: tuple[tuple[str, float], ...] | None = None


class BackendError(Exception):
    """A backend failed on a request."""


class RetryableError(BackendError):
    """A transient failure (429, 5xx, timeout): retry, after ``retry_after`` seconds if given."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnreachableError(BackendError):
    """The server cannot be reached (connection refused, unknown host): not worth retrying."""


class FatalBackendError(BackendError):
    """A failure retrying cannot fix (auth, unknown model, missing dependency)."""


@runtime_checkable
class Backend(Protocol):
    """A respondent backend.

    ``generate`` is the one required method. It returns one :class:`Result` per request, in
    order. A failure of a single request may be returned as ``Result(error=...)``; a transient
    failure of the whole call raises :class:`RetryableError`.
    """

    #: Model id recorded on every response row.
    name: str
    #: True when the same request always gives the same result (cacheable as such).
    deterministic: bool
    #: How many requests one ``generate`` call takes at most (the runner batches consecutive
    #: requests of the same persona up to this size; 1 for HTTP backends).
    batch_size: int

    async def generate(self, requests: Sequence[Request]) -> list[Result]: ...
