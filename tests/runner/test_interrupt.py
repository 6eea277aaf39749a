"""Kill a run mid-way (SIGKILL, SIGTERM, SIGINT) and resume it: no row lost, none twice, no call repeated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from runner_data import make_instrument, make_personas, make_trials

from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer, read_parts

HERE = Path(__file__).resolve().parent
N_PERSONAS, REPLICATES, CONCURRENCY, STALL_AFTER = 8, 2, 4, 30

SCRIPT = f"""
import sys
from pathlib import Path
sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent / "support")!r}]
from runner_data import make_instrument, make_personas, make_trials
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

url, run_dir, cache_dir, flush_seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
inst = make_instrument()
administer(
    make_trials(inst, {N_PERSONAS}, {REPLICATES}), make_personas({N_PERSONAS}), inst,
    model=ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="sample"),
    prompt=PromptConfig(),
    runner=RunnerConfig(concurrency={CONCURRENCY}, cache_dir=cache_dir, flush_every=100, flush_seconds=flush_seconds, timeout_s=120),
    run_dir=Path(run_dir), seed=11, progress=False,
)
print("DONE")
"""

KEY = ["persona_id", "question_id", "condition_id", "replicate", "model"]


def _start(tmp_path: Path, url: str, flush_seconds: float) -> subprocess.Popen:
    script = tmp_path / "run_admin.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.Popen([sys.executable, str(script), url, str(tmp_path / "run"), str(tmp_path / "cache"), str(flush_seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def _wait_stalled(fake, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while len(fake.log) < STALL_AFTER + CONCURRENCY:
        if proc.poll() is not None:
            pytest.fail(f"runner exited early: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("runner did not reach the stall")
        time.sleep(0.05)


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame[KEY].itertuples(index=False)]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_rows_without_repeated_calls(tmp_path, server, fake):
    fake.stall_after = STALL_AFTER
    proc = _start(tmp_path, server.url, flush_seconds=0.2)
    _wait_stalled(fake, proc)
    time.sleep(1.0)  # > flush_seconds: the answered rows reach the cache / a part
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    parts_dir = tmp_path / "run" / "parts" / "responses" / "openai_fake"
    assert len(read_parts(parts_dir)) == STALL_AFTER
    stalled = {e.key for e in fake.log if e.fault == "stall"}
    assert len(stalled) == CONCURRENCY

    # resume in-process against the same server, run dir and cache
    fake.stall_after = None
    inst = make_instrument()
    trials = make_trials(inst, N_PERSONAS, REPLICATES)
    kw = dict(model=ModelConfig(backend="litellm", name="openai/fake", api_base=server.url, elicitation="sample"),
              prompt=PromptConfig(), seed=11, progress=False)
    resumed = administer(trials, make_personas(N_PERSONAS), inst, run_dir=tmp_path / "run",
                         runner=RunnerConfig(concurrency=CONCURRENCY, cache_dir=str(tmp_path / "cache")), **kw)
    assert resumed.stats["resumed_rows"] == STALL_AFTER
    keys = _keys(resumed.frame)
    assert len(keys) == len(set(keys)) == len(trials)

    # across both runs: every call answered exactly once; only the calls stalled at the kill were asked again
    answered = Counter(e.key for e in fake.log if e.answered)
    assert set(answered.values()) == {1} and len(answered) == len(trials)
    asked = Counter(e.key for e in fake.log)
    assert {k for k, n in asked.items() if n > 1} <= stalled

    # the same rows as an uninterrupted run
    fresh = administer(trials, make_personas(N_PERSONAS), inst, run_dir=tmp_path / "fresh",
                       runner=RunnerConfig(concurrency=CONCURRENCY, cache=False), **kw)
    cols = [*KEY, "answer_code", "raw_text", "prompt_hash", "valid"]
    assert resumed.frame[cols].equals(fresh.frame[cols])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_flush_completed_rows_and_raise_keyboardinterrupt(tmp_path, server, fake, sig):
    fake.stall_after = STALL_AFTER
    proc = _start(tmp_path, server.url, flush_seconds=3600)  # no timed flush: only the interrupt's
    _wait_stalled(fake, proc)
    time.sleep(0.3)
    parts_dir = tmp_path / "run" / "parts" / "responses" / "openai_fake"
    assert len(read_parts(parts_dir)) == 0
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "DONE" not in out
    assert "KeyboardInterrupt" in err.splitlines()[-1]
    assert len(read_parts(parts_dir)) == STALL_AFTER


@pytest.mark.slow
def test_five_sigkills_at_random_points_pay_again_only_for_calls_in_flight(tmp_path):
    # Issue 9, row 5: the cache commits each answer before it is used, so a SIGKILL re-pays at
    # most the calls in flight (<= concurrency per kill), against a server injecting faults.
    from fake_openai import FakeOpenAI, ServerThread
    from kill_loop import run_kill_loop

    concurrency, kills = 8, 5
    fake = FakeOpenAI(latency_s=0.02, rates={"429": 0.05, "500": 0.05, "malformed": 0.03}, retry_after=0.01, seed=3)
    server = ServerThread(fake).start()
    try:
        got = run_kill_loop(fake, server.url, tmp_path, n_personas=24, replicates=4, concurrency=concurrency,
                            kills=kills, seed=5, min_paid=20, max_paid=70)
    finally:
        server.stop()
    rows = (24 + 1) * 2 * 2 * 4
    assert got.rows == rows and got.final_errors == 0
    assert got.distinct_calls == rows  # every row's call was paid at least once
    assert all(n <= concurrency for n in got.paid_twice_per_kill), got
    assert got.paid_twice == sum(got.paid_twice_per_kill) <= kills * concurrency, got
    frame = read_parts(tmp_path / "run" / "parts" / "responses" / "openai_fake")
    assert frame.drop_duplicates(KEY, keep="last")["error"].isna().all()
