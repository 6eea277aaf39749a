"""The whole pipeline through the CLI, with the embedded model: files, contracts, rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.instruments import load_instrument

pytestmark = pytest.mark.slow

RUN_FILES = [
    "personas.parquet", "responses.parquet", "reference.parquet", "metrics.parquet",
    "order_effects.parquet", "report.html", "manifest.json",
]


def _run(run_dir, cache_dir, *extra):
    env = {**os.environ, "CI": "true"}
    return subprocess.run(
        [sys.executable, "-m", "simsurvey", "+experiment=politics", "population.n=6",
         f"runner.cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", *extra],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def politics_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    run_dir, cache_dir = base / "run", base / "cache"
    proc = _run(run_dir, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, cache_dir, proc


def test_run_writes_every_file_with_its_contract(politics_run):
    run_dir, _, proc = politics_run
    for name in RUN_FILES:
        assert (run_dir / name).exists(), name
    assert "open the report" in proc.stdout
    responses = pd.read_parquet(run_dir / "responses.parquet")
    instrument = load_instrument(PROJECT_ROOT / "surveys" / "politics.yaml")
    # The model and the three baselines answered every trial.
    assert set(responses["model"]) == {"SmolLM2-135M-Instruct", "baseline/uniform", "baseline/majority", "baseline/reference"}
    per_model = responses.groupby("model").size()
    assert per_model.nunique() == 1
    key = ["model", "persona_id", "question_id", "condition_id", "replicate"]
    assert not responses.duplicated(key).any()
    for qid, rows in responses.groupby("question_id"):
        codes = set(instrument.question(qid).codes)
        assert set(rows["answer_code"].dropna()) <= codes
    # probs is a parquet map over canonical codes, as the contract says.
    assert str(pq.read_schema(run_dir / "responses.parquet").field("probs").type).startswith("map<string, double")
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    assert {"js_divergence", "representativeness", "entropy_ratio"} <= set(metrics["metric"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"sample", "administer", "analyze", "report"}
    assert manifest["stages"]["sample"]["sample_within_1_over_n"] in (True, False)


def test_rerun_in_the_same_dir_reuses_everything(politics_run):
    run_dir, cache_dir, _ = politics_run
    before = pd.read_parquet(run_dir / "responses.parquet")
    proc = _run(run_dir, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = pd.read_parquet(run_dir / "responses.parquet")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stats = manifest["stages"]["administer"]["models"]["SmolLM2-135M-Instruct"]
    assert stats["calls"] == 0 and stats["new_rows"] == 0
    cols = ["model", "persona_id", "question_id", "condition_id", "replicate", "answer_code", "raw_text"]
    pd.testing.assert_frame_equal(before[cols], after[cols])
