"""The fixed cost of one ``administer()`` call, old code vs new, side by side.

Each variant (a source tree: this checkout, and ``--old`` exported with ``git archive``) runs in
its own process: ``--calls`` administer() calls of a tiny design (one persona: 4 trials) on the
same run directory against the in-process fake OpenAI server, the first to fill the cache and the
parts, then ``--calls`` timed resumes that have nothing left to ask (what remains is the per-call
set-up and the result), and ``--calls`` timed calls on fresh run directories served from the cache
(set-up, 4 cached rows, the result). The median seconds per call are printed as JSON lines.
Usage::

    PYTHONPATH=src python benchmarks/bench_fixed_cost.py --calls 15
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import export

CHILD = r'''
import json, os, statistics, sys, tempfile, time
from pathlib import Path
os.environ["CI"] = "true"
sys.path.insert(0, sys.argv[2])
from fake_openai import FakeOpenAI, ServerThread
from runner_data import make_instrument, make_personas, make_trials
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer
calls = int(sys.argv[1])
inst = make_instrument()
trials = make_trials(inst, 1, no_persona=False)
personas = make_personas(1)
srv = ServerThread(FakeOpenAI()).start()
tmp = Path(tempfile.mkdtemp())
runner = RunnerConfig(cache_dir=str(tmp / "cache"), concurrency=4)
model = ModelConfig(backend="litellm", name="openai/fake", api_base=srv.url, elicitation="sample")
def one(run_dir):
    t = time.perf_counter()
    res = administer(trials, personas, inst, model=model, prompt=PromptConfig(), runner=runner, run_dir=run_dir,
                     seed=1, progress=False)
    assert res.stats["rows"] == len(trials)
    return time.perf_counter() - t
one(tmp / "run")  # fills the cache and the parts; imports litellm
resume = [one(tmp / "run") for _ in range(calls)]
fresh = [one(tmp / f"fresh{i}") for i in range(calls)]
srv.stop()
print(json.dumps({"resume_s": round(statistics.median(resume), 4), "fresh_cached_s": round(statistics.median(fresh), 4)}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--old", default="main")
    ap.add_argument("--variants", default="old,new")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fixed-") as tmp:
        for name in args.variants.split(","):
            tree = ROOT if name == "new" else export(args.old, Path(tmp) / "old-tree")
            env = {**os.environ, "PYTHONPATH": str(tree / "src"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.calls), str(tree / "tests" / "support")],
                                 env=env, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{name}: {out.stderr[-2000:]}")
            print(json.dumps({"variant": name, "ref": "HEAD" if name == "new" else args.old,
                              **json.loads(out.stdout.strip().splitlines()[-1])}), flush=True)


if __name__ == "__main__":
    main()
