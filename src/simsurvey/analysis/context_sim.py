"""A scripted respondent with a known question-order effect, and one simulated study through the
public API (the calibration of :mod:`simsurvey.analysis.context`: ``benchmarks/calibrate_context.py``
and the tests).

:class:`PreviousQuestionBackend` answers every question of a sequential conversation at random
(each substantive option with its base probability), except the ``target`` question asked right
after the ``trigger`` question, whose first option gains ``effect`` probability (taken evenly from
the others): an assimilation effect of known size. It reads the previous question from the
conversation itself (the user message before the last), as a model would, so the runner's
history is what carries the effect.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.respondents.base import Request, Result


class PreviousQuestionBackend:
    """A ``Backend`` whose answer to ``target`` depends on whether ``trigger`` was asked just before.

    Args:
        instrument: The instrument (its question texts identify the previous question).
        target: The question whose answers move.
        trigger: The question that moves them when asked just before ``target``.
        effect: Probability added to ``target``'s first displayed-in-canonical-order option.
    """

    name = "scripted-context"
    deterministic = False
    batch_size = 1

    def __init__(self, instrument: Instrument, *, target: str, trigger: str, effect: float) -> None:
        self.instrument, self.target, self.trigger, self.effect = instrument, target, trigger, effect
        self._by_text = {q.text: q.id for q in instrument.questions}

    def previous_question(self, req: Request) -> str | None:
        """The question asked just before, read from the conversation's user messages."""
        users = [m["content"] for m in req.messages if m["role"] == "user"]
        if len(users) < 2:
            return None
        return next((qid for text, qid in self._by_text.items() if text in users[-2]), None)

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        out = []
        for r in requests:
            codes = list(r.context["substantive_codes"])
            p = np.full(len(codes), 1.0 / len(codes))
            if r.context["question_id"] == self.target and self.previous_question(r) == self.trigger:
                p[0] += self.effect
                p[1:] -= self.effect / (len(codes) - 1)
            rng = np.random.default_rng(r.seed)
            code = codes[int(rng.choice(len(codes), p=p))]
            label = r.labels[list(r.context["option_order"]).index(code)]
            out.append(Result(text=label, cost_usd=0.0))
        return out


def context_instrument(k: int = 4) -> Instrument:
    """Four yes/no-like questions of ``k`` options each (``q0`` ... ``q3``)."""
    def q(i: int) -> Question:
        return Question(id=f"q{i}", text=f"Statement number {i}: how much do you agree?", kind="ordinal",
                        options=tuple(Option(code=str(j), label=f"Level {j}") for j in range(k)))

    return Instrument(id="context-sim", title="Context simulation", questions=tuple(q(i) for i in range(4)))


def simulate_context(*, n_personas: int, effect: float, seed: int, n_permutations: int = 199,
                     replicates: int = 1) -> pd.DataFrame:
    """One simulated sequential study: design, runner and analysis through the public API.

    The ``q1`` answers move by ``effect`` when ``q0`` was asked right before (module docstring);
    question order randomized per conversation, between-persona conditions, no cache.

    Returns:
        The silicon rows of :func:`simsurvey.analysis.context.context_effects`.
    """
    from simsurvey.analysis import AnalysisConfig, context_effects
    from simsurvey.instruments import build_design
    from simsurvey.instruments.config import DesignConfig
    from simsurvey.respondents.config import ModelConfig, RunnerConfig
    from simsurvey.respondents.prompt_config import PromptConfig
    from simsurvey.runner import administer

    inst = context_instrument()
    personas = pd.DataFrame({"persona_id": np.arange(n_personas, dtype=np.int64), "weight": 1.0,
                             "cue": [f"You are respondent {i}." for i in range(n_personas)]})
    design = DesignConfig(context="sequential", question_order="randomized", no_persona=False, replicates=replicates)
    trials = build_design(personas, inst, design, seed=seed)
    backend = PreviousQuestionBackend(inst, target="q1", trigger="q0", effect=effect)
    with tempfile.TemporaryDirectory() as tmp:
        res = administer(trials, personas, inst, model=ModelConfig(backend="local", name=backend.name, elicitation="sample"),
                         prompt=PromptConfig(), runner=RunnerConfig(cache=False, concurrency=8), run_dir=Path(tmp),
                         seed=seed, progress=False, backend=backend)
    return context_effects(res.frame, None, inst, AnalysisConfig(n_permutations=n_permutations), seed=seed)
