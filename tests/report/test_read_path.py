"""The report and the wide exports read responses.parquet with pyarrow, only the columns they use
(simsurvey.io.read_responses): a real study's report and exports are the same as when the whole
file is read into pandas (probs as Python objects), so no column they use is left on disk."""

from __future__ import annotations

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from simsurvey.config import PROJECT_ROOT, validate_config
from simsurvey.instruments import load_instrument
from simsurvey.io import read_responses
from simsurvey.pipeline import run
from simsurvey.population.variables import read_variables
from simsurvey.report import _data, render_report
from simsurvey.report._context import Ctx
from simsurvey.report.export import EXPORT_COLUMNS, wide_frame


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The built-in questionnaire (a sequential conversation, a battery with randomized item order,
    multi_select, a numeric thermometer) on the baselines, which answer with probs maps."""
    tmp = tmp_path_factory.mktemp("questionnaire")
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base=None):
        raw = compose("config", overrides=[
            "+experiment=questionnaire", "model=baseline/reference", "population.n=10",
            "stages=[sample,administer,analyze]", f"runner.cache_dir={tmp / 'cache'}", "analysis.bootstrap=40",
            "analysis.null_draws=60", "analysis.n_permutations=40"])
    cfg = validate_config(OmegaConf.to_container(raw, resolve=True))
    run(cfg, tmp / "run")
    return cfg, tmp / "run", load_instrument(PROJECT_ROOT / cfg.survey.instrument)


def _whole_file(path, columns=None, **_):
    return pd.read_parquet(path)


def test_the_report_reads_only_its_columns_with_probs_as_arrow(study) -> None:
    cfg, run_dir, inst = study
    data = _data.load_run(run_dir, inst)
    assert set(data.responses.columns) == set(_data.REPORT_COLUMNS)
    assert isinstance(data.responses["probs"].dtype, pd.ArrowDtype)
    ctx = Ctx(data, cfg.report)
    assert isinstance(ctx.silicon["probs"].dtype, pd.ArrowDtype)  # the persona join keeps it arrow
    assert ctx.silicon["probs"].notna().any()


def test_the_wide_export_is_the_same_from_the_projected_read(study) -> None:
    _, run_dir, inst = study
    path = run_dir / "responses.parquet"
    personas = pd.read_parquet(run_dir / "personas.parquet")
    variables = read_variables(run_dir / "personas.parquet")
    new = wide_frame(read_responses(path, EXPORT_COLUMNS), personas, inst, variables)
    old = wide_frame(pd.read_parquet(path), personas, inst, variables)
    pd.testing.assert_frame_equal(new[0], old[0], check_exact=True)
    assert new[1:] == old[1:]
    assert any(c.endswith("_pos") for c in new[0].columns)  # question_position reached the export


@pytest.mark.slow
def test_the_report_is_the_same_as_from_the_whole_file_read_into_pandas(study, monkeypatch) -> None:
    cfg, run_dir, inst = study
    new = render_report(run_dir, instrument=inst, cfg=cfg.report).read_text(encoding="utf-8")
    monkeypatch.setattr(_data, "read_responses", _whole_file)
    old = render_report(run_dir, instrument=inst, cfg=cfg.report).read_text(encoding="utf-8")
    for section in ('id="batteries"', 'id="numeric"', 'id="order-effects"'):
        assert section in new
    assert new == old
