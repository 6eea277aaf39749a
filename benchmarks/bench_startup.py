"""Benchmark: start-up cost of ``import simsurvey.config`` and of the CLI refusing a bad override.

Runs this checkout and a baseline git revision (extracted with ``git archive``) side by side,
alternating, each command in a fresh interpreter; prints a markdown table of medians.

    python benchmarks/bench_startup.py --baseline <rev> [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "import simsurvey.config": ["-c", "import simsurvey.config"],
    "python -m simsurvey foo=1": ["-m", "simsurvey", "foo=1"],
}
COUNT = "import sys, simsurvey.config; print(len(sys.modules))"


def run(src: Path, args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(src), "HYDRA_FULL_ERROR": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--baseline", required=True, help="git revision to compare with")
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", a.baseline, "src", "conf", "personas", "surveys"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        trees = {f"baseline {a.baseline}": base, "this checkout": ROOT}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(a.reps):
            for label, tree in trees.items():  # alternating: load drifts hit both alike
                for name, args in COMMANDS.items():
                    secs, proc = run(tree / "src", args, cwd=Path(tmp))
                    if name.startswith("python -m") and proc.returncode != 2:
                        raise SystemExit(f"{label}: {name} exited {proc.returncode}: {proc.stderr[-500:]}")
                    times.setdefault((label, name), []).append(secs)
        print(f"median of {a.reps}, load average {os.getloadavg()[0]:.1f}\n")
        print("| tree | " + " | ".join(f"`{n}` wall s" for n in COMMANDS) + " | modules after `import simsurvey.config` |")
        print("|---|" + "---:|" * (len(COMMANDS) + 1))
        for label, tree in trees.items():
            n = run(tree / "src", ["-c", COUNT], cwd=Path(tmp))[1].stdout.strip()
            cells = [f"{statistics.median(times[(label, name)]):.2f}" for name in COMMANDS]
            print(f"| {label} | " + " | ".join(cells) + f" | {n} |")


if __name__ == "__main__":
    main()
