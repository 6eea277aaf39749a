"""The report section "Personas and the human sample" and the overview's sentence on targets."""

from __future__ import annotations

import json

import pandas as pd

from simsurvey.report import render_report
from simsurvey.report._render import SECTION_FAILED


def _section(html: str) -> str:
    start = html.index('id="composition"')
    return html[start:html.index("</section>", start)]


def test_a_run_without_a_recorded_composition_gets_it_from_its_files(make_run_dir, tmp_path):
    run = make_run_dir(tmp_path)
    html = render_report(run).read_text(encoding="utf-8")
    assert SECTION_FAILED not in html
    sec = _section(html)
    personas = pd.read_parquet(run / "personas.parquet")
    female = (personas["sex"] == "female").mean()
    assert f"{female:.3f}" in sec and "targets: spec" in sec
    assert "targets: spec" in html[:html.index('id="questions"')]  # the overview says it too


def test_recorded_composition_counts_accepted_personas_and_names_matched_targets(make_run_dir, tmp_path):
    run = make_run_dir(tmp_path)
    man = json.loads((run / "manifest.json").read_text())
    man["stages"]["sample"].update({"targets": "reference", "reference_source": "cces2016"})
    man["composition"] = {"personas": 80, "sources": {
        "cces2016": {"respondents": 300, "not_in_human_data": ["education"], "variables": {
            "race": {"total_variation": 0.25, "codes": [
                {"code": "a", "label": "A", "persona_share": 0.75, "human_share": 1.0, "persona_n": 60,
                 "human_n": 300, "covered": True},
                {"code": "b", "label": "B", "persona_share": 0.25, "human_share": 0.0, "persona_n": 20,
                 "human_n": 0, "covered": False}]}}},
        "anes1996": {"respondents": 50, "not_in_human_data": [], "variables": {}}}}
    man["coverage"] = {"ok": True, "uncovered_personas": 20, "accepted_attributes": ["race"],
                       "refused_attributes": []}
    (run / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    html = render_report(run).read_text(encoding="utf-8")
    sec = _section(html)
    assert "20 of 80 personas (25.0%) have no human counterpart" in sec
    assert "b (20 personas)" in sec and "no human respondent" in sec
    assert "not in the human data" in sec and "education" in sec
    assert "weighted composition of the human sample cces2016" in html
    assert "The other human sources (anes1996)" in html
