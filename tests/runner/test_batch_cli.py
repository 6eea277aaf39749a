"""The command line with runner.executor=batch: submit-and-exit is exit 0 with what to run; the rerun collects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fake_batch import FakeBatch, run_batch_file

from simsurvey.config import PROJECT_ROOT


def _cli(run_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = ["+experiment=politics", "model=litellm", "model.name=openai/fake", "model.api_base=http://127.0.0.1:9/v1",
            "model.elicitation=sample", "runner.executor=batch", "runner.batch.provider=file", "population.n=3",
            "stages=[sample,administer]", f"hydra.run.dir={run_dir}"]
    return subprocess.run([sys.executable, "-m", "simsurvey", *args], check=False, cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_file_batches_exit_0_with_the_vllm_command_and_the_rerun_collects(tmp_path):
    run_dir = tmp_path / "run"
    first = _cli(run_dir)
    assert first.returncode == 0, first.stderr[-2000:]
    line = first.stderr.strip().splitlines()[-1]
    src = run_dir / "batches" / "openai_fake" / "req-00001.jsonl"
    assert f"run: vllm run-batch -i {src} -o {src.with_suffix('.out.jsonl')} --model fake" in line
    assert f"rerun with hydra.run.dir={run_dir}" in line
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["attempts"][-1]["status"] == "pending" and not (run_dir / "responses.parquet").exists()
    run_batch_file(FakeBatch(), src, run_dir / "batches" / "openai_fake" / "req-00001.out.jsonl")
    second = _cli(run_dir)
    assert second.returncode == 0, second.stderr[-2000:]
    rows = pd.read_parquet(run_dir / "responses.parquet")
    mine = rows[rows["model"] == "openai/fake"]
    n = sum(1 for raw in src.read_bytes().splitlines() if raw.strip())
    assert len(mine) >= n and mine["error"].isna().all() and mine["valid"].any()
    assert json.loads((run_dir / "manifest.json").read_text())["attempts"][-1]["status"] == "finished"
