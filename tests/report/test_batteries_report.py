"""The battery section's scale-score panel: the rule, the ECDFs of the scores, the scale_* table."""

from __future__ import annotations

import json
import sys
from importlib import util

import numpy as np

from simsurvey import analyze
from simsurvey.analysis import AnalysisConfig
from simsurvey.config import PROJECT_ROOT
from simsurvey.report import render_report
from simsurvey.report._batteries import scale_score_series
from simsurvey.report._context import Ctx
from simsurvey.report._data import load_run
from simsurvey.report.config import ReportConfig


def _cal():
    spec = util.spec_from_file_location("calibrate_scale", PROJECT_ROOT / "benchmarks" / "calibrate_scale.py")
    mod = util.module_from_spec(spec)
    sys.modules.setdefault("calibrate_scale", mod)
    spec.loader.exec_module(mod)
    return sys.modules["calibrate_scale"]


def _run(tmp_path, min_share: float = 1.0):
    cal = _cal()
    responses, reference, personas, inst = cal.simulate(cal.Cell("cluster", 40, 200, "shift", 1), seed=3)
    # one persona-replicate with an unanswered item: no score under the default rule
    first = responses.index[(responses.persona_id == 0) & (responses.replicate == 0)][0]
    responses.loc[first, ["valid", "answer_code"]] = [False, None]
    cfg = AnalysisConfig(group_vars=[], bootstrap=20, null_draws=20, n_permutations=0, pairs=False,
                         scale_min_share=min_share)
    res = analyze(responses, reference, personas, inst, cfg, seed=0)
    for name, frame in (("responses", responses), ("reference", reference), ("personas", personas),
                        ("metrics", res.metrics), ("order_effects", res.order_effects)):
        frame.to_parquet(tmp_path / f"{name}.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"config": {"analysis": {"scale_min_share": min_share}}}))
    return inst, res


def test_battery_section_shows_the_scale_score_comparison(tmp_path) -> None:
    inst, _ = _run(tmp_path)
    html = render_report(tmp_path, instrument=inst).read_text()
    section = html[html.index('id="batteries"'):]
    section = section[:section.index("</section>")]
    assert "Scale scores of b0" in section and "scale_mean_diff" in section and "scale_variance_ratio" in section
    assert "fewer than 5 of the 5 items answered" in section and "(b0_i0) reflected (7 − x)" in section
    assert (tmp_path / "figures" / "battery_scale_b0.svg").exists()
    assert "could not be drawn" not in html


def test_the_panel_scores_the_units_the_analyzer_scored(tmp_path) -> None:
    inst, res = _run(tmp_path)
    ctx = Ctx(load_run(tmp_path, inst), ReportConfig())
    series = scale_score_series(ctx, "b0", inst.batteries["b0"], 1.0)
    m = res.metrics[(res.metrics.question_id == "b0") & (res.metrics.group_var == "all")].set_index("metric")
    s, w = series["sim"]
    assert len(s) == m.loc["scale_mean_silicon", "n_silicon"] == 40 * 3 - 1
    assert np.isclose(np.average(s, weights=w), m.loc["scale_mean_silicon", "value"])
    h, wh = series["human"]
    assert len(h) == m.loc["scale_mean_human", "n_human"] == 200
    assert np.isclose(np.average(h, weights=wh), m.loc["scale_mean_human", "value"])


def test_the_panel_follows_the_runs_scale_min_share(tmp_path) -> None:
    inst, res = _run(tmp_path, min_share=0.6)
    html = render_report(tmp_path, instrument=inst).read_text()
    assert "fewer than 3 of the 5 items answered" in html and "scale_min_share = 0.6" in html
    ctx = Ctx(load_run(tmp_path, inst), ReportConfig())
    s, _ = scale_score_series(ctx, "b0", inst.batteries["b0"], 0.6)["sim"]
    row = res.metrics[(res.metrics.question_id == "b0") & (res.metrics.metric == "scale_mean_silicon")
                      & (res.metrics.group_var == "all")].iloc[0]
    assert len(s) == row.n_silicon == 40 * 3  # the persona-replicate with 4 of 5 items now has a score
