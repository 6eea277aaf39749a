"""The numeric-question panel of the report: ECDFs on the raw scale and the value_* table."""

from __future__ import annotations

import sys
from importlib import util

import numpy as np
import pandas as pd

from simsurvey import analyze
from simsurvey.analysis import AnalysisConfig
from simsurvey.config import PROJECT_ROOT
from simsurvey.report import render_report
from simsurvey.report._numeric import ecdf_figure


def _cal():
    spec = util.spec_from_file_location("calibrate_numeric", PROJECT_ROOT / "benchmarks" / "calibrate_numeric.py")
    mod = util.module_from_spec(spec)
    sys.modules.setdefault("calibrate_numeric", mod)
    spec.loader.exec_module(mod)
    return sys.modules["calibrate_numeric"]


def test_report_has_a_panel_per_numeric_question(tmp_path) -> None:
    cal = _cal()
    responses, reference, personas, inst = cal.simulate(cal.Cell("answers", 60, 300, 0.6, 2), seed=1)
    m = analyze(responses, reference, personas, inst, AnalysisConfig(group_vars=[], bootstrap=20, null_draws=20,
                                                                     n_permutations=0, pairs=False), seed=0)
    for name, frame in (("responses", responses), ("reference", reference), ("personas", personas),
                        ("metrics", m.metrics), ("order_effects", m.order_effects)):
        frame.to_parquet(tmp_path / f"{name}.parquet")
    html = render_report(tmp_path, instrument=inst).read_text()
    section = html[html.index('id="numeric"'):]
    section = section[:section.index("</section>")]
    assert section.count("<svg") == 2 and "value_ks" in section and "value_wasserstein_norm" in section
    assert "could not be drawn" not in html
    assert (tmp_path / "figures" / "numeric_t0.svg").exists()


def test_ecdf_steps_are_the_weighted_shares() -> None:
    fig = ecdf_figure({"human": (np.array([0.0, 50, 50, 100]), np.array([1.0, 1, 1, 1]))}, {}, 0, 100, "t")
    (line,) = fig.axes[0].get_lines()
    x, y = line.get_data()
    assert list(x) == [0, 0, 50, 100, 100] and list(y) == [0, 0.25, 0.75, 1.0, 1.0]


def test_no_numeric_question_no_section(tmp_path) -> None:
    pd.DataFrame({"question_id": ["q"], "answer_code": ["a"]}).to_parquet(tmp_path / "reference.parquet")
    html = render_report(tmp_path).read_text()
    assert 'id="numeric"' not in html and "Numeric questions" not in html


def test_wide_export_keeps_the_raw_value(tmp_path) -> None:
    import pyreadstat

    from simsurvey.report import export_wide

    cal = _cal()
    responses, _, personas, inst = cal.simulate(cal.Cell("answers", 10, 10, 0.0, 1), seed=2)
    responses.loc[0, ["valid", "answer_value"]] = [False, np.nan]
    responses.to_parquet(tmp_path / "responses.parquet")
    personas.to_parquet(tmp_path / "personas.parquet")
    dta, sav = export_wide(tmp_path, inst)
    for path, read in ((dta, pyreadstat.read_dta), (sav, pyreadstat.read_sav)):
        df, meta = read(str(path))
        got = df.sort_values("persona_id")["t0_val"].to_numpy()
        want = responses.sort_values("persona_id")["answer_value"].to_numpy()
        assert np.isnan(got[0]) and np.array_equal(got[1:], want[1:]), path
        assert meta.column_names_to_labels["t0_val"] == "t0 on the raw scale"
