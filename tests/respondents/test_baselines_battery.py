"""The reference baseline answers a battery as one human respondent per persona."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
from scipy import stats

from simsurvey.instruments.models import Option, Question
from simsurvey.respondents.baselines import ReferenceBackend
from simsurvey.respondents.config import ModelConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.prompts import render_request

OPTS = tuple(Option(code=str(i), label=f"level {i}") for i in range(1, 5))
ITEMS = [Question(id=f"b{j}", text=f"Item {j}", kind="ordinal", options=OPTS, battery="bat", stem="How true?")
         for j in range(3)]


def _reference(n: int = 40) -> pd.DataFrame:
    # Respondent i answers every item with the same level: perfectly consistent humans.
    rows = [{"source": "s", "respondent_id": str(i), "weight": float(1 + i % 3), "sex": "female" if i % 2 else "male",
             "question_id": q.id, "answer_code": str(1 + i % 4)} for i in range(n) for q in ITEMS]
    return pd.DataFrame(rows)


def _answers(backend: ReferenceBackend, persona_key: str, sex: str, elicitation: str = "sample") -> list:
    reqs = [render_request(cue="x", question=q, option_order=q.codes, label_style="letters", prompt=PromptConfig(),
                           model=ModelConfig(backend="baseline/reference", name="r", elicitation=elicitation),
                           seed=j, prefix_key=persona_key, context={"persona": {"sex": sex}})
            for j, q in enumerate(ITEMS)]
    return asyncio.run(backend.generate(reqs))


def test_a_persona_answers_every_item_as_one_respondent() -> None:
    b = ReferenceBackend(ModelConfig(backend="baseline/reference", name="r", elicitation="sample"),
                         reference=_reference(), seed=7)
    texts, who = set(), set()
    for p in range(30):
        res = _answers(b, f"persona-{p}", "female" if p % 2 else "male")
        assert len({r.text for r in res}) == 1  # the same level on every item, as the respondent gave
        assert len({r.extra["battery_respondent"] for r in res}) == 1
        texts.add(res[0].text)
        who.add(res[0].extra["battery_respondent"])
        assert all(r.extra["match_vars"] == ["sex"] for r in res)
    assert len(texts) > 1 and len(who) > 5  # different personas get different respondents
    # Logprob elicitation: the respondent's answer, one-hot.
    res = _answers(b, "persona-0", "male", elicitation="logprobs")
    assert all(sorted(r.label_probs) == [0.0, 0.0, 0.0, 1.0] for r in res)


def test_the_respondent_is_drawn_in_proportion_to_weight() -> None:
    ref = _reference(6)
    b = ReferenceBackend(ModelConfig(backend="baseline/reference", name="r", elicitation="sample", params={"min_cell": 1}),
                         reference=ref.assign(sex="female"), seed=3)
    counts = np.zeros(6)
    for p in range(3000):
        counts[_answers(b, f"p{p}", "female")[0].extra["battery_respondent"]] += 1
    w = np.array([1.0 + i % 3 for i in range(6)])
    assert stats.chisquare(counts, counts.sum() * w / w.sum()).pvalue > 0.001
