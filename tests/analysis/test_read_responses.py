"""responses.parquet read with pyarrow (simsurvey.io.read_responses): the analyzer gives the same
metrics, to the last bit, whether it is handed that frame (column projection, probs and
option_order arrow-backed) or an ordinary pandas frame with probs as dicts (the library API)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from simsurvey.analysis import analyze
from simsurvey.analysis.frames import ANALYSIS_COLUMNS, encode_responses
from simsurvey.config import PROJECT_ROOT, validate_config
from simsurvey.errors import DamagedStateError
from simsurvey.instruments import load_instrument
from simsurvey.io import check_stored_parquet, read_responses
from simsurvey.pipeline import run
from simsurvey.population.variables import read_variables
from simsurvey.runner._checkpoint import RESPONSE_COLUMNS, table_to_frame


def _study(tmp_path, experiment: str, *overrides: str):
    """A real run of a built-in study on the baselines (free, in-process): sample and administer."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base=None):
        raw = compose("config", overrides=[f"+experiment={experiment}", "model=baseline/reference",
                                           "population.n=10", "stages=[sample,administer]",
                                           f"runner.cache_dir={tmp_path / 'cache'}",
                                           "analysis.bootstrap=40", "analysis.null_draws=60",
                                           "analysis.n_permutations=40", *overrides])
    cfg = validate_config(OmegaConf.to_container(raw, resolve=True))
    run(cfg, tmp_path / "run")
    return cfg, tmp_path / "run"


@pytest.fixture(scope="module", params=["questionnaire", "healthcare"])
def study(request, tmp_path_factory):
    # questionnaire: a sequential conversation (question_position, previous_question), a battery
    # with randomized item order, multi_select and a numeric thermometer; healthcare: a survey
    # experiment (arm) under order conditions. The baselines answer with probs maps.
    cfg, run_dir = _study(tmp_path_factory.mktemp(request.param), request.param)
    return cfg, run_dir


def _analyze(responses, cfg, run_dir):
    inst = load_instrument(PROJECT_ROOT / cfg.survey.instrument)
    personas = pd.read_parquet(run_dir / "personas.parquet")
    reference = pd.read_parquet(run_dir / "reference.parquet")
    return analyze(responses, reference, personas, inst, cfg.analysis, seed=11,
                   variables=read_variables(run_dir / "personas.parquet"))


def test_the_arrow_frame_and_the_dict_frame_give_identical_metrics(study) -> None:
    cfg, run_dir = study
    path = run_dir / "responses.parquet"
    new = read_responses(path, ANALYSIS_COLUMNS)
    assert isinstance(new["probs"].dtype, pd.ArrowDtype) and isinstance(new["option_order"].dtype, pd.ArrowDtype)
    assert new["probs"].notna().any()
    assert "raw_text" not in new.columns  # projected
    # The library API's frame (as administer() returns it: probs dicts, option_order lists) and
    # what pandas reads (probs as lists of (key, value) tuples).
    as_dicts = table_to_frame(pq.read_table(path))
    assert isinstance(as_dicts["probs"].dropna().iloc[0], dict)
    a = _analyze(as_dicts, cfg, run_dir)
    b = _analyze(new, cfg, run_dir)
    c = _analyze(pd.read_parquet(path), cfg, run_dir)
    assert len(a.metrics) > 50
    for other in (b, c):
        pd.testing.assert_frame_equal(other.metrics, a.metrics, check_exact=True)
        pd.testing.assert_frame_equal(other.order_effects, a.order_effects, check_exact=True)
        for name in ("treatment_effects", "context_effects"):
            x, y = getattr(other, name), getattr(a, name)
            assert (x is None) == (y is None)
            if x is not None:
                pd.testing.assert_frame_equal(x, y, check_exact=True)
        assert other.diagnostics == a.diagnostics
    if cfg.design.context == "sequential":
        assert a.context_effects is not None and len(a.context_effects)
    else:
        assert len(a.treatment_effects)


def test_the_encoded_rows_are_equal_array_by_array(study) -> None:
    cfg, run_dir = study
    path = run_dir / "responses.parquet"
    inst = load_instrument(PROJECT_ROOT / cfg.survey.instrument)
    personas = pd.read_parquet(run_dir / "personas.parquet")
    a = encode_responses(table_to_frame(pq.read_table(path)), personas, inst, ["sex", "age"])
    b = encode_responses(read_responses(path, ANALYSIS_COLUMNS), personas, inst, ["sex", "age"])
    for f in ("q", "pos", "w", "unit", "valid", "refusal", "x", "has_probs", "n_displayed", "rank", "model",
              "condition", "replicate", "code", "deterministic", "arm", "value", "answer"):
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None) == (vb is None), f
        if va is not None:
            assert va.dtype == vb.dtype and (va.shape == vb.shape), f
            pd.testing.assert_series_equal(pd.Series(vb.ravel()), pd.Series(va.ravel()), check_exact=True, obj=f)
    assert a.x is not None and a.x.sum() > 0


def test_read_responses_projects_skips_absent_columns_and_reads_a_dataset_directory(tmp_path) -> None:
    table = pa.table({"persona_id": pa.array([1, None, 2], pa.int64()), "question_id": ["q", "q", "r"],
                      "probs": pa.array([{"a": 0.5}, None, {"b": 1.0}], pa.map_(pa.string(), pa.float64())),
                      "raw_text": ["x", "y", "z"]})
    pq.write_table(table, tmp_path / "r.parquet")
    df = read_responses(tmp_path / "r.parquet", ["question_id", "probs", "no_such_column", "probs"])
    assert list(df.columns) == ["question_id", "probs"]
    assert df["probs"].dtype == pd.ArrowDtype(table.schema.field("probs").type)
    assert df["probs"].isna().tolist() == [False, True, False]
    # As pandas reads it otherwise: a nullable int column becomes float, strings pandas' strings.
    full = read_responses(tmp_path / "r.parquet")
    plain = pd.read_parquet(tmp_path / "r.parquet")
    for col in ("persona_id", "question_id", "raw_text"):
        pd.testing.assert_series_equal(full[col], plain[col])
    # A directory of parts (a dataset) reads as one frame; temporary files (".name") are ignored.
    (tmp_path / "ds").mkdir()
    pq.write_table(table.slice(0, 2), tmp_path / "ds" / "part-0.parquet")
    pq.write_table(table.slice(2), tmp_path / "ds" / "part-1.parquet")
    (tmp_path / "ds" / ".part-2.x.tmp.parquet").write_bytes(b"half-written")
    assert read_responses(tmp_path / "ds", ["question_id"])["question_id"].tolist() == ["q", "q", "r"]
    assert set(ANALYSIS_COLUMNS) <= set(RESPONSE_COLUMNS)


def test_a_damaged_responses_file_is_one_line_naming_it_and_the_fix(tmp_path) -> None:
    path = tmp_path / "responses.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DamagedStateError) as err:
        read_responses(path, ANALYSIS_COLUMNS)
    msg = str(err.value)
    assert msg.startswith(f"{path}: damaged parquet file (") and "rerun with 'administer'" in msg
    assert "\n" not in msg
    with pytest.raises(FileNotFoundError):
        read_responses(tmp_path / "absent.parquet")


def test_check_stored_parquet_decodes_every_batch_and_names_a_damaged_file(tmp_path) -> None:
    path = tmp_path / "responses.parquet"
    n = 200_000
    table = pa.table({"question_id": pa.array([f"q{i % 7}" for i in range(n)]),
                      "cost_usd": pa.array(np.arange(n, dtype=float))})
    pq.write_table(table, path, row_group_size=50_000)
    check_stored_parquet(path, fix="rebuild it")
    data = bytearray(path.read_bytes())
    # A damaged data page behind an intact footer: only decoding the pages finds it.
    meta = pq.read_metadata(path)
    col = meta.row_group(2).column(1)
    start = col.data_page_offset
    data[start + 10:start + 4000] = b"\xff" * 3990
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedStateError) as err:
        check_stored_parquet(path, fix="rebuild it")
    assert str(err.value).startswith(f"{path}: damaged parquet file (") and str(err.value).endswith("; rebuild it")
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated: no footer
    with pytest.raises(DamagedStateError):
        check_stored_parquet(path, fix="rebuild it")
