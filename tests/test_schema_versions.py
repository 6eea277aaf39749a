"""Old metrics files (schema 1: split-half noise floor, uncorrected statistics) are refused clearly."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simsurvey.errors import UserError
from simsurvey.io import kind_schema_version, schema_version, write_parquet
from simsurvey.report._data import load_run
from simsurvey.summary import summary_table


def _old_metrics(path):
    df = pd.DataFrame({"model": ["m"], "question_id": ["q"], "group_var": ["all"], "group_value": ["all"],
                       "metric": ["js_divergence"], "value": [0.1], "ci_low": [0.05], "ci_high": [0.2],
                       "noise_floor": [0.01], "n_silicon": [10], "n_human": [20]})
    t = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(t.replace_schema_metadata({b"simsurvey.kind": b"metrics", b"simsurvey.schema_version": b"1"}),
                   path)


def test_metrics_and_order_effects_are_schema_2():
    assert kind_schema_version("metrics") == "2" and kind_schema_version("order_effects") == "2"
    assert kind_schema_version("responses") == "1"


def test_writer_stamps_the_kind_version(tmp_path):
    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "metrics.parquet", kind="metrics")
    assert schema_version(tmp_path / "metrics.parquet") == "2"


def test_summary_and_report_refuse_schema_1(tmp_path):
    _old_metrics(tmp_path / "metrics.parquet")
    with pytest.raises(UserError, match="schema 1 .* re-analyse the run"):
        summary_table(tmp_path)
    with pytest.raises(UserError, match="re-analyse"):
        load_run(tmp_path)
    r = subprocess.run([sys.executable, "-m", "simsurvey.summary", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "stages=[analyze,report]" in r.stderr
