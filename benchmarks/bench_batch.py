"""Batch executor round trip: 100,000 calls through the fake batch server, SIGKILLed mid-poll.

The fake batch server (``tests/support/fake_batch.py``) runs in its own process and holds every
batch in progress; a run of ``(personas + 1) * 4 * replicates`` sampled calls (100,000 by default,
all distinct) through ``runner.executor=batch`` writes its request files (split at
``--max-requests``), submits them and polls; once every batch is submitted and recorded it is
killed with SIGKILL. The server then lets the batches finish; the same command on the same run
directory collects them and writes every row. Reported: wall time of each attempt, the peak RSS
of each process (``ru_maxrss``), the calls submitted (total, unique, submitted twice), rows.
Usage::

    PYTHONPATH=src python benchmarks/bench_batch.py                  # 100,000 calls, a few minutes
    PYTHONPATH=src python benchmarks/bench_batch.py --personas 249   # 10,000 calls
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "tests" / "support"

SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {support!r})
from runner_data import make_instrument, make_personas, make_trials
from simsurvey.respondents.config import BatchConfig, ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

url, run_dir, cache_dir = sys.argv[1], sys.argv[2], sys.argv[3]
n, replicates, max_requests = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
inst = make_instrument()
t0 = time.perf_counter()
res = administer(
    make_trials(inst, n, replicates), make_personas(n), inst,
    model=ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="sample"),
    prompt=PromptConfig(),
    runner=RunnerConfig(executor="batch", cache_dir=cache_dir, concurrency=8,
                        batch=BatchConfig(poll_interval_s=0.5, max_requests=max_requests)),
    run_dir=Path(run_dir), seed=11, progress=False,
)
print("DONE", len(res.frame), int(res.frame["error"].notna().sum()), int(res.frame["cached"].sum()),
      round(time.perf_counter() - t0, 1))
"""


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _wait(proc: subprocess.Popen) -> tuple[int, float]:
    """Reap a child: (exit status, peak RSS in MB)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=2499, help="calls = (personas + 1) * 4 * replicates")
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--max-requests", type=int, default=50_000)
    ap.add_argument("--deadline", type=float, default=3600)
    args = ap.parse_args()
    calls = (args.personas + 1) * 4 * args.replicates
    n_files = -(-calls // args.max_requests)
    env = {**os.environ, "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    server = subprocess.Popen([sys.executable, str(SUPPORT / "fake_batch.py"), "--hold"], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        port = int(server.stdout.readline().split()[1])  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            script = work / "bench_batch_run.py"
            script.write_text(SCRIPT.format(support=str(SUPPORT)))
            argv = [sys.executable, str(script), f"{base}/v1", str(work / "run"), str(work / "cache"),
                    str(args.personas), str(args.replicates), str(args.max_requests)]
            state = work / "run" / "batches" / "openai_fake" / "state.json"
            t0 = time.perf_counter()
            first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
            while True:  # kill mid-poll: every batch submitted and recorded, none finished (the server holds them)
                jobs = json.loads(state.read_text())["jobs"] if state.exists() else []
                if len(jobs) == n_files and all(j["stage"] == "submitted" for j in jobs):
                    break
                if first.poll() is not None or time.perf_counter() - t0 > args.deadline:
                    raise SystemExit(f"the first run ended or hung before its kill point: {first.stderr.read()[-2000:]}")
                time.sleep(0.2)
            time.sleep(1.0)  # a few polls
            first.send_signal(signal.SIGKILL)
            _, rss_first = _wait(first)
            t_first = time.perf_counter() - t0
            at_kill = _get(f"{base}/stats")
            _post(f"{base}/control", {"hold": False})
            t1 = time.perf_counter()
            second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
            code, rss_second = _wait(second)
            out, err = second.stdout.read(), second.stderr.read()  # type: ignore[union-attr]
            t_second = time.perf_counter() - t1
            if code != 0 or "DONE" not in out:
                raise SystemExit(f"the rerun failed ({code}): {err[-2000:]}")
            _, rows, errors, cached, seconds = out.split()[-5:]
            final = _get(f"{base}/stats")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    print(json.dumps({
        "calls": calls, "files": n_files, "rows": int(rows), "row_errors": int(errors), "rows_cached": int(cached),
        "submitted_at_kill": at_kill["submitted"], "submitted_total": final["submitted"],
        "unique_submitted": final["unique"], "submitted_twice": final["duplicates"], "batches": final["batches"],
        "first_run_s_to_kill": round(t_first, 1), "rerun_s": round(t_second, 1), "rerun_administer_s": float(seconds),
        "peak_rss_mb_first": round(rss_first), "peak_rss_mb_rerun": round(rss_second),
    }, indent=1))


if __name__ == "__main__":
    main()
