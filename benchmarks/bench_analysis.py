"""Benchmark: analyze() vs a straightforward pandas-groupby implementation of the same metrics.

Usage: python benchmarks/bench_analysis.py [--rows 1000000] [--naive-rows 100000] [--bootstrap 200]
       [--permutations 200] [--null-draws 1000] [--weights both|uniform|equal]

Synthetic contract-shaped data (simsurvey.analysis.synthetic): 10 questions, 2 within-persona
conditions, 5 grouping variables. Persona weights are measured both ways, because the order-effect
permutation test depends on them: ``equal`` (all 1.0, as the population sampler writes them: the
exact hypergeometric shortcut on aggregated counts applies) and ``uniform`` (all distinct: condition
labels of rows are permuted, cost n_permutations x rows per pair).

Wall time is measured untraced; peak memory is the process's peak resident set size during the
call (VmHWM, reset before each call through /proc/self/clear_refs), reported as the increase
over the resident size before it (input frames excluded). tracemalloc is not used: it traces
every Python allocation and slowed the string-heavy code ~5x. The naive version groups with
pandas, scores each group with scipy and bootstraps with a Python loop over the B replicates;
the script asserts the point estimates agree.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, wasserstein_distance

from simsurvey.analysis import AnalysisConfig, analyze
from simsurvey.analysis.synthetic import synthetic_run

GROUP_VARS = ["sex", "age", "race_ethnicity", "college", "region"]
NAIVE_METRICS = ["js_divergence", "total_variation", "entropy_norm_silicon", "entropy_norm_human",
                 "wasserstein_norm"]


def _naive_n_eff(df: pd.DataFrame, unit: str, codes: list[str]) -> float:
    """Linearized effective size with pandas (simsurvey.analysis.inference's formula)."""
    y = pd.crosstab(df[unit], df.answer_code).reindex(columns=codes, fill_value=0)
    w = df.groupby(unit).weight.first().reindex(y.index).to_numpy()
    y = y.to_numpy(float)
    m = y.sum(1)
    p = (w[:, None] * y).sum(0) / (w * m).sum()
    tr = (w[:, None] ** 2 * (y - m[:, None] * p) ** 2).sum() / (w * m).sum() ** 2
    return (1 - (p**2).sum()) / tr if tr > 0 else np.inf


def naive(responses: pd.DataFrame, reference: pd.DataFrame, personas: pd.DataFrame, inst, b: int,
          seed: int, null_draws: int) -> pd.DataFrame:
    """Point estimates and percentile CIs of a few metrics, one pandas group at a time, and the
    sampling null of JS (effective sizes with pandas, a Python loop over the null draws)."""
    rng = np.random.default_rng(seed)
    s = responses[responses.persona_id.notna()].merge(personas, on="persona_id")
    out = []
    for q in inst.questions:
        codes = list(q.substantive_codes)
        k = len(codes)
        sq = s[(s.question_id == q.id) & s.valid & s.answer_code.isin(codes)]
        hq = reference[(reference.question_id == q.id) & reference.answer_code.isin(codes)]
        for var in ["all", *GROUP_VARS]:
            sk = [sq.assign(all="all")] if var == "all" else None
            sgroups = dict(list(sq.assign(all="all").groupby(var)))
            hgroups = dict(list(hq.assign(all="all").groupby(var)))
            for value in sorted(set(sgroups) & set(hgroups)):
                sd = sgroups[value].groupby("answer_code").weight.sum().reindex(codes, fill_value=0).to_numpy()
                hd = hgroups[value].groupby("answer_code").weight.sum().reindex(codes, fill_value=0).to_numpy()
                p, h = sd / sd.sum(), hd / hd.sum()
                es = _naive_n_eff(sgroups[value], "persona_id", codes)
                eh = _naive_n_eff(hgroups[value], "respondent_id", codes)

                def mm(d, n):  # Miller–Madow, normalized, clipped to [0, 1]
                    return min(1.0, (entropy(d) + ((d > 0).sum() - 1) / (2 * n)) / np.log(k))

                def score(p, h):
                    r = {"js_divergence": jensenshannon(p, h, base=2) ** 2,
                         "total_variation": 0.5 * np.abs(p - h).sum(),
                         "entropy_norm_silicon": mm(p, es),
                         "entropy_norm_human": mm(h, eh)}
                    if q.kind == "ordinal":
                        r["wasserstein_norm"] = wasserstein_distance(range(k), range(k), p, h) / (k - 1)
                    return r

                point = score(p, h)
                ws, wh = sgroups[value].weight, hgroups[value].weight
                ns = int(round(ws.sum() ** 2 / (ws**2).sum()))
                nh = int(round(wh.sum() ** 2 / (wh**2).sum()))
                reps = [score(rng.multinomial(ns, p) / ns, rng.multinomial(nh, h) / nh) for _ in range(b)]
                pool = (es * p + eh * h) / (es + eh)
                ks, kh = int(round(es)), int(round(eh))
                null = [jensenshannon(rng.multinomial(ks, pool) / ks, rng.multinomial(kh, pool) / kh, base=2) ** 2
                        for _ in range(null_draws)]
                for name, v in point.items():
                    lo, hi = np.nanpercentile([r[name] for r in reps], [2.5, 97.5])
                    nm = float(np.mean(null)) if name == "js_divergence" else np.nan
                    pv = (1 + np.sum(np.array(null) >= v - 1e-12)) / (1 + null_draws) if name == "js_divergence" \
                        else np.nan
                    out.append((q.id, var, str(value), name, v, lo, hi, nm, pv, es))
            del sk
    return pd.DataFrame(out, columns=["question_id", "group_var", "group_value", "metric", "value", "ci_low",
                                      "ci_high", "null_mean", "p_value", "n_eff_silicon"])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(fn):
    """(result, wall seconds, CPU seconds of the process, peak RSS increase in MiB during the call).

    CPU time is reported beside wall time because the machine is shared: under load the wall time
    of the same work varies 2x, its CPU time much less.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    except OSError:
        pass
    before = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return res, dt, cpu, max(_status_kib("VmHWM") - before, 0) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--naive-rows", type=int, default=100_000)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--null-draws", type=int, default=1000)
    ap.add_argument("--weights", choices=["both", "uniform", "equal"], default="both")
    ap.add_argument("--distribution", choices=["answers", "probs"], default="answers",
                    help="probs: every row carries a logprob map (as the local backend writes)")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)  # label:rows:weights (one child)
    args = ap.parse_args()
    n_q, n_cond = 10, 2
    cfg = AnalysisConfig(group_vars=GROUP_VARS, bootstrap=args.bootstrap, n_permutations=args.permutations,
                         distribution=args.distribution, null_draws=args.null_draws)
    weights = ["equal", "uniform"] if args.weights == "both" else [args.weights]
    if args.run is None:
        # Each measurement in a fresh process, so one run's freed memory and lazy imports do not
        # flatter the next one's peak.
        runs = [f"full:{args.rows}:{wt}" for wt in weights]
        if args.naive_rows and args.distribution == "answers":  # the naive version counts answer codes
            runs.append(f"naive-size:{args.naive_rows}:{weights[-1]}")
        passthru = ["--bootstrap", str(args.bootstrap), "--permutations", str(args.permutations),
                    "--distribution", args.distribution, "--null-draws", str(args.null_draws)]
        for run in runs:
            subprocess.run([sys.executable, __file__, *passthru, "--run", run], check=True)
        return
    label, rows_s, wt = args.run.split(":")
    rows = int(rows_s)
    # Warm up (imports, lazily loaded arrow kernels) on a tiny run before measuring.
    probs = args.distribution == "probs"
    p0, r0, h0, i0 = synthetic_run(n_personas=200, n_human=400, n_questions=2, seed=0, with_probs=probs)
    analyze(r0, h0, p0, i0, cfg, seed=0)
    n_personas = rows // (n_q * n_cond)
    t0 = time.perf_counter()
    personas, responses, reference, inst = synthetic_run(
        n_personas=n_personas, n_human=max(2000, n_personas // 2), n_questions=n_q, seed=1,
        silicon_shift=0.3, primacy=0.1, no_persona=0, persona_weights=wt,
        with_probs=probs)
    tag = f"{label}, {wt} persona weights, {args.distribution}"
    print(f"[{tag}] generated {len(responses):,} response rows, {len(reference):,} reference rows "
          f"in {time.perf_counter() - t0:.1f}s")
    res, dt, cpu, peak = measure(lambda: analyze(responses, reference, personas, inst, cfg, seed=7))
    print(f"[{tag}] analyze: {dt:.2f}s wall, {cpu:.2f}s CPU, peak RSS +{peak:.0f} MiB, "
          f"{len(res.metrics):,} metric rows, {len(res.order_effects)} order-effect rows")
    if label == "naive-size":
        nv, ndt, ncpu, npeak = measure(lambda: naive(responses, reference, personas, inst, args.bootstrap, 7,
                                                     args.null_draws))
        print(f"[{tag}] naive pandas groupby ({', '.join(NAIVE_METRICS)} only, JS null): {ndt:.2f}s wall, "
              f"{ncpu:.2f}s CPU, peak RSS +{npeak:.0f} MiB")
        m = res.metrics
        m = m[m.metric.isin(NAIVE_METRICS) & (m.model == "test/model")]
        j = m.merge(nv, on=["question_id", "group_var", "group_value", "metric"], suffixes=("", "_naive"))
        assert len(j) == len(nv), (len(j), len(nv))
        np.testing.assert_allclose(j.value, j.value_naive, rtol=1e-9, atol=1e-12)
        # CIs use different random draws: they agree only up to Monte Carlo error.
        width = (j.ci_high - j.ci_low).to_numpy()
        rel = np.median(np.abs(width - (j.ci_high_naive - j.ci_low_naive)) / np.maximum(width, 1e-12))
        print(f"[{tag}] {len(j)} point estimates agree (rtol 1e-9); median relative CI-width "
              f"difference {rel:.3f}")
        np.testing.assert_allclose(j.n_eff_silicon, j.n_eff_silicon_naive, rtol=1e-9)
        js = j[j.metric == "js_divergence"]
        nrel = np.median(np.abs(js.null_mean - js.null_mean_naive) / js.null_mean_naive)
        pdiff = np.median(np.abs(js.p_value - js.p_value_naive))
        print(f"[{tag}] {len(js)} effective sizes agree (rtol 1e-9); JS null means: median relative "
              f"difference {nrel:.3f}; p-values: median absolute difference {pdiff:.3f} (Monte Carlo)")


if __name__ == "__main__":
    main()
