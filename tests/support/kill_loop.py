"""SIGKILL a runner subprocess at random points, resume it, and count what the server was paid.

Used by ``tests/runner/test_interrupt.py`` and ``benchmarks/bench_kill.py``. A call is *paid*
when the fake server sent a usable completion (:attr:`fake_openai.LogEntry.answered`); a call
paid twice is one whose answer a killed run received (or was about to) and a later run asked
for again. The runner commits every answer to its cache before using it, so only the calls in
flight at a kill can be paid twice: at most ``concurrency`` per kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {support!r})
from runner_data import make_instrument, make_personas, make_trials
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

url, run_dir, cache_dir = sys.argv[1], sys.argv[2], sys.argv[3]
n, replicates, concurrency = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
inst = make_instrument()
res = administer(
    make_trials(inst, n, replicates), make_personas(n), inst,
    model=ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="sample"),
    prompt=PromptConfig(),
    runner=RunnerConfig(concurrency=concurrency, cache_dir=cache_dir, backoff_base_s=0.01, backoff_max_s=0.05,
                        max_retries=20, timeout_s=30, max_consecutive_failures=0),
    run_dir=Path(run_dir), seed=11, progress=False,
)
print("DONE", len(res.frame), int(res.frame["error"].notna().sum()))
"""


@dataclass
class KillLoop:
    """What one kill loop measured."""

    rows: int = 0
    calls_received: int = 0
    calls_paid: int = 0
    distinct_calls: int = 0
    paid_twice: int = 0
    #: Per kill: calls paid in that attempt and paid again later.
    paid_twice_per_kill: list[int] = field(default_factory=list)
    #: Per kill: requests the server had received and not yet finished when the kill was sent.
    open_at_kill: list[int] = field(default_factory=list)
    final_errors: int = 0


def run_kill_loop(fake, url: str, workdir: Path, *, n_personas: int, replicates: int, concurrency: int,
                  kills: int = 5, seed: int = 0, min_paid: int = 20, max_paid: int = 120,
                  deadline_s: float = 120.0) -> KillLoop:
    """Start the runner, SIGKILL it ``kills`` times after a random number of paid calls, finish it.

    Args:
        fake: The :class:`fake_openai.FakeOpenAI` behind ``url`` (its log is read).
        url: The server's base URL.
        workdir: Where the script, run dir and cache go.
        n_personas, replicates, concurrency: Size of the run (rows = (n + 1) * 2 * 2 * replicates).
        kills: How many SIGKILLs.
        seed: Seed of the kill points.
        min_paid, max_paid: Each attempt is killed after uniform[min_paid, max_paid) calls paid.
        deadline_s: Bound on each wait (a stuck run fails instead of hanging).
    """
    script = workdir / "kill_loop_run.py"
    script.write_text(SCRIPT.format(support=str(HERE)))
    env = {**os.environ, "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    argv = [sys.executable, str(script), url, str(workdir / "run"), str(workdir / "cache"),
            str(n_personas), str(replicates), str(concurrency)]
    rng = np.random.default_rng(seed)
    out = KillLoop()
    starts: list[int] = []
    for _ in range(kills):
        starts.append(len(fake.log))
        paid_before = sum(e.answered for e in fake.log)
        target = paid_before + int(rng.integers(min_paid, max_paid))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        t_end = time.monotonic() + deadline_s
        while sum(e.answered for e in fake.log) < target:
            if proc.poll() is not None:
                raise RuntimeError(f"the run ended before its kill point: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > t_end:
                proc.kill()
                raise RuntimeError("the run did not reach its kill point")
            time.sleep(0.005)
        out.open_at_kill.append(sum(not e.finished for e in fake.log))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    starts.append(len(fake.log))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=deadline_s, check=False)
    if done.returncode != 0 or "DONE" not in done.stdout:
        raise RuntimeError(f"the final run failed: {done.stderr[-2000:]}")
    _, rows, errors = done.stdout.split()[-3:]
    out.rows, out.final_errors = int(rows), int(errors)

    paid = [e for e in fake.log if e.answered]
    counts = Counter(e.key for e in paid)
    out.calls_received = len(fake.log)
    out.calls_paid = len(paid)
    out.distinct_calls = len(counts)
    out.paid_twice = sum(n - 1 for n in counts.values())
    for k in range(kills):
        lo, hi = starts[k], starts[k + 1]
        in_attempt = {e.key for e in fake.log[lo:hi] if e.answered}
        later = {e.key for e in fake.log[hi:] if e.answered}
        out.paid_twice_per_kill.append(len(in_attempt & later))
    return out
