"""Kill the batch executor between submit and collect (SIGKILL) and rerun: nothing submitted twice,
every row present once, the finished batch the killed run never saw finish is collected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fake_batch import BatchServerThread, FakeBatch
from runner_data import make_instrument, make_personas, make_trials

from simsurvey.errors import RunPendingError
from simsurvey.respondents.config import BatchConfig, ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

HERE = Path(__file__).resolve().parent
N_PERSONAS, REPLICATES = 6, 2
KEY = ["persona_id", "question_id", "condition_id", "replicate", "model"]

SCRIPT = f"""
import sys
from pathlib import Path
sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent / "support")!r}]
from runner_data import make_instrument, make_personas, make_trials
from simsurvey.respondents.config import BatchConfig, ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

url, run_dir, cache_dir = sys.argv[1], sys.argv[2], sys.argv[3]
inst = make_instrument()
res = administer(
    make_trials(inst, {N_PERSONAS}, {REPLICATES}), make_personas({N_PERSONAS}), inst,
    model=ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="sample"),
    prompt=PromptConfig(),
    runner=RunnerConfig(executor="batch", cache_dir=cache_dir, batch=BatchConfig(poll_interval_s=0.05, max_requests=20)),
    run_dir=Path(run_dir), seed=11, progress=False,
)
print("DONE", len(res.frame))
"""


def _kw(url: str, tmp_path: Path, **batch) -> dict:
    return {"model": ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="sample"),
            "prompt": PromptConfig(), "seed": 11, "progress": False, "run_dir": tmp_path / "run",
            "runner": RunnerConfig(executor="batch", cache_dir=str(tmp_path / "cache"),
                                   batch=BatchConfig(poll_interval_s=0.01, max_requests=20, **batch))}


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame[KEY].itertuples(index=False)]


@pytest.mark.slow
def test_sigkill_between_submit_and_collect_then_rerun_submits_nothing_twice(tmp_path):
    fake = FakeBatch(hold=True)  # batches stay in progress: the kill lands while they are live
    server = BatchServerThread(fake).start()
    state = tmp_path / "run" / "batches" / "openai_fake" / "state.json"
    try:
        script = tmp_path / "run_batch.py"
        script.write_text(SCRIPT)
        env = {**os.environ, "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        proc = subprocess.Popen([sys.executable, str(script), server.url, str(tmp_path / "run"), str(tmp_path / "cache")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        deadline = time.monotonic() + 90
        inst = make_instrument()
        trials = make_trials(inst, N_PERSONAS, REPLICATES)
        n_files = -(-len(trials) // 20)
        while True:  # every file submitted and recorded, then polled at least once
            jobs = json.loads(state.read_text())["jobs"] if state.exists() else []
            if len(jobs) == n_files and all(j["stage"] == "submitted" and j["batch_id"] for j in jobs) \
                    and len(fake.batches) == n_files:
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before its kill point: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the run did not submit its batches")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert not list((tmp_path / "run").rglob("part-*.parquet"))  # nothing collected yet
        fake.hold = False  # the batches finish while no run is there to see it
        got = administer(trials, make_personas(N_PERSONAS), inst, **_kw(server.url, tmp_path))
    finally:
        server.stop()
    keys = _keys(got.frame)
    assert len(keys) == len(set(keys)) == len(trials) and got.frame["error"].isna().all()
    assert not fake.duplicates() and len(fake.submissions) == len(trials)
    assert len(fake.batches) == n_files  # the rerun created no batch: it collected the killed run's
    assert not got.frame["cached"].any()  # answers this run collected are its own calls


def test_a_batch_created_by_a_run_killed_before_recording_it_is_found_not_created_again(tmp_path):
    fake = FakeBatch()
    server = BatchServerThread(fake).start()
    inst = make_instrument()
    trials = make_trials(inst, 2, 1)
    try:
        with pytest.raises(RunPendingError):
            administer(trials, make_personas(2), inst, **_kw(server.url, tmp_path, wait=False))
        path = tmp_path / "run" / "batches" / "openai_fake" / "state.json"
        data = json.loads(path.read_text())
        for job in data["jobs"]:  # as if killed after the create call returned, before the id was written
            job.update(stage="uploaded", batch_id=None, status=None)
        path.write_text(json.dumps(data))
        n = len(fake.batches)
        got = administer(trials, make_personas(2), inst, **_kw(server.url, tmp_path))
    finally:
        server.stop()
    assert len(fake.batches) == n and not fake.duplicates()
    assert len(got.frame) == len(trials) and got.frame["error"].isna().all()
