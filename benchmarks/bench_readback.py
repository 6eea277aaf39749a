"""Reading a million checkpointed rows back: peak RSS and seconds, old code vs new, side by side.

The calls of a million-trial run take hours on this 2-core machine (the fake server answers in
100 ms, the client does ~150-300 req/s, the reference baseline ~3-6 ms a row), so this measures
the part of the runner whose memory grew with the design: the end of an ``administer()`` call
whose rows are all checkpointed (a resume with nothing left to ask: done keys, the plan, the
result's rows) and the write of ``responses.parquet`` (old: ``result.frame`` written with
``write_parquet``, as the old pipeline did; new: ``write_responses`` from ``result.selection``).

The parts are synthesized once (``--trials`` rows of one model, 10 five-option questions, 2
conditions, ``runner.flush_every``-sized parts of 2,000 rows, the full response schema with a
5-entry ``probs`` map); each variant then runs in its own process on the same parts, peak RSS
from ``resource.getrusage`` (ru_maxrss). Usage::

    PYTHONPATH=src python benchmarks/bench_readback.py --trials 1000000     # ~5-10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import export

N_Q, CODES = 10, ["1", "2", "3", "4", "5"]

CHILD = r'''
import json, os, resource, sys, time
from pathlib import Path
os.environ["CI"] = "true"
import pandas as pd
from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.io import write_parquet
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import RESPONSE_SCHEMA, administer
work = Path(sys.argv[1])
qs = tuple(Question(id=f"q{i}", text=f"Statement {i}.", kind="ordinal",
                    options=tuple(Option(code=c, label=f"option {c}") for c in "12345")) for i in range(10))
inst = Instrument(id="bench", title="bench", questions=qs)
trials = pd.read_parquet(work / "trials.parquet")
trials["option_order"] = [list(o) for o in trials["option_order"]]
personas = pd.read_parquet(work / "personas.parquet")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
res = administer(trials, personas, inst, model=ModelConfig(backend="litellm", name="openai/fake",
                 api_base="http://127.0.0.1:9/v1", elicitation="sample"), prompt=PromptConfig(),
                 runner=RunnerConfig(cache_dir=str(work / "cache")), run_dir=work / "run", seed=1, progress=False)
t1 = time.perf_counter()
out = work / f"responses-{sys.argv[2]}.parquet"
if hasattr(res, "selection"):
    from simsurvey.runner._checkpoint import write_responses
    n = write_responses(out, [res.selection])
else:
    write_parquet(res.frame, out, kind="responses", schema=RESPONSE_SCHEMA)
    n = len(res.frame)
t2 = time.perf_counter()
print(json.dumps({"rows": n, "new_rows": res.stats["new_rows"], "resumed_rows": res.stats["resumed_rows"],
                  "administer_s": round(t1 - t0, 2), "write_s": round(t2 - t1, 2),
                  "inputs_rss_mb": round(base / 1024), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
'''


def synthesize(work: Path, trials_n: int) -> None:
    from simsurvey.runner._checkpoint import RESPONSE_SCHEMA

    per = N_Q * 2
    n_p = max(1, trials_n // per)
    pid = np.repeat(np.arange(n_p), per)
    q = np.tile(np.repeat(np.arange(N_Q), 2), n_p)
    rev = np.tile([False, True], n_p * N_Q)
    n = len(pid)
    orders = np.where(rev, 1, 0)
    trials = pd.DataFrame({
        "persona_id": pd.array(pid, dtype="Int64"), "question_id": [f"q{i}" for i in q],
        "condition_id": np.where(rev, "reversed|numbers", "as_is|letters"), "replicate": 0,
        "order_mode": np.where(rev, "reversed", "as_is"), "label_style": np.where(rev, "numbers", "letters"),
        "neutral_option": False, "cue_style": "attributes",
        "option_order": [CODES[::-1] if r else CODES for r in orders],
    })
    trials.to_parquet(work / "trials.parquet")
    pd.DataFrame({"persona_id": np.arange(n_p), "cue": [f"You are persona {i}." for i in range(n_p)]}).to_parquet(
        work / "personas.parquet")
    parts = work / "run" / "parts" / "responses" / "openai_fake"
    parts.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, lo in enumerate(range(0, n, 2000)):
        sl = slice(lo, min(lo + 2000, n))
        m = sl.stop - sl.start
        probs = rng.dirichlet(np.ones(5), m)
        cols = {name: pa.nulls(m, RESPONSE_SCHEMA.field(name).type) for name in RESPONSE_SCHEMA.names}
        t = trials.iloc[sl]
        for c in ("persona_id", "question_id", "condition_id", "replicate", "order_mode", "label_style",
                  "neutral_option", "cue_style", "option_order"):
            cols[c] = pa.array(t[c].tolist(), RESPONSE_SCHEMA.field(c).type)
        ans = [CODES[i] for i in probs.argmax(1)]
        cols.update(model=pa.array(["openai/fake"] * m), backend=pa.array(["litellm"] * m),
                    elicitation=pa.array(["sample"] * m), prompt_hash=pa.array([f"{lo + i:064x}" for i in range(m)]),
                    raw_text=pa.array(ans), answer_code=pa.array(ans), valid=pa.array([True] * m),
                    refusal=pa.array([False] * m),
                    probs=pa.array([list(zip(CODES, p.tolist())) for p in probs], RESPONSE_SCHEMA.field("probs").type),
                    latency_s=pa.array(rng.random(m)), prompt_tokens=pa.array([120] * m, pa.int64()),
                    completion_tokens=pa.array([1] * m, pa.int64()), cost_usd=pa.array([0.0] * m),
                    cached=pa.array([False] * m))
        pq.write_table(pa.table(cols, schema=RESPONSE_SCHEMA), parts / f"part-{k:05d}-{0:012x}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1_000_000)
    ap.add_argument("--old", default="main")
    ap.add_argument("--variants", default="old,new")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-readback-") as tmp:
        work = Path(tmp)
        synthesize(work, args.trials)
        for name in args.variants.split(","):
            tree = ROOT if name == "new" else export(args.old, work / "old-tree")
            env = {**os.environ, "PYTHONPATH": str(tree / "src"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            out = subprocess.run([sys.executable, "-c", CHILD, str(work), name], env=env, capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{name}: {out.stderr[-3000:]}")
            print(json.dumps({"variant": name, "ref": "HEAD" if name == "new" else args.old, "trials": args.trials,
                              **json.loads(out.stdout.strip().splitlines()[-1])}), flush=True)
        a, b = (pq.read_table(work / f"responses-{v}.parquet") for v in ("old", "new"))
        print(json.dumps({"identical_rows": a.equals(b)}))


if __name__ == "__main__":
    main()
