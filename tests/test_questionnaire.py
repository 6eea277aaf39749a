"""The built-in questionnaire: Big Five battery (bfi) and GSS abortion checklist, end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.instruments import SurveyConfig, load_instrument
from simsurvey.instruments.models import Option, Question
from simsurvey.reference import load_reference
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.prompts import render_question

INSTRUMENT = load_instrument(PROJECT_ROOT / "surveys" / "questionnaire.yaml")


def test_instrument_battery_and_multi_select() -> None:
    assert INSTRUMENT.batteries == {"agreeableness": ("A1", "A2", "A3", "A4", "A5")}
    assert [q.reverse_keyed for q in INSTRUMENT.questions[:5]] == [True, False, False, False, False]
    ref = load_reference(INSTRUMENT, SurveyConfig(instrument="surveys/questionnaire.yaml",
                                                  reference=["bfi", "gss_abortion"]))
    raw = pd.read_parquet(PROJECT_ROOT / "surveys" / "reference" / "bfi.parquet")
    assert (ref.question_id == "A1").sum() == raw["A1"].notna().sum()
    ab = ref[ref.question_id == "abortion_legal"]
    assert len(ab) == 1386 and ab["respondent_id"].str.startswith("2018-").all()


def test_a_battery_item_shows_the_stem_above_its_text() -> None:
    q = INSTRUMENT.question("A3")
    text = render_question(q, q.codes, "letters", PromptConfig())
    assert text.startswith(q.stem.strip() + "\n\nKnow how to comfort others.")
    plain = Question(id="p", kind="ordinal", text="Plain?", options=(Option(code="a", label="A"), Option(code="b", label="B")))
    assert render_question(plain, plain.codes, "letters", PromptConfig()).startswith("Plain?\n\n")


@pytest.mark.slow
def test_questionnaire_runs_end_to_end_on_the_baselines(tmp_path) -> None:
    # The embedded model is slow on this CPU; the baselines run the same pipeline in seconds.
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([sys.executable, "-m", "simsurvey", "+experiment=questionnaire", "model=baseline/reference",
                           f"hydra.run.dir={tmp_path}"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    r = pd.read_parquet(tmp_path / "responses.parquet")
    items = r[r.persona_id.notna() & r.question_id.isin(["A1", "A2", "A3", "A4", "A5"])]
    # Sequential questionnaire with randomized item order: every persona's items take positions 0..4.
    pos = items[items.model == "baseline/reference"].groupby("persona_id")["item_position"].apply(sorted)
    assert all(p == [0, 1, 2, 3, 4] for p in pos)
    assert items["previous_question"].notna().any()
    orders = items[items.model == "baseline/reference"].sort_values("item_position").groupby("persona_id")[
        "question_id"].apply(tuple)
    assert orders.nunique() > 1  # randomized, not fixed
    m = pd.read_parquet(tmp_path / "metrics.parquet")
    for metric in ("cronbach_alpha_human", "cronbach_alpha_diff", "inter_item_corr_mad"):
        assert ((m.metric == metric) & (m.question_id == "agreeableness")).any(), metric
    human = m[(m.metric == "cronbach_alpha_human") & (m.question_id == "agreeableness")]["value"].iloc[0]
    assert human == pytest.approx(0.70, abs=0.01)  # psych::bfi agreeableness (adults, complete cases)
    scale = m[(m.question_id == "agreeableness") & (m.group_var == "all") & (m.model == "baseline/reference")]
    scale = scale.set_index("metric")
    assert {"scale_mean_diff", "scale_variance_ratio", "scale_ks"} <= set(scale.index)
    assert 4.4 < scale.loc["scale_mean_human", "value"] < 4.9  # psych::bfi agreeableness: mean about 4.65
    rates = m[(m.metric == "selection_rate_human") & (m.question_id == "abortion_legal")]
    assert set(rates.group_value) == {"defect", "nomore", "health", "poor", "rape", "single", "any"}
    html = (tmp_path / "report.html").read_text()
    assert "Batteries and multi-select questions" in html and "Battery agreeableness" in html
    assert "Scale scores of agreeableness" in html
