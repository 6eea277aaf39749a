"""Calibration of the raw-scale metrics of numeric questions, through the public ``analyze()`` API.

Usage:
    python benchmarks/calibrate_numeric.py [--reps 200] [--grid full|quick] [--seed 1]

Prints markdown (the tables of VALIDATION.md's numeric section). Each cell's replicates are the
questions of one instrument of 0-100 thermometers, each with its own independent samples:

- the human distribution is thermometer-like: 75% of the mass heaped on 0, 15, 30, 40, 50, 60, 70,
  85, 97 (ANES's card points; 50 the largest), 25% spread over 0..100;
- the silicon distribution is the human one tilted by ``exp(d (x − 50)/50)``: d = 0 (equal: the
  test's size), 0.3 (slight: power), 0.6 (moderate: coverage at a real difference);
- modes: ``answers`` (one answer per persona), ``cluster`` (each persona answers in 4 conditions,
  repeating its first answer with probability 0.7: persona clustering), ``weights`` (answers, with
  persona weights lognormal(0, 0.6) unrelated to the answers);
- sizes: silicon 100 / 300 / 1,000 personas against 1,000 / 5,000 human respondents.

The truth of every metric is computed from the two population distributions exactly.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simsurvey import analyze
from simsurvey.analysis import AnalysisConfig
from simsurvey.analysis.numeric import VALUE_METRICS
from simsurvey.instruments.models import Instrument, NumericScale, Question

HEAPS = np.array([0, 15, 30, 40, 50, 60, 70, 85, 97])
HEAP_WEIGHTS = np.array([6, 4, 5, 6, 12, 9, 8, 6, 4.0])
X = np.arange(101.0)
TESTED = ("value_mean_diff", "value_variance_ratio", "value_wasserstein_norm", "value_ks")


@dataclass(frozen=True)
class Cell:
    mode: str  # answers | cluster | weights
    n_silicon: int
    n_human: int
    d: float
    reps: int


def population(d: float = 0.0) -> np.ndarray:
    """The pmf over 0..100: heaped human answers, tilted by d for the silicon side."""
    p = np.full(101, 0.25 / 101)
    p[HEAPS] += 0.75 * HEAP_WEIGHTS / HEAP_WEIGHTS.sum()
    p = p * np.exp(d * (X - 50) / 50)
    return p / p.sum()


def truth(ps: np.ndarray, ph: np.ndarray) -> dict[str, float]:
    """Every value_* metric of the two populations."""
    ms, mh = (ps * X).sum(), (ph * X).sum()
    vs, vh = (ps * (X - ms) ** 2).sum(), (ph * (X - mh) ** 2).sum()
    gap = np.abs(np.cumsum(ps) - np.cumsum(ph))
    return {"value_mean_silicon": ms, "value_mean_human": mh, "value_mean_diff": ms - mh,
            "value_sd_silicon": np.sqrt(vs), "value_sd_human": np.sqrt(vh), "value_variance_ratio": vs / vh,
            "value_wasserstein_norm": gap[:-1].sum() / 100, "value_ks": gap.max()}


def simulate(cell: Cell, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Instrument]:
    """responses, reference, personas and the instrument of one cell (one question per replicate)."""
    rng = np.random.default_rng(seed)
    qs = tuple(Question(id=f"t{i}", text="Thermometer", kind="numeric", scale=NumericScale(min=0, max=100))
               for i in range(cell.reps))
    inst = Instrument(id="cal", title="cal", questions=qs)
    bin_of = {v: qs[0].bin_code(v) for v in X}
    ps, ph = population(cell.d), population(0.0)
    n = cell.n_silicon
    w = rng.lognormal(0, 0.6, n) if cell.mode == "weights" else np.ones(n)
    personas = pd.DataFrame({"persona_id": np.arange(n), "weight": w, "cue": "x"})
    resp, ref = [], []
    for q in qs:
        if cell.mode == "cluster":
            first = rng.choice(101, n, p=ps).astype(float)
            v = np.repeat(first, 4)
            redo = rng.random(4 * n) < 0.3
            v[redo] = rng.choice(101, int(redo.sum()), p=ps)
            pid, cond = np.repeat(np.arange(n), 4), np.tile([f"c{j}" for j in range(4)], n)
        else:
            v, pid, cond = rng.choice(101, n, p=ps).astype(float), np.arange(n), np.full(n, "c0")
        resp.append(pd.DataFrame({"persona_id": pd.array(pid, dtype="Int64"), "question_id": q.id,
                                  "condition_id": cond, "replicate": 0, "model": "sim",
                                  "answer_code": [bin_of[x] for x in v], "answer_value": v,
                                  "valid": True, "refusal": False}))
        h = rng.choice(101, cell.n_human, p=ph).astype(float)
        ref.append(pd.DataFrame({"source": "sim", "respondent_id": np.arange(cell.n_human).astype(str),
                                 "weight": 1.0, "question_id": q.id, "answer_code": [bin_of[x] for x in h],
                                 "answer_value": h}))
    return pd.concat(resp, ignore_index=True), pd.concat(ref, ignore_index=True), personas, inst


def run_cell(cell: Cell, *, seed: int, bootstrap: int = 200, null_draws: int = 400) -> pd.DataFrame:
    """Per value_* metric: coverage of the 95% CI, P(p ≤ 0.05), mean value, null mean, truth."""
    responses, reference, personas, inst = simulate(cell, seed)
    cfg = AnalysisConfig(group_vars=[], bootstrap=bootstrap, null_draws=null_draws, n_permutations=0, pairs=False)
    m = analyze(responses, reference, personas, inst, cfg, seed=seed).metrics
    m = m[m["metric"].isin(VALUE_METRICS) & (m["group_var"] == "all")]
    t = truth(population(cell.d), population(0.0))
    rows = []
    for metric, g in m.groupby("metric"):
        rows.append({"mode": cell.mode, "n_silicon": cell.n_silicon, "n_human": cell.n_human, "d": cell.d,
                     "metric": metric, "n": len(g), "truth": t[metric],
                     "coverage": float(((g.ci_low <= t[metric]) & (t[metric] <= g.ci_high)).mean()),
                     "reject": float((g.p_value <= 0.05).mean()) if g.p_value.notna().any() else np.nan,
                     "mean": float(g.value.mean()), "null_mean": float(g.null_mean.mean()),
                     "n_eff_silicon": float(g.n_eff_silicon.mean())})
    return pd.DataFrame(rows)


def cells(grid: str, reps: int) -> list[Cell]:
    sizes = [(100, 1000), (300, 5000), (1000, 5000)] if grid == "full" else [(300, 5000)]
    return [Cell(mode, ns, nh, d, reps) for mode in ("answers", "cluster", "weights") for ns, nh in sizes
            for d in (0.0, 0.3, 0.6)]


def markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A markdown table (no tabulate dependency)."""
    d = df.reset_index() if index else df
    cols = [str(c) for c in d.columns]
    fmt = lambda v: "–" if isinstance(v, float) and np.isnan(v) else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--grid", choices=["full", "quick"], default="full")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", help="also write every cell's rows here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    parts = []
    for i, c in enumerate(cells(args.grid, args.reps)):
        parts.append(run_cell(c, seed=args.seed + i))
        print(f"{c} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    res = pd.concat(parts, ignore_index=True)
    if args.csv:
        res.to_csv(args.csv, index=False)
    print(f"reps {args.reps} per cell, seed {args.seed}, {time.perf_counter() - t0:.0f} s\n")
    print("### Test size (d = 0: P(p ≤ 0.05)) and power (d = 0.3, 0.6)\n")
    t = res[res.metric.isin(TESTED)].pivot_table(index=["mode", "n_silicon", "n_human", "metric"], columns="d",
                                                 values="reject")
    print(markdown(t))
    print("\n### Coverage of the 95% CIs (d = 0.3, 0.6; at d = 0 for the smooth metrics)\n")
    c = res.pivot_table(index=["mode", "n_silicon", "n_human", "metric"], columns="d", values="coverage")
    # At a distance of exactly 0 no interval of a non-negative estimate is honest (see inference).
    c.loc[c.index.get_level_values("metric").isin(["value_wasserstein_norm", "value_ks"]), 0.0] = np.nan
    print(markdown(c))
    print("\n### Null mean vs the mean distance at d = 0 (a perfect silicon sample scores its null)\n")
    z = res[(res.d == 0.0) & res.metric.isin(["value_wasserstein_norm", "value_ks"])]
    print(markdown(z[["mode", "n_silicon", "n_human", "metric", "mean", "null_mean", "n_eff_silicon"]], index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
