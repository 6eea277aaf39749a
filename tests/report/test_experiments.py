"""The survey-experiments section and the summary's headline, on a small run with a known effect."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from simsurvey.analysis import AnalysisConfig, analyze
from simsurvey.instruments.load import parse_instrument
from simsurvey.io import write_parquet
from simsurvey.report import render_report
from simsurvey.report._experiments import agreement_line
from simsurvey.report._render import SECTION_FAILED
from simsurvey.summary import experiment_lines, print_summary

INST = parse_instrument({
    "id": "hc", "title": "hc",
    "questions": [{"id": "mandate", "kind": "single_choice", "text": "Approve?",
                   "options": [{"code": "approve", "label": "Approve"}, {"code": "disapprove", "label": "Disapprove"}]}],
    "experiments": [{"id": "mandate_order", "description": "Statement order.", "arms": [
        {"id": "help_second", "questions": {"mandate": {"text": "Penalty, then help?"}}},
        {"id": "penalty_second", "questions": {"mandate": {"text": "Help, then penalty?"}}}]}],
}, name="hc.yaml")


def _run(tmp_path, *, with_experiments: bool = True):
    rng = np.random.default_rng(1)
    n = 300
    arm = np.where(np.arange(n) % 2 == 0, "help_second", "penalty_second")
    ans = np.where(rng.random(n) < np.where(arm == "help_second", 0.6, 0.3), "approve", "disapprove")
    personas = pd.DataFrame({"persona_id": np.arange(n), "weight": 1.0, "cue": "x"})
    responses = pd.DataFrame({"persona_id": pd.array(np.arange(n), dtype="Int64"), "question_id": "mandate",
                              "condition_id": [f"as_is|letters|arm:{a}" for a in arm], "replicate": 0,
                              "model": "m", "answer_code": ans, "valid": True, "refusal": False,
                              "experiment": "mandate_order", "arm": arm})
    h_arm = np.repeat(["help_second", "penalty_second"], 500)
    h_ans = np.where(rng.random(1000) < np.where(h_arm == "help_second", 0.49, 0.35), "approve", "disapprove")
    reference = pd.DataFrame({"source": "h", "respondent_id": np.arange(1000).astype(str), "weight": 1.0,
                              "question_id": "mandate", "answer_code": h_ans, "experiment": "mandate_order",
                              "arm": h_arm})
    inst = INST if with_experiments else INST.model_copy(update={"experiments": ()})
    res = analyze(responses, reference, personas, inst, AnalysisConfig(group_vars=[], bootstrap=50, null_draws=50,
                                                                        n_permutations=100), seed=1)
    for name, df in (("personas", personas), ("responses", responses), ("reference", reference),
                     ("metrics", res.metrics), ("order_effects", res.order_effects)):
        write_parquet(df, tmp_path / f"{name}.parquet", kind=name)
    if with_experiments:
        write_parquet(res.treatment_effects, tmp_path / "treatment_effects.parquet", kind="treatment_effects")
    return inst, res.treatment_effects


def test_the_section_shows_silicon_and_human_effects_side_by_side(tmp_path) -> None:
    inst, te = _run(tmp_path)
    html = render_report(tmp_path, instrument=inst).read_text(encoding="utf-8")
    assert SECTION_FAILED not in html and 'id="experiments"' in html
    sec = html[html.index('id="experiments"'):]
    assert 'aria-label="treatment effects of mandate_order"' in sec  # the figure
    assert (tmp_path / "figures" / "treatment_effects_mandate_order.svg").exists()
    row = te[(te.statistic == "share") & (te.option == "approve")].iloc[0]
    # The agreement line quotes both effects as the table has them.
    line = agreement_line(te[te.model == "m"])
    assert f"silicon {row.silicon:.3f} vs human {row.human:.3f}" in line and "same sign" in line
    assert "mandate penalty_second (share of approve)" in line
    assert f"{row.silicon:.3f} [{row.silicon_low:.3f}, {row.silicon_high:.3f}]" in sec


def test_no_experiments_no_section_and_no_missing_file_note(tmp_path) -> None:
    inst, _ = _run(tmp_path, with_experiments=False)
    html = render_report(tmp_path, instrument=inst).read_text(encoding="utf-8")
    assert 'id="experiments"' not in html and "treatment_effects.parquet" not in html
    assert experiment_lines(tmp_path) == []


def test_the_summary_prints_the_headline(tmp_path) -> None:
    _inst, te = _run(tmp_path)
    lines = experiment_lines(tmp_path)
    row = te[(te.statistic == "share") & (te.option == "approve")].iloc[0]
    assert lines[0].startswith("m · mandate_order · mandate: penalty_second vs help_second (share approve): "
                               f"silicon {row.silicon:+.3f} [{row.silicon_low:+.3f}, {row.silicon_high:+.3f}] "
                               f"vs human {row.human:+.3f}")
    assert "same sign" in lines[0] and f"(p={row.diff_p:.3f})" in lines[0]
    assert "correlation of silicon with human effects over 1 effects" in lines[-1]
    assert "low_information" in lines[-1]
    buf = io.StringIO()
    print_summary(tmp_path, file=buf)
    assert "survey experiments" in buf.getvalue() and lines[0][:60] in buf.getvalue()


@pytest.mark.parametrize("what", ["share", "mean"])
def test_agreement_line_without_human_arms(what) -> None:
    te = pd.DataFrame([{"statistic": what, "question_id": "q", "arm": "a", "option": "x", "human": np.nan}])
    assert agreement_line(te).startswith("no human effect")
