"""Calibration of the battery (Cronbach's alpha, inter-item correlations) and multi_select
(selection rate) statistics by simulation, through :mod:`simsurvey.analysis.battery`.

Usage: python benchmarks/calibrate_battery.py [--reps 200] [--b 400] [--seed 0] [--csv out.csv]

Prints the ``## Batteries and multi_select`` tables of VALIDATION.md (markdown) to stdout. The
populations, modes and truths are documented in :mod:`simsurvey.analysis.battery_calibration`.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from simsurvey.analysis.battery_calibration import (
    MODES,
    BatteryCell,
    SelectionCell,
    battery_truth,
    run_battery_cell,
    run_selection_cell,
)

SIZES = ((200, 2800), (100, 2800), (1000, 2800))
BATTERY_D = (0.0, 0.05, 0.1, 0.2)
SELECTION_D = (0.0, 0.05, 0.1)


def grid(reps: int, b: int, seed: int) -> pd.DataFrame:
    rows = []
    for si, (ns, nh) in enumerate(SIZES):
        for mi, mode in enumerate(MODES):
            for di, d in enumerate(BATTERY_D):
                cell = BatteryCell(mode=mode, n_silicon=ns, n_human=nh, d=d, reps=reps)
                for r in run_battery_cell(cell, seed=seed * 1000 + si * 100 + mi * 10 + di, b=b):
                    rows.append({"kind": "battery", "mode": mode, "n_silicon": ns, "n_human": nh, "d": d, **r})
            for di, d in enumerate(SELECTION_D):
                cell = SelectionCell(mode=mode, n_silicon=ns, n_human=nh, d=d, reps=reps)
                for r in run_selection_cell(cell, seed=seed * 1000 + 500 + si * 100 + mi * 10 + di, b=b):
                    rows.append({"kind": "multi_select", "mode": mode, "n_silicon": ns, "n_human": nh, "d": d, **r})
    return pd.DataFrame(rows)


def tables(df: pd.DataFrame) -> str:
    out = []
    bat = df[df.kind == "battery"]
    out.append("### Battery: coverage of 95% intervals, size (d = 0) and power of the tests\n")
    out.append("| mode | n_silicon/n_human | d (loading shift) | true Δα | α_s cov | α_h cov | Δα cov | Δα P(p≤.05) "
               "| Δα_std cov | Δα_std P(p≤.05) | true MAD | MAD cov | MAD P(p≤.05) | mean MAD |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (mode, ns, nh, d), g in bat.groupby(["mode", "n_silicon", "n_human", "d"], sort=False):
        s = g.set_index("statistic")
        mad_cov = "—" if d == 0 else f"{s.loc['corr_mad', 'coverage']:.3f}"
        out.append(f"| {mode} | {ns}/{nh} | {d:g} | {s.loc['alpha_diff', 'truth']:.3f} "
                   f"| {s.loc['alpha_silicon', 'coverage']:.3f} | {s.loc['alpha_human', 'coverage']:.3f} "
                   f"| {s.loc['alpha_diff', 'coverage']:.3f} | {s.loc['alpha_diff', 'reject']:.3f} "
                   f"| {s.loc['alpha_std_diff', 'coverage']:.3f} | {s.loc['alpha_std_diff', 'reject']:.3f} "
                   f"| {s.loc['corr_mad', 'truth']:.3f} | {mad_cov} | {s.loc['corr_mad', 'reject']:.3f} "
                   f"| {s.loc['corr_mad', 'mean']:.3f} |")
    sel = df[df.kind == "multi_select"]
    out.append("\n### multi_select: per-option selection rates (7 options pooled), coverage, size and power\n")
    out.append("| mode | n_silicon/n_human | d (rate shift) | rate_s cov | rate_h cov | diff cov | diff P(p≤.05) "
               "| mean CI width of diff |")
    out.append("|---|---|---|---|---|---|---|---|")
    for (mode, ns, nh, d), g in sel.groupby(["mode", "n_silicon", "n_human", "d"], sort=False):
        s = g.set_index("statistic")
        out.append(f"| {mode} | {ns}/{nh} | {d:g} | {s.loc['rate_silicon', 'coverage']:.3f} "
                   f"| {s.loc['rate_human', 'coverage']:.3f} | {s.loc['rate_diff', 'coverage']:.3f} "
                   f"| {s.loc['rate_diff', 'reject']:.3f} | {s.loc['rate_diff', 'width']:.3f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--b", type=int, default=400, help="bootstrap replicates per side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", default=None, help="also write every cell's rows here")
    args = ap.parse_args()
    t0 = time.time()
    for d in BATTERY_D:
        battery_truth(d)
    df = grid(args.reps, args.b, args.seed)
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(tables(df))
    print(f"\n{args.reps} replicates per cell, B = {args.b}, seed {args.seed}; {time.time() - t0:.0f} s "
          f"(truths from {2_000_000:,} draws; alpha_h = {float(battery_truth(0.0)['alpha']):.3f}).")


if __name__ == "__main__":
    main()
