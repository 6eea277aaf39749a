"""Calibration grid of the analyzer's intervals and tests, through the public ``analyze()`` API.

Usage:
    python benchmarks/calibrate.py [--reps 200] [--grid full|quick] [--seed 1] [--csv cells.csv]

Prints markdown (the tables of VALIDATION.md) and, as each cell finishes, one progress line to
stderr. Cells (``simsurvey.analysis.calibration``): a human distribution q over K options and a
silicon distribution tilted from it by d ∈ {0 (equal), 0.15 (slight), 0.3 (moderate), 0.8
(large)}; n_silicon ∈ {100, 500, 2000}; n_human ∈ {n_silicon, 1,000, 60,000}; K ∈ {2, 5, 7}
in answers mode; the persona-cluster and probs modes and unequal weights at K = 5. Each cell's
replicates are the questions of one instrument (half ordinal, half nominal), each with its own
independent samples. The "perfect silicon sample" section draws silicon answers from the real
human distributions of the politics instrument (CCES 2016 and ANES 1996 reference data) and
analyzes them against those reference data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from simsurvey import analyze, load_instrument
from simsurvey.analysis import AnalysisConfig
from simsurvey.analysis.calibration import Cell, run_cell
from simsurvey.instruments.config import SurveyConfig

DIFFS = {0.0: "equal", 0.15: "slight", 0.3: "moderate", 0.8: "large"}
SIZES = [(ns, nh) for ns in (100, 500, 2000) for nh in dict.fromkeys((ns, 1000, 60000))]
DISTANCES = ["js_divergence", "kl_silicon_human", "kl_human_silicon", "total_variation",
             "wasserstein_norm", "representativeness"]
DIVERSITY = ["entropy_norm_silicon", "entropy_norm_human", "variance_silicon", "gini_simpson_silicon",
             "entropy_ratio", "variance_ratio", "gini_simpson_ratio", "entropy_ratio_answers",
             "variance_ratio_answers", "gini_simpson_ratio_answers"]
ASSOC = ["cramers_v_silicon", "cramers_v_human"]


def cells(grid: str, reps: int) -> list[Cell]:
    """The grid, K = 5 first (answers, cluster, probs, weights), then K = 2 and 7 (answers).

    Cells with 60,000 human respondents run ``reps // 3`` replicates (each is a 60,000-row
    human sample per question).
    """
    sizes = SIZES if grid == "full" else [(100, 1000), (500, 60000)]
    r = lambda nh: reps if nh < 60000 else max(reps // 3, 40)  # noqa: E731
    out = [Cell(mode, 5, ns, nh, d, r(nh)) for mode in ("answers", "cluster", "probs")
           for ns, nh in sizes for d in DIFFS]
    out += [Cell("answers", 5, 500, 1000, d, reps, weights=True) for d in DIFFS]
    if grid == "full":
        out += [Cell("answers", k, ns, nh, d, r(nh)) for k in (2, 7) for ns, nh in sizes for d in DIFFS]
    return out


def perfect_sample(n_silicon: int, runs: int, seed: int) -> pd.DataFrame:
    """Silicon answers drawn from each question's real human distribution; one analyze() per run."""
    inst = load_instrument("surveys/politics.yaml")
    from simsurvey.reference import load_reference

    ref = load_reference(inst, SurveyConfig())
    qs = [q for q in inst.questions if q.kind in ("single_choice", "ordinal")]
    rng = np.random.default_rng(seed)
    personas = pd.DataFrame({"persona_id": np.arange(n_silicon), "weight": 1.0, "cue": "x"})
    cfg = AnalysisConfig(group_vars=[], bootstrap=100, null_draws=500, n_permutations=0, pairs=False)
    rows = []
    for r in range(runs):
        parts = []
        for q in qs:
            h = ref[(ref.question_id == q.id) & ref.answer_code.isin(q.substantive_codes)]
            if h.empty:
                continue
            ans = rng.choice(h.answer_code.to_numpy(), n_silicon)
            parts.append(pd.DataFrame({"persona_id": pd.array(np.arange(n_silicon), dtype="Int64"),
                                       "question_id": q.id, "condition_id": "as_is|letters", "replicate": 0,
                                       "model": "perfect", "answer_code": ans, "valid": True, "refusal": False}))
        m = analyze(pd.concat(parts, ignore_index=True), ref, personas, inst, cfg, seed=seed + r).metrics
        m = m[(m.metric == "js_divergence") & (m.group_var == "all")]
        rows.append(m.assign(run=r))
    m = pd.concat(rows)
    src = ref.drop_duplicates("question_id").set_index("question_id")["source"]
    return m.assign(source=m.question_id.map(src))


def _fmt(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--grid", choices=["full", "quick"], default="full")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--perfect-runs", type=int, default=60)
    ap.add_argument("--csv", help="append each finished cell's rows to this CSV (and resume from it)")
    ap.add_argument("--tables-only", action="store_true",
                    help="print the tables of the cells already in --csv, run nothing")
    args = ap.parse_args()
    t0 = time.time()
    done = pd.read_csv(args.csv) if args.csv and Path(args.csv).exists() else pd.DataFrame()
    results = [done] if len(done) else []
    for i, cell in enumerate(cells(args.grid, args.reps)):
        if args.tables_only:
            break
        if len(done) and (done.cell == i).any():
            continue
        t = time.time()
        r = run_cell(cell, seed=args.seed + i)
        r = r.assign(cell=i, mode=cell.mode + ("+weights" if cell.weights else ""), k=cell.k,
                     n_silicon=cell.n_silicon, n_human=cell.n_human, d=DIFFS[cell.d])
        results.append(r)
        if args.csv:
            r.to_csv(args.csv, mode="a", header=not Path(args.csv).exists(), index=False)
        print(f"[{i + 1}] {cell.mode} K={cell.k} ns={cell.n_silicon} nh={cell.n_human} d={cell.d}: "
              f"{time.time() - t:.1f}s", file=sys.stderr, flush=True)
    res = pd.concat(results, ignore_index=True)
    print(f"<!-- {len(res)} cell × metric rows, {time.time() - t0:.0f} s -->\n")
    _tables(res)
    if args.tables_only:
        return
    for ns in (200, 2000):
        pm = perfect_sample(ns, args.perfect_runs, args.seed)
        print(f"\n### Perfect silicon sample, n_silicon = {ns} ({args.perfect_runs} runs × questions)\n")
        print("| reference | comparisons | called indistinguishable (p > 0.05) | mean JS / null mean |")
        print("|---|---|---|---|")
        for src, g in pm.groupby("source"):
            print(f"| {src} (n_human ≈ {int(g.n_human.median())}) | {len(g)} | {(g.p_value > 0.05).mean():.3f} | "
                  f"{g.value.mean() / g.null_mean.mean():.2f} |")


def _tables(res: pd.DataFrame) -> None:
    res = res.assign(size=res.n_silicon.astype(str) + "/" + res.n_human.astype(str))
    print("### Coverage of 95% CIs of the distances (answers mode), by difference; range over K × sizes\n")
    print("| metric | equal | slight | moderate | large |")
    print("|---|---|---|---|---|")
    a = res[(res["mode"] == "answers") & res.metric.isin(DISTANCES)]
    for metric in DISTANCES:
        g = a[a.metric == metric]
        cells_ = [f"{g[g.d == d].coverage.min():.2f}–{g[g.d == d].coverage.max():.2f} "
                  f"(mean {g[g.d == d].coverage.mean():.3f})" for d in DIFFS.values()]
        print(f"| {metric} | " + " | ".join(cells_) + " |")
    print("\n### Test size (equal: P(p ≤ 0.05)) and power, and the null-mean ratio at equality\n")
    print("| mode | metric | size min–max (mean) | power slight | power moderate | power large | "
          "mean JS / null mean at equality |")
    print("|---|---|---|---|---|---|---|")
    for mode in res["mode"].unique():
        for metric in ("js_divergence", "total_variation", "entropy_ratio", "variance_ratio", "gini_simpson_ratio"):
            g = res[(res["mode"] == mode) & (res.metric == metric)]
            if g.empty:
                continue
            z = g[g.d == "equal"]
            pw = [f"{g[g.d == d].reject.mean():.2f}" for d in ("slight", "moderate", "large")]
            print(f"| {mode} | {metric} | {z.reject.min():.3f}–{z.reject.max():.3f} ({z.reject.mean():.3f}) | "
                  + " | ".join(pw) + f" | {_fmt(z['mean'].mean() / z.null_mean.mean())} |")
    print("\n### Coverage of 95% CIs by mode (mean over cells; min in brackets)\n")
    metrics = DISTANCES + DIVERSITY + ASSOC
    print("| metric | " + " | ".join(f"{m} {d}" for m in res["mode"].unique() for d in ("equal", "moderate", "large"))
          + " |")
    print("|---|" + "---|" * (3 * res["mode"].nunique()))
    for metric in metrics:
        vals = []
        for mode in res["mode"].unique():
            for d in ("equal", "moderate", "large"):
                g = res[(res["mode"] == mode) & (res.metric == metric) & (res.d == d)]
                vals.append("—" if g.empty else f"{g.coverage.mean():.3f} ({g.coverage.min():.2f})")
        print(f"| {metric} | " + " | ".join(vals) + " |")
    print("\n### Association with an independent demographic (truth 0): coverage and size\n")
    print("| mode | metric | coverage of 0 (mean, min) | size of the independence test (mean, min–max) |")
    print("|---|---|---|---|")
    for mode in res["mode"].unique():
        for metric in ASSOC:
            g = res[(res["mode"] == mode) & (res.metric == metric)]
            print(f"| {mode} | {metric} | {g.coverage.mean():.3f}, {g.coverage.min():.2f} | "
                  f"{g.reject.mean():.3f}, {g.reject.min():.3f}–{g.reject.max():.3f} |")
    print("\n### Every cell (answers mode, JS and TV)\n")
    print("| K | n_silicon/n_human | d | JS coverage | JS P(p≤.05) | TV coverage | TV P(p≤.05) | JS/null |")
    print("|---|---|---|---|---|---|---|---|")
    a = res[res["mode"] == "answers"]
    for (k, size, d), g in a.groupby(["k", "size", "d"], sort=False):
        js = g[g.metric == "js_divergence"]
        tv = g[g.metric == "total_variation"]
        print(f"| {k} | {size} | {d} | {js.coverage.mean():.3f} | {js.reject.mean():.3f} | {tv.coverage.mean():.3f} | "
              f"{tv.reject.mean():.3f} | {_fmt(js['mean'].mean() / js.null_mean.mean())} |")


if __name__ == "__main__":
    main()
