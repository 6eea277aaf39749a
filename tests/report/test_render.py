from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from simsurvey.report import render_report
from simsurvey.report._data import load_run
from simsurvey.report._html import fmt_ci
from simsurvey.report._render import SECTION_FAILED
from simsurvey.report._sections import Ctx, _cramers_v_panels, _subgroup_means
from simsurvey.report.config import ReportConfig


def test_full_report(rendered_svg):
    run, out = rendered_svg.parent, rendered_svg
    html = out.read_text(encoding="utf-8")
    assert out.name == "report.html" and out.stat().st_mode & 0o044 == 0o044
    assert SECTION_FAILED not in html
    for anchor in ("overview", "questions", "homogenization", "structure", "order-effects"):
        assert f'id="{anchor}"' in html
    # 3 question bars + 2 ratio plots + means scatter + heatmaps + 1 condition grid (LLM only)
    n_svg = html.count("<svg ")
    assert n_svg == 8 == len(list((run / "figures").glob("*.svg")))
    # self-contained: no scripts, stylesheets or remote resources
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="https?:', html)
    # Markup built from escaped parts is not escaped twice (the per-question verdict line was).
    assert "&lt;b&gt;" not in html and "Silicon = human? (JS" in html
    # Sections of features the instrument does not use are left out.
    assert 'id="numeric"' not in html and 'id="batteries"' not in html and 'id="experiments"' not in html
    # escaped: the instrument's "<political>" and "<other>" never reach the DOM as tags
    assert "&lt;political&gt;" in html and "<political>" not in html and "<other>" not in html
    # numbers from the files appear in the tables
    m = pd.read_parquet(run / "metrics.parquet")
    js = m[(m.metric == "js_divergence") & (m.group_var == "all") & (m.question_id == "pid7")
           & (m.model == "SmolLM2-135M-Instruct")]["value"].iloc[0]
    assert f"{js:.3f}" in html
    assert "python -m simsurvey +experiment=politics design.cue=attributes seed=20261123" in html
    assert "CCES 2016 common content, &lt;online&gt; &amp; opt-in" in html  # provenance from the manifest
    oe = pd.read_parquet(run / "order_effects.parquet")
    g = oe[(oe.model == "SmolLM2-135M-Instruct") & (oe.question_id == "ideo5")]
    summary = html.split("<h4>SmolLM2-135M-Instruct</h4>")[1]
    assert f"{g['js_divergence'].mean():.3f}" in summary and "pairs with p &lt; 0.05" in summary
    assert f"{int((g['p_value'] < 0.05).sum())} / {len(g)}" in summary
    assert "v_religion" in html and "pattern_cramers_v_corr" in html and "subgroup_mean_corr" in html


def test_missing_files_and_instrument_are_reported_not_fatal(make_run_dir, tmp_path):
    run = make_run_dir(tmp_path)
    (run / "metrics.parquet").unlink()
    (run / "order_effects.parquet").unlink()
    html = render_report(run).read_text()  # the manifest names an instrument that does not exist
    assert SECTION_FAILED not in html
    assert "metrics.parquet is missing" in html and "order_effects.parquet is missing" in html
    assert "could not be loaded" in html and "option codes are shown" in html
    assert "very_conservative" in html and "Very conservative" not in html  # codes, not labels
    assert html.count("<svg ") >= 3  # the distributions still draw from responses + reference


def test_empty_run_dir(tmp_path):
    html = render_report(tmp_path).read_text()
    assert SECTION_FAILED not in html and "manifest.json is missing" in html and "<svg" not in html


def test_png_and_max_groups(rendered_png):
    html = rendered_png.read_text()
    assert html.count('src="data:image/png;base64,') == 8 and "<svg" not in html
    assert "Only the 2 largest subgroups are drawn." in html
    assert "<title>My &lt;title&gt;</title>" in html


def test_cramers_v_fallback_matches_chi2_formula(make_run_dir, tmp_path, instrument):
    run = make_run_dir(tmp_path, cramers_in_metrics=False)
    ctx = Ctx(load_run(run, instrument), ReportConfig())
    panels = _cramers_v_panels(ctx)
    ref = pd.read_parquet(run / "reference.parquet")
    sub = ref[ref.question_id == "religion"]
    tab = pd.crosstab(sub["region"], sub["answer_code"]).to_numpy()
    chi2 = chi2_contingency(tab, correction=False)[0]
    expected = np.sqrt(chi2 / (tab.sum() * (min(tab.shape) - 1)))
    assert panels["human"].loc["region", "religion"] == pytest.approx(expected)
    assert set(panels) == {"human", "SmolLM2-135M-Instruct"}


def test_cramers_v_taken_from_metrics_when_present(make_run_dir, tmp_path, instrument):
    ctx = Ctx(load_run(make_run_dir(tmp_path), instrument), ReportConfig())
    panels = _cramers_v_panels(ctx)
    # the fixture writes cramers_v_human = 0.2 + 0.01 * len(group_var)
    assert panels["human"].loc["region", "pid7"] == pytest.approx(0.26)


def test_subgroup_means_hand_computed(make_run_dir, tmp_path, instrument):
    run = make_run_dir(tmp_path)
    ctx = Ctx(load_run(run, instrument), ReportConfig())
    means = _subgroup_means(ctx)
    assert set(means["question_id"]) == {"pid7", "ideo5"}  # ordinal only
    ref = pd.read_parquet(run / "reference.parquet")
    h = ref[(ref.question_id == "pid7") & (ref.sex == "male")]
    pos = (h["answer_code"].astype(int) - 1) / 6
    expected = np.average(pos, weights=h["weight"])
    row = means[(means.question_id == "pid7") & (means.group_label == "sex: male")
                & (means.model == "SmolLM2-135M-Instruct")].iloc[0]
    assert row["human_mean"] == pytest.approx(expected)
    # the silicon side (every persona row has probs, so the analyzer's rule uses them): per row
    # the probability-weighted scale position over the substantive options, weighted by persona
    r = pd.read_parquet(run / "responses.parquet")
    p = pd.read_parquet(run / "personas.parquet")
    s = r[(r.model == "SmolLM2-135M-Instruct") & (r.question_id == "pid7") & r.persona_id.notna()]
    s = s.merge(p[["persona_id", "sex", "weight"]], on="persona_id")
    s = s[s.sex == "male"]
    per_row = []
    for probs in s["probs"]:
        d = dict(probs)
        mass = np.array([d.get(str(i), 0.0) for i in range(1, 8)])
        per_row.append((mass / mass.sum()) @ (np.arange(7) / 6))
    assert row["silicon_mean"] == pytest.approx(np.average(per_row, weights=s["weight"]))
    assert ctx.use_probs("SmolLM2-135M-Instruct") and ctx.use_probs("baseline/uniform")


def test_distribution_mode_follows_the_analyzer(make_run_dir, tmp_path, instrument):
    import json

    run = make_run_dir(tmp_path)
    man = json.loads((run / "manifest.json").read_text())
    man["stages"]["analyze"]["models"] = {"SmolLM2-135M-Instruct": {"distribution": "answers"}}
    (run / "manifest.json").write_text(json.dumps(man))
    ctx = Ctx(load_run(run, instrument), ReportConfig())
    assert not ctx.use_probs("SmolLM2-135M-Instruct")
    means = _subgroup_means(ctx)
    row = means[(means.question_id == "pid7") & (means.group_label == "sex: male")
                & (means.model == "SmolLM2-135M-Instruct")].iloc[0]
    r = pd.read_parquet(run / "responses.parquet").merge(
        pd.read_parquet(run / "personas.parquet")[["persona_id", "sex", "weight"]], on="persona_id")
    s = r[(r.model == "SmolLM2-135M-Instruct") & (r.question_id == "pid7") & r.valid & ~r.refusal & (r.sex == "male")]
    assert row["silicon_mean"] == pytest.approx(np.average((s["answer_code"].astype(int) - 1) / 6, weights=s["weight"]))

@pytest.mark.slow
def test_report_on_real_analyzer_output(tmp_path):
    """End to end with the analysis stage's own output (its synthetic, contract-shaped run)."""
    from simsurvey.analysis import AnalysisConfig, analyze
    from simsurvey.analysis.synthetic import synthetic_run
    from simsurvey.io import write_parquet

    personas, responses, reference, inst = synthetic_run(
        n_personas=80, n_human=300, n_questions=3, models=("SmolLM2-135M-Instruct", "baseline/uniform"),
        conditions=("as_is|letters", "reversed|letters"), primacy=0.3, seed=1)
    result = analyze(responses, reference, personas, inst,
                     AnalysisConfig(bootstrap=30, n_permutations=50, null_draws=200), seed=2)
    frames = {"personas": personas, "responses": responses, "reference": reference,
              "metrics": result.metrics, "order_effects": result.order_effects}
    for name, frame in frames.items():
        write_parquet(frame, tmp_path / f"{name}.parquet", kind=name)
    html = render_report(tmp_path, instrument=inst).read_text()
    assert SECTION_FAILED not in html
    figures = {p.stem for p in (tmp_path / "figures").glob("*.svg")}
    assert {"question_q0", "question_q1", "question_q2", "homogenization_entropy_ratio", "structure_means",
            "structure_cramers_v", "order_conditions_SmolLM2-135M-Instruct"} <= figures
    assert html.count("<svg ") == len(figures)
    assert 'id="q-*"' not in html and "q0|q1" not in html.split('id="structure"')[0]
    m = result.metrics
    js = m[(m.metric == "js_divergence") & (m.group_var == "all") & (m.question_id == "q1")
           & (m.model == "SmolLM2-135M-Instruct")].iloc[0]
    assert fmt_ci(js["value"], js["ci_low"], js["ci_high"]) in html


def test_administer_totals_flat_or_per_model():
    from simsurvey.report._overview import _administer_totals

    flat = {"prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.5, "seconds": 3}
    assert _administer_totals(flat) == {"prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.5, "cached": 0}
    nested = {"rows": 9, "models": {"a": {"prompt_tokens": 5, "cached": 4, "cost_usd": 0.25},
                                    "b": {"prompt_tokens": 7, "completion_tokens": 1}}}
    assert _administer_totals(nested) == {"prompt_tokens": 12, "completion_tokens": 1, "cost_usd": 0.25, "cached": 4}
    assert _administer_totals({}) == {} and _administer_totals(None) == {}


def test_skipped_groups_are_explained(make_run_dir, tmp_path, instrument):
    import json

    from simsurvey.report._sections import _metric_table

    run = make_run_dir(tmp_path)
    man = json.loads((run / "manifest.json").read_text())
    man["stages"]["analyze"]["skipped_groups"] = [
        {"model": "SmolLM2-135M-Instruct", "question_id": "pid7", "group_var": "all", "group_value": "all",
         "n_silicon": 12, "n_human": 62479}]
    man["stages"]["analyze"]["notes"] = ["model <x>: used sampled answers"]
    (run / "manifest.json").write_text(json.dumps(man))
    ctx = Ctx(load_run(run, instrument), ReportConfig())
    table = _metric_table(ctx, "pid7")
    assert "No distance or diversity metrics for SmolLM2-135M-Instruct: only 12 silicon and 62479 human" in table
    assert "below analysis.min_group_n" not in _metric_table(ctx, "ideo5")
    assert "stages.analyze.skipped_groups" in ctx.skipped_note()
    from simsurvey.report._overview import overview

    assert "model &lt;x&gt;: used sampled answers" in overview(ctx)
