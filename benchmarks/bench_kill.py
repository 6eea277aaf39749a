"""Kill loop: SIGKILL a run 5 times at random points, resume it, count the calls paid twice.

Against the fault-injecting fake server (``tests/support/fake_openai.py``: 429 with
Retry-After, 500, malformed bodies, garbage answers), a run of ~2,000 sampled calls is killed
after a random number of paid calls, five times, then finished. A call is paid when the server
sent a usable completion; paid twice when a later attempt asked for it again. The runner
commits every answer to its cache before using it, so only calls in flight at a kill can be
paid twice (at most ``--concurrency`` per kill). Usage::

    PYTHONPATH=src python benchmarks/bench_kill.py            # ~1 minute on 2 cores
    PYTHONPATH=src python benchmarks/bench_kill.py --seeds 3  # three loops with other kill points
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from fake_openai import FakeOpenAI, ServerThread  # noqa: E402
from kill_loop import run_kill_loop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=50, help="rows = (personas + 1) * 4 * replicates")
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--fault-rate", type=float, default=0.2, help="429 / 500 / malformed / garbage, equally")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    r = args.fault_rate / 4
    for seed in range(args.seeds):
        fake = FakeOpenAI(latency_s=args.latency, rates={"429": r, "500": r, "malformed": r, "garbage": r},
                          retry_after=0.01, seed=seed)
        server = ServerThread(fake).start()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                got = run_kill_loop(fake, server.url, Path(tmp), n_personas=args.personas, replicates=args.replicates,
                                    concurrency=args.concurrency, kills=args.kills, seed=seed,
                                    min_paid=100, max_paid=400)
        finally:
            server.stop()
        print(json.dumps({"seed": seed, "concurrency": args.concurrency, **asdict(got)}))


if __name__ == "__main__":
    main()
