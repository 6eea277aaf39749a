"""Scale: the whole pipeline on N trials through the fake OpenAI server, peak RSS and req/s.

Runs ``python -m simsurvey +experiment=politics`` (sample -> administer; ``--stages`` adds
analyze/report) with the model under study on the fake OpenAI-compatible server
(``tests/support/fake_openai.py``, started here in its own process), the direct HTTP transport,
``runner.concurrency=256``, sampled elicitation (every trial is a call: replicates carry their own
seed) and the three baselines (uniform, majority, reference), for each variant of the code side by
side on the same design:

* ``new``  — this checkout (``src/`` beside this script);
* ``old``  — the commit given by ``--old`` (default ``main``), exported with ``git archive`` to a
  temporary directory and run from there (its own ``conf/``, ``surveys/``, ``personas/``).

The design: politics' 10 questions, every condition (``design.assignment=within``: 2 orders x 2
label styles), ``design.replicates`` chosen so that personas x 40 x replicates + the no-persona
control (400) reaches ``--trials``. Each variant gets its own run directory and response cache
(each pays every call). Peak RSS is the child's ``Maximum resident set size`` from
``/usr/bin/time -v`` (the whole CLI process); req/s is the model's new rows per second of its
administer call (the manifest's ``requests_per_s``), and the administer stage's and the whole
run's wall time are printed beside it. Usage::

    PYTHONPATH=src python benchmarks/bench_scale.py --trials 20000              # quick: ~2-4 min
    PYTHONPATH=src python benchmarks/bench_scale.py --trials 1000000 --variants new  # the long run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PER_PERSONA = 10 * 4  # politics questions x conditions (assignment=within)
NO_PERSONA = 10 * 4 * 10  # the no-persona control: questions x conditions x no_persona_replicates


def design(trials: int) -> tuple[int, int]:
    """(personas, replicates) giving about ``trials`` trials."""
    reps = 1 if trials < 20_000 else 5
    return max(2, math.ceil((trials - NO_PERSONA) / (PER_PERSONA * reps))), reps


def export(ref: str, dest: Path) -> Path:
    """The tree of commit ``ref`` in ``dest`` (git archive: no worktree, nothing shared)."""
    with tempfile.TemporaryFile() as tar:
        subprocess.run(["git", "-C", str(ROOT), "archive", ref], stdout=tar, check=True)
        tar.seek(0)
        with tarfile.open(fileobj=tar) as t:
            t.extractall(dest, filter="data")
    return dest


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "fake_openai.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    m = re.match(r"PORT (\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{m.group(1)}/v1"


def run_variant(name: str, tree: Path, url: str, work: Path, *, personas: int, reps: int, stages: str,
                extra: list[str]) -> dict:
    run_dir, cache = work / f"run-{name}", work / f"cache-{name}"
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(tree / "src"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "simsurvey", "+experiment=politics",
           f"population.n={personas}", "design.assignment=within", f"design.replicates={reps}",
           "model=litellm", "model.name=openai/fake", f"model.api_base={url}", "model.elicitation=sample",
           "model.max_tokens=4", "runner.concurrency=256", "runner.flush_every=2000", f"runner.cache_dir={cache}",
           f"stages=[{stages}]", f"hydra.run.dir={run_dir}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    adm = manifest["stages"]["administer"]
    model = adm["models"]["openai/fake"]
    return {"variant": name, "trials": adm["trials"], "rows": adm["rows"], "peak_rss_mb": round(rss_kb / 1024),
            "req_per_s": model["requests_per_s"], "model_s": model["seconds"],
            "baselines_s": round(sum(s["seconds"] for k, s in adm["models"].items() if k != "openai/fake"), 1),
            "administer_s": adm["seconds"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "responses_mb": round((run_dir / "responses.parquet").stat().st_size / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--variants", default="old,new", help="comma-separated: old, new")
    ap.add_argument("--old", default="main", help="the commit the old variant runs")
    ap.add_argument("--latency", type=float, default=0.1, help="the fake server's latency per request (s)")
    ap.add_argument("--stages", default="sample,administer")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    ap.add_argument("extra", nargs="*", help="more overrides for both variants")
    args = ap.parse_args()
    personas, reps = design(args.trials)
    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            work = args.keep or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            for name in args.variants.split(","):
                tree = ROOT if name == "new" else export(args.old, work / "old-tree")
                got = run_variant(name, tree, url, work, personas=personas, reps=reps, stages=args.stages,
                                  extra=args.extra)
                print(json.dumps({**got, "personas": personas, "replicates": reps,
                                  "ref": "HEAD" if name == "new" else args.old}), flush=True)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
