"""Numeric questions through the runner: answer_value, bin codes, invalid rows, baselines, logprobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runner_data import make_personas

from simsurvey import build_design, load_instrument
from simsurvey.errors import UserError
from simsurvey.instruments.config import DesignConfig, SurveyConfig
from simsurvey.instruments.models import Instrument, NumericScale, Option, Question
from simsurvey.reference import load_reference
from simsurvey.respondents.base import Result
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

THERMS = "surveys/thermometers.yaml"


def _runner(tmp_path: Path) -> RunnerConfig:
    return RunnerConfig(concurrency=2, cache_dir=str(tmp_path / "cache"), flush_every=50, flush_seconds=0.2)


class Scripted:
    """Answers the i-th request of a question with texts[i] (or label_probs)."""

    def __init__(self, texts=None, probs=None) -> None:
        self.name, self.deterministic, self.batch_size = "scripted", True, 1
        self.texts, self.probs, self.seen = texts, probs, []

    async def generate(self, requests):
        out = []
        for r in requests:
            i = int(r.context["persona"]["i"]) if r.context.get("persona") else 0
            self.seen.append(r)
            if self.probs is not None:
                out.append(Result(label_probs=tuple(self.probs[i % len(self.probs)]), missing_mass=0.0))
            else:
                out.append(Result(text=self.texts[i % len(self.texts)]))
        return out


def _trials(inst: Instrument, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    personas = make_personas(n)
    trials = build_design(personas, inst, DesignConfig(no_persona=False), seed=3)
    return personas, trials


def test_design_gives_a_numeric_question_one_condition() -> None:
    inst = load_instrument(THERMS)
    _, trials = _trials(inst, 6)
    assert set(trials["condition_id"]) == {"as_is|value"}
    assert len(trials) == 12  # 6 personas x 2 questions, whatever the orders and labels


SCRIPT = [("70", 70.0, "70-80", True, None), ("about seventy-five degrees", 75.0, "70-80", True, None),
          ("I'd say 100.", 100.0, "90-100", True, None), ("150", None, None, False, "out_of_range"),
          ("Don't know", None, "dk", True, None), ("60 or 70", None, None, False, "ambiguous"),
          ("As an AI, I can't answer that.", None, None, False, "refusal"), ("0", 0.0, "0-10", True, None)]


def test_text_answers_fill_answer_value_and_the_bin_code(tmp_path: Path, monkeypatch) -> None:
    inst = load_instrument(THERMS)
    n = len(SCRIPT)
    personas, trials = _trials(inst, n)
    personas["i"] = np.arange(n)
    backend = Scripted(texts=[s[0] for s in SCRIPT])
    res = administer(trials, personas, inst, model=ModelConfig(backend="litellm", name="scripted", elicitation="sample"),
                     prompt=PromptConfig(), runner=_runner(tmp_path), run_dir=tmp_path / "run", seed=1,
                     progress=False, backend=backend)
    f = res.frame[res.frame["question_id"] == "therm_dem"].sort_values("persona_id")
    for (_, row), (text, value, code, valid, reason) in zip(f.iterrows(), SCRIPT):
        assert row["raw_text"] == text
        assert (None if pd.isna(row["answer_value"]) else row["answer_value"]) == value, text
        assert (None if pd.isna(row["answer_code"]) else row["answer_code"]) == code, text
        assert bool(row["valid"]) == valid and (None if pd.isna(row["invalid_reason"]) else row["invalid_reason"]) == reason
    # The prompt names the range and the don't-know option, and lists no options.
    body = backend.seen[0].messages[-1]["content"]
    assert "Answer with a whole number from 0 to 100 degrees, or say \"Don't know\"." in body
    assert "A." not in body and backend.seen[0].labels == ()


def test_logprobs_are_refused_for_a_wide_scale(tmp_path: Path) -> None:
    inst = load_instrument(THERMS)
    personas, trials = _trials(inst, 2)
    with pytest.raises(UserError, match=r"model.elicitation: 'logprobs' cannot answer numeric question 'therm_dem'"):
        administer(trials, personas, inst, model=ModelConfig(backend="litellm", name="x", elicitation="logprobs"),
                   prompt=PromptConfig(), runner=_runner(tmp_path), run_dir=tmp_path / "run", seed=1,
                   progress=False, backend=Scripted(texts=["1"]))


def test_logprobs_on_a_small_scale_read_the_values(tmp_path: Path, monkeypatch) -> None:
    q = Question(id="lr", text="Where would you place yourself, 0 = left, 10 = right?", kind="numeric",
                 scale=NumericScale(min=0, max=10), options=(Option(code="dk", label="Don't know", non_substantive=True),))
    inst = Instrument(id="lr", title="lr", questions=(q,))
    personas, trials = _trials(inst, 3)
    personas["i"] = np.arange(3)
    probs = [np.eye(11)[7] * 0.6 + 0.4 / 11, np.eye(11)[0] * 0.9 + 0.1 / 11, np.full(11, 1 / 11)]
    backend = Scripted(probs=probs)
    res = administer(trials, personas, inst, model=ModelConfig(backend="litellm", name="x", elicitation="logprobs"),
                     prompt=PromptConfig(), runner=_runner(tmp_path), run_dir=tmp_path / "run", seed=1,
                     progress=False, backend=backend)
    assert backend.seen[0].labels == tuple(str(i) for i in range(11))
    f = res.frame.sort_values("persona_id")
    assert f["answer_value"].tolist() == [7.0, 0.0, 0.0]  # a tie goes to the first value
    assert f["answer_code"].tolist() == ["7", "0", "0"]
    assert sorted(f["probs"].iloc[0]) == sorted(q.substantive_codes)
    assert f["probs"].iloc[0]["7"] == pytest.approx(0.6 + 0.4 / 11)


@pytest.mark.parametrize("kind", ["uniform", "majority", "reference"])
def test_baselines_answer_numeric_questions(tmp_path: Path, kind: str) -> None:
    inst = load_instrument(THERMS)
    ref = load_reference(inst, SurveyConfig(instrument=THERMS, reference=["anes_partytherms"]))
    personas, trials = _trials(inst, 40)
    res = administer(trials, personas, inst, model=ModelConfig(backend=f"baseline/{kind}", name=f"baseline/{kind}",
                                                               elicitation="sample"),
                     prompt=PromptConfig(), runner=_runner(tmp_path), run_dir=tmp_path / "run", seed=1,
                     progress=False, reference=ref)
    f = res.frame
    assert f["valid"].all() and f["answer_value"].notna().all()
    q = inst.question("therm_dem")
    assert all(q.bin_code(v) == c for v, c in zip(f["answer_value"], f["answer_code"]))
    dem = f[f["question_id"] == "therm_dem"]["answer_value"]
    human = ref[ref["question_id"] == "therm_dem"]["answer_value"]
    if kind == "majority":
        assert set(dem) == {float(human.value_counts().idxmax())}  # the modal human rating (50)
    elif kind == "reference":
        assert set(dem) <= set(human) and dem.nunique() > 3
    else:
        assert dem.between(0, 100).all() and (dem % 1 == 0).all() and dem.nunique() > 15
