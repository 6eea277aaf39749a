"""The report's question-order (context) effects section."""

from __future__ import annotations

import pandas as pd

from simsurvey.analysis import AnalysisConfig, context_effects
from simsurvey.analysis.context_sim import context_instrument, simulate_context
from simsurvey.io import write_parquet
from simsurvey.report import render_report
from simsurvey.report._render import SECTION_FAILED


def test_section_shows_the_contrasts_and_the_missing_human_order(make_run_dir, tmp_path):
    run = make_run_dir(tmp_path)
    ce = simulate_context(n_personas=60, effect=0.4, seed=3, n_permutations=99)
    ce = pd.concat([ce, pd.DataFrame([{"side": "human", "question_id": "q1", "level": "none",
                                              "note": "the reference data records no question order"}])])
    write_parquet(ce, run / "context_effects.parquet", kind="context_effects")
    html = render_report(run).read_text()
    assert SECTION_FAILED not in html and 'id="question-order"' in html
    section = html.split('id="question-order"')[1]
    assert "<h4>scripted-context</h4>" in section and "after:q0" in section
    best = ce[ce["side"] == "silicon"].sort_values("p_value").iloc[0]
    assert f"{best['js_divergence']:.3f}" in section
    assert "Human reference" in section and "records no question order" in section


def test_an_independent_run_says_there_is_nothing_to_measure(make_run_dir, tmp_path):
    run = make_run_dir(tmp_path)
    html = render_report(run).read_text()
    assert "context_effects.parquet is missing" in html.split('id="question-order"')[1]
    write_parquet(context_effects(pd.DataFrame({"question_position": []}), None, context_instrument(), AnalysisConfig(), seed=1),
                  run / "context_effects.parquet", kind="context_effects")
    assert "design.context: independent" in render_report(run).read_text()
