"""Calibration of the battery scale-score metrics (``scale_*``), through the public ``analyze()`` API.

Usage:
    python benchmarks/calibrate_scale.py [--reps 200] [--grid full|quick] [--seed 1] [--csv out.csv]
    python benchmarks/calibrate_scale.py --ablate-neff [--reps 200]

``--ablate-neff`` runs one null cell (cluster, 300 / 2,000) with the one-hot effective size of
numeric questions instead of the mean's (why scale scores use the latter: VALIDATION.md).

Prints markdown (the tables of VALIDATION.md's "Battery scale scores" section). Each cell's
replicates are the batteries of one instrument, each with its own independent samples:

- a battery is 5 six-point Likert items from the one-factor model of
  :mod:`simsurvey.analysis.battery_calibration` (loadings 0.45–0.7, skewed thresholds, the first
  item worded in reverse and reverse-keyed), so the human scale score is bfi-like (alpha ≈ 0.7);
- silicon differs in the latent trait θ ~ N(δ, σ²): ``null`` (δ = 0, σ = 1: the same population,
  the tests' size), ``shift`` (δ = 0.25: a mean difference, power of scale_mean_diff) and
  ``compress`` (σ = 0.7: homogenized silicon scores, power of scale_variance_ratio);
- modes: ``answers`` (one battery per persona), ``cluster`` (each persona answers in 3 replicates,
  θ fixed, fresh item noise: persona clustering), ``weights`` (persona and respondent weights
  U(0.5, 2), unrelated to the answers);
- sizes: silicon 100 / 300 / 500 personas against 1,000 / 2,000 / 3,000 human respondents.

The truth of every metric comes from the two populations' score distributions, each estimated
from 2,000,000 simulated respondents (the score has 26 support points 1, 1.2, ..., 6).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from simsurvey import analyze
from simsurvey.analysis import AnalysisConfig
from simsurvey.analysis.battery_calibration import LOADINGS, draw_items
from simsurvey.analysis.scale import SCALE_METRICS
from simsurvey.instruments.models import Instrument

K = 6
CODES = [str(c) for c in range(1, K + 1)]
ITEMS = [f"i{j}" for j in range(len(LOADINGS))]
REVERSE = [True] + [False] * (len(LOADINGS) - 1)
SCENARIOS = {"null": (0.0, 1.0), "shift": (0.25, 1.0), "compress": (0.0, 0.7)}
TESTED = ("scale_mean_diff", "scale_variance_ratio", "scale_wasserstein_norm", "scale_ks")
SUPPORT = 1.0 + np.arange(5 * (K - 1) + 1) / 5


@dataclass(frozen=True)
class Cell:
    mode: str  # answers | cluster | weights
    n_silicon: int
    n_human: int
    scenario: str
    reps: int


def _scores(raw: np.ndarray) -> np.ndarray:
    """Hand scoring of simulated raw categories 0..5 (first item worded in reverse): 1..6, reflected."""
    x = raw + 1.0
    x[:, 0] = (K + 1) - x[:, 0]
    return x.mean(1)


@lru_cache(maxsize=8)
def _pmf(scenario: str) -> np.ndarray:
    """The population distribution of the scale score over :data:`SUPPORT` (2,000,000 draws)."""
    mu, sd = SCENARIOS[scenario]
    rng = np.random.default_rng(2024)
    s = _scores(draw_items(rng, mu + sd * rng.standard_normal(2_000_000), np.asarray(LOADINGS)))
    idx = np.rint((s - 1.0) * 5).astype(int)
    return np.bincount(idx, minlength=len(SUPPORT)) / len(s)


def truth(scenario: str) -> dict[str, float]:
    """Every scale_* metric of the silicon population of ``scenario`` against the human one."""
    ps, ph = _pmf(scenario), _pmf("null")
    ms, mh = (ps * SUPPORT).sum(), (ph * SUPPORT).sum()
    vs, vh = (ps * (SUPPORT - ms) ** 2).sum(), (ph * (SUPPORT - mh) ** 2).sum()
    gap = np.abs(np.cumsum(ps) - np.cumsum(ph))
    return {"scale_mean_silicon": ms, "scale_mean_human": mh, "scale_mean_diff": ms - mh,
            "scale_sd_silicon": np.sqrt(vs), "scale_sd_human": np.sqrt(vh), "scale_variance_ratio": vs / vh,
            "scale_wasserstein_norm": (gap[:-1] * np.diff(SUPPORT)).sum() / (K - 1), "scale_ks": gap.max()}


def instrument(n_batteries: int) -> Instrument:
    return Instrument.model_validate({"id": "cal", "title": "cal", "questions": [
        {"id": f"b{r}", "kind": "battery", "text": "How accurately does each statement describe you?",
         "item_kind": "ordinal", "options": [{"code": c, "label": c} for c in CODES],
         "items": [{"id": f"b{r}_{i}", "text": i, "reverse_keyed": rev} for i, rev in zip(ITEMS, REVERSE)]}
        for r in range(n_batteries)]})


def simulate(cell: Cell, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Instrument]:
    """responses, reference, personas and the instrument of one cell (one battery per replicate)."""
    rng = np.random.default_rng(seed)
    inst = instrument(cell.reps)
    mu, sd = SCENARIOS[cell.scenario]
    n, m = cell.n_silicon, (3 if cell.mode == "cluster" else 1)
    w = rng.uniform(0.5, 2, n) if cell.mode == "weights" else np.ones(n)
    personas = pd.DataFrame({"persona_id": np.arange(n), "weight": w, "cue": "x"})
    codes = np.array(CODES, dtype=object)
    pid, rep = np.repeat(np.arange(n), m), np.tile(np.arange(m), n)
    resp, ref = [], []
    for r in range(cell.reps):
        xs = draw_items(rng, np.repeat(mu + sd * rng.standard_normal(n), m), np.asarray(LOADINGS)).astype(int)
        xh = draw_items(rng, rng.standard_normal(cell.n_human), np.asarray(LOADINGS)).astype(int)
        wh = rng.uniform(0.5, 2, cell.n_human) if cell.mode == "weights" else np.ones(cell.n_human)
        for j, item in enumerate(ITEMS):
            qid = f"b{r}_{item}"
            resp.append(pd.DataFrame({"persona_id": pid, "question_id": qid, "replicate": rep,
                                      "answer_code": codes[xs[:, j]]}))
            ref.append(pd.DataFrame({"respondent_id": np.arange(cell.n_human).astype(str), "weight": wh,
                                     "question_id": qid, "answer_code": codes[xh[:, j]]}))
    responses = pd.concat(resp, ignore_index=True).assign(condition_id="as_is|numbers", model="sim", valid=True,
                                                          refusal=False)
    responses["persona_id"] = responses["persona_id"].astype("Int64")
    reference = pd.concat(ref, ignore_index=True).assign(source="sim")
    return responses, reference, personas, inst


def run_cell(cell: Cell, *, seed: int, bootstrap: int = 200, null_draws: int = 400) -> pd.DataFrame:
    """Per scale_* metric: coverage of the 95% CI, P(p ≤ 0.05), mean value, null mean, truth."""
    responses, reference, personas, inst = simulate(cell, seed)
    cfg = AnalysisConfig(group_vars=[], bootstrap=bootstrap, null_draws=null_draws, n_permutations=0, pairs=False)
    m = analyze(responses, reference, personas, inst, cfg, seed=seed).metrics
    m = m[m["metric"].isin(SCALE_METRICS) & (m["group_var"] == "all")]
    t = truth(cell.scenario)
    rows = []
    for metric, g in m.groupby("metric"):
        rows.append({"mode": cell.mode, "n_silicon": cell.n_silicon, "n_human": cell.n_human,
                     "scenario": cell.scenario, "metric": metric, "n": len(g), "truth": t[metric],
                     "coverage": float(((g.ci_low <= t[metric]) & (t[metric] <= g.ci_high)).mean()),
                     "reject": float((g.p_value <= 0.05).mean()) if g.p_value.notna().any() else np.nan,
                     "mean": float(g.value.mean()), "null_mean": float(g.null_mean.mean()),
                     "n_eff_silicon": float(g.n_eff_silicon.mean())})
    return pd.DataFrame(rows)


def cells(grid: str, reps: int) -> list[Cell]:
    sizes = [(100, 1000), (300, 2000), (500, 3000)] if grid == "full" else [(300, 2000)]
    return [Cell(mode, ns, nh, sc, reps) for mode in ("answers", "cluster", "weights") for ns, nh in sizes
            for sc in SCENARIOS]


def markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A markdown table (no tabulate dependency)."""
    d = df.reset_index() if index else df
    cols = [str(c) for c in d.columns]
    fmt = lambda v: "–" if isinstance(v, float) and np.isnan(v) else (f"{v:.3f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def report(res: pd.DataFrame) -> str:
    """The markdown tables of VALIDATION.md from the cells' rows."""
    order = list(SCENARIOS)
    out = ["### Scale scores: test size (null: P(p ≤ 0.05)) and power (shift, compress)\n"]
    t = res[res.metric.isin(TESTED)].pivot_table(index=["mode", "n_silicon", "n_human", "metric"],
                                                 columns="scenario", values="reject")
    out.append(markdown(t.reindex(columns=order)))
    out.append("\n### Scale scores: coverage of the 95% CIs (W1 and KS not at null: a true distance of 0)\n")
    c = res[~res.metric.isin(["scale_mean_silicon", "scale_mean_human"])].pivot_table(
        index=["mode", "n_silicon", "n_human", "metric"], columns="scenario", values="coverage").reindex(columns=order)
    c.loc[c.index.get_level_values("metric").isin(["scale_wasserstein_norm", "scale_ks"]), "null"] = np.nan
    out.append(markdown(c))
    return "\n".join(out)


def ablate_neff(reps: int, seed: int = 77) -> pd.DataFrame:
    """The null cell (cluster, 300 / 2,000) with the scores' effective sizes from the one-hot value
    vectors (``neff_by="values"``, exact matches only) instead of the mean's."""
    import simsurvey.analysis.battery_rows as rows

    orig = rows.numeric_block

    def one_hot(*a, **k):  # the scale rows' call, with the numeric questions' effective size
        return orig(*a, **{**k, "neff_by": "values"})

    rows.numeric_block = one_hot
    try:
        return run_cell(Cell("cluster", 300, 2000, "null", reps), seed=seed)
    finally:
        rows.numeric_block = orig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ablate-neff", action="store_true", help="the one-hot effective-size ablation only")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--grid", choices=["full", "quick"], default="full")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", help="also write every cell's rows here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.ablate_neff:
        res = ablate_neff(args.reps)
        print(markdown(res[["metric", "coverage", "reject", "mean", "null_mean", "n_eff_silicon"]], index=False))
        return 0
    parts = []
    for i, c in enumerate(cells(args.grid, args.reps)):
        parts.append(run_cell(c, seed=args.seed * 1000 + i))
        print(f"{c} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        if args.csv:
            pd.concat(parts, ignore_index=True).to_csv(args.csv, index=False)
    res = pd.concat(parts, ignore_index=True)
    print(f"reps {args.reps} per cell, seed {args.seed}, {time.perf_counter() - t0:.0f} s\n")
    print(report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
