"""Benchmark: 1,000,000 personas raked on 6 attributes, with names and cues.

Measures wall time and peak traced memory (tracemalloc) of the whole ``sample_personas`` call,
and of the raking step alone with our numpy IPF versus the ``ipfn`` package on the same seed table
and targets, in the same run. Prints a markdown table (recorded in BENCHMARKS.md).

    python benchmarks/bench_personas.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
import tracemalloc

import numpy as np

from simsurvey.config import PROJECT_ROOT
from simsurvey.population import PopulationConfig, ipf, load_population_spec, marginals, sample_personas
from simsurvey.population.seed import read_seed, seed_table



def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    secs = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, secs, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    from ipfn import ipfn

    spec = load_population_spec(PROJECT_ROOT / "personas" / "us_adults.yaml")
    df, _ = read_seed(spec)
    table = seed_table(spec, df).table
    margins = spec.margins
    rows = []
    _, s, m = measure(lambda: ipf(table, margins, tol=1e-10))
    ours = ipf(table, margins, tol=1e-10)
    rows.append(("raking only: simsurvey ipf (numpy)", s, m, f"{ours.iterations} it, max err {ours.max_error:.1e}"))
    ref, s, m = measure(lambda: ipfn.ipfn(table.copy(), [x.copy() for x in margins], [[k] for k in range(table.ndim)],
                                          convergence_rate=1e-10, max_iteration=1000).iteration())
    err = max(float(np.abs(a - b).max()) for a, b in zip(marginals(ref), margins))
    rows.append(("raking only: ipfn 1.4.4", s, m, f"max err {err:.1e}, max |cell diff| vs ours {np.abs(ref - ours.table).max():.1e}"))
    for style in ("attributes", "backstory", "name"):
        cfg = PopulationConfig(spec="personas/us_adults.yaml", n=args.n)
        # No tracemalloc here: tracing every string allocation slows this step ~10x.
        t0 = time.perf_counter()
        sample = sample_personas(cfg, seed=1, cue_style=style)
        s, m = time.perf_counter() - t0, rss_mib()
        rows.append((f"sample_personas n={args.n:,}, cue={style} (peak RSS of process)", s, m,
                     f"max marginal err {sample.diagnostics['max_sample_marginal_error']:.2e} (1/n = {1 / args.n:.0e})"))
        del sample
    lines = [
        "# Persona sampler benchmark", "",
        f"Command: `python benchmarks/bench_personas.py --n {args.n}` (from the repo root).",
        f"Machine: {platform.machine()}, {platform.python_version()}, shared 2-core box; single run, not a median.",
        "Peak memory: raking rows = tracemalloc peak during the step; sample rows = process peak RSS so far (ru_maxrss, includes the interpreter and libraries).",
        f"Raking: {table.ndim} attributes, {table.size:,} cells, seed CCES 2016 ({len(df):,} rows).", "",
        "| step | wall s | peak MiB | note |", "|---|---:|---:|---|",
        *[f"| {name} | {s:.3f} | {m:.1f} | {note} |" for name, s, m, note in rows],
    ]
    # The table goes to stdout; BENCHMARKS.md keeps the figures that were recorded.
    print("\n".join(lines))


if __name__ == "__main__":
    main()
