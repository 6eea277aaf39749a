"""The Ray executor on one machine vs the local runner, side by side on the same trials.

Against the fake OpenAI-compatible server (its own process, ``--latency`` per answer):

* ``local``  — ``administer()`` with the local executor at concurrency ``workers x per_worker``;
* ``ray``    — ``runner.executor=ray``, the ``http`` processor, ``--workers`` Ray workers with
               ``--per-worker`` calls in flight each (the same total), on a local Ray started
               once before the timings (its start-up is reported on its own line).

Both with a fresh response cache per repetition (the Ray executor writes every answer to it as it
arrives; so does the local runner). Reported: wall time and rows/s (median of ``--reps``), the
ratio ray / local, and the driver's CPU per row (``time.process_time`` of this process: under Ray
the workers' HTTP calls run in other processes, so this is what stays on the driver — rendering
twice (the collecting pass and the answering pass), cache keys, cache writes, row building, parts).
``--embedded`` adds a small embedded-model run (SmolLM2, fp32): local (2 torch threads) vs Ray (2
workers of 1 CPU).

Usage::

    python benchmarks/bench_ray.py --reps 3                 # ~2-3 minutes on 2 cores
    python benchmarks/bench_ray.py --reps 1 --embedded      # + the embedded model (~2 s a prompt)
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

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["CI"] = "true"  # no progress bar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_runner import build

from simsurvey.respondents.config import ModelConfig, RayConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer


def run(executor: str, trials, personas, inst, model: ModelConfig, *, concurrency: int, workers: int,
        per_worker: int, chunk_size: int, backend=None) -> tuple[float, float, dict]:
    """(wall s, driver CPU s, stats) of one administer call on a fresh run dir and cache."""
    with tempfile.TemporaryDirectory() as tmp:
        runner = RunnerConfig(executor=executor, concurrency=concurrency, cache_dir=str(Path(tmp) / "cache"),
                              chunk_size=chunk_size, timeout_s=300,
                              ray=RayConfig(num_workers=workers, concurrency_per_worker=per_worker))
        w0, c0 = time.perf_counter(), time.process_time()
        res = administer(trials, personas, inst, model=model, prompt=PromptConfig(), runner=runner,
                         run_dir=Path(tmp) / "run", seed=1, progress=False, backend=backend)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    assert len(res.frame) == len(trials) and res.stats["errors"] == 0, res.stats
    return wall, cpu, res.stats


def table(title: str, n: int, results: dict[str, list[tuple[float, float]]]) -> None:
    print(f"\n{title}: {n} rows, median of {len(next(iter(results.values())))}\n")
    print("| executor | wall s | rows/s | driver CPU ms/row | wall vs local |")
    print("|---|---|---|---|---|")
    base = statistics.median(w for w, _ in results["local"])
    for name, got in results.items():
        wall = statistics.median(w for w, _ in got)
        cpu = statistics.median(1000 * c / n for _, c in got)
        print(f"| {name} | {wall:.2f} | {n / wall:,.0f} | {cpu:.2f} | {wall / base:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=250)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--per-worker", type=int, default=32)
    ap.add_argument("--chunk-size", type=int, default=20_000)
    ap.add_argument("--embedded", action="store_true", help="also a small embedded-model run (slow: ~2 s a prompt)")
    args = ap.parse_args()

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"ray.init(num_cpus=2): {time.perf_counter() - t0:.1f} s (once per run; not in the timings below)")
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/support/fake_openai.py"), "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        inst, personas, trials = build(args.personas, args.questions)
        model = ModelConfig(backend="litellm", name="openai/fake", api_base=f"http://127.0.0.1:{port}/v1",
                            elicitation="logprobs")
        kw = {"concurrency": args.workers * args.per_worker, "workers": args.workers,
              "per_worker": args.per_worker, "chunk_size": args.chunk_size}
        run("ray", trials.head(50), personas, inst, model, **kw)  # warm: Ray's task workers, imports
        results: dict[str, list[tuple[float, float]]] = {"local": [], "ray": []}
        for rep in range(args.reps):
            for name in ("local", "ray") if rep % 2 == 0 else ("ray", "local"):  # alternate the order
                wall, cpu, stats = run(name, trials, personas, inst, model, **kw)
                results[name].append((wall, cpu))
                print(f"rep {rep} {name:<5} {wall:6.2f} s  {len(trials) / wall:6.0f} rows/s  "
                      f"{1000 * cpu / len(trials):5.2f} driver CPU ms/row  calls={stats['calls']}", flush=True)
        table(f"fake server ({args.latency * 1000:.0f} ms), {args.workers} workers x {args.per_worker} vs local "
              f"concurrency {args.workers * args.per_worker}", len(trials), results)
    finally:
        server.terminate()
        server.wait(10)

    if args.embedded:
        from simsurvey.respondents.local import (
            convert_gguf,
            converted_dir,
            embedded_gguf,
        )

        gguf = embedded_gguf()
        model_dir = str(convert_gguf(gguf, converted_dir(gguf, "float32"), dtype="float32"))
        inst, personas, trials = build(4, 2)
        trials = trials[trials["condition_id"] == "as_is|letters"].reset_index(drop=True)
        from simsurvey.respondents.local import LocalBackend

        # Threads: the local backend's default (the cores: 2); a Ray worker's, its num_cpus_per_worker (1).
        model = ModelConfig(backend="local", name="smollm2", elicitation="logprobs",
                            params={"dtype": "float32", "model_dir": model_dir})
        loaded = LocalBackend(model)
        loaded.load()  # the local runner's model is loaded once too, as the workers' is
        emb: dict[str, list[tuple[float, float]]] = {"local": [], "ray": []}
        kw = {"concurrency": 2, "workers": 2, "per_worker": 1, "chunk_size": args.chunk_size}
        run("ray", trials, personas, inst, model, **kw)  # warm: the workers load the model once
        for rep in range(args.reps):
            for name in ("local", "ray"):
                wall, cpu, _ = run(name, trials, personas, inst, model, backend=loaded if name == "local" else None, **kw)
                emb[name].append((wall, cpu))
                print(f"embedded rep {rep} {name:<5} {wall:6.2f} s", flush=True)
        table("embedded SmolLM2-135M fp32, local (2 threads) vs Ray (2 workers x 1 CPU), model loaded",
              len(trials), emb)
    ray.shutdown()


if __name__ == "__main__":
    main()
