"""Calibration grid of the treatment-effect intervals and tests (simsurvey.analysis.effects).

Usage:
    python benchmarks/calibrate_effects.py [--reps 400] [--seed 1] [--quick]

Prints the markdown tables of VALIDATION.md ("Survey experiments: treatment effects"). Cells
(``simsurvey.analysis.effects_calibration``): a two-arm experiment with K = 3 options on both
sides; human treatment tilt d ∈ {0 (no effect), 0.2 (small: mean effect 0.11 of a scale point),
0.5 (Pew-sized: 0.27)}; the silicon effect 1× the human tilt from a different control level;
n_silicon ∈ {100, 200, 400} personas per arm against n_human = 750 respondents per arm (the Pew
2012 split ballot's size); silicon modes answers, cluster (4 rows per persona, ρ = 0.6), probs
(Dirichlet vectors), and answers with unequal weights on both sides. Then the coverage of the
correlation of silicon with human effects across 5 and 10 experiments.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from simsurvey.analysis.effects_calibration import (
    EffectCell,
    grid_frame,
    run_cell,
    run_correlation,
)

D = {0.0: "none", 0.2: "small", 0.5: "Pew-sized"}


def cells(reps: int, quick: bool) -> list[EffectCell]:
    sizes = (100, 400) if quick else (100, 200, 400)
    out = [EffectCell(mode=m, n_silicon=n, d=d, reps=reps) for m in ("answers", "cluster", "probs")
           for n in sizes for d in D]
    out += [EffectCell(mode="answers", weights=True, n_silicon=n, d=d, reps=reps) for n in sizes for d in D]
    return out


def _f(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    for i, cell in enumerate(cells(args.reps, args.quick)):
        rows.append((cell, run_cell(cell, seed=args.seed * 1000 + i)))
        print(f"cell {i + 1}: {cell.mode} w={cell.weights} n={cell.n_silicon} d={cell.d} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr)
    df = grid_frame(rows)
    df["mode"] = df["mode"] + df["weights"].map({True: "+weights", False: ""})
    print(f"### Coverage of the 95% CIs (reps = {args.reps} per cell; share: mean over the 3 options)\n")
    print("| mode | n_silicon/arm | effect | silicon share | silicon mean | human share | human mean "
          "| silicon−human share | silicon−human mean | Fieller ratio (bounded share) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for _, r in df.iterrows():
        fb = f"{_f(r.get('fieller_coverage', float('nan')))} ({r['fieller_bounded']:.2f})"
        print(f"| {r['mode']} | {r['n_silicon']} | {D[r['d']]} | {_f(r['silicon_share_coverage'])} | "
              f"{_f(r['silicon_mean_coverage'])} | {_f(r['human_share_coverage'])} | {_f(r['human_mean_coverage'])} | "
              f"{_f(r['diff_share_coverage'])} | {_f(r['diff_mean_coverage'])} | {fb} |")
    print("\n### Rejection rate at α = 0.05 (effect none: size; small / Pew-sized: power)\n")
    print("| mode | n_silicon/arm | effect | silicon share (option 0) | silicon mean | silicon TV "
          "(randomization) | human share | human mean | human TV | silicon = human (mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for _, r in df.iterrows():
        print(f"| {r['mode']} | {r['n_silicon']} | {D[r['d']]} | {_f(r['silicon_share_reject'])} | "
              f"{_f(r['silicon_mean_reject'])} | {_f(r['silicon_tv_reject'])} | {_f(r['human_share_reject'])} | "
              f"{_f(r['human_mean_reject'])} | {_f(r['human_tv_reject'])} | {_f(r['diff_mean_reject'])} |")
    print("\n### Correlation of silicon with human mean effects across experiments (95% CI coverage)\n")
    print("| experiments | n_silicon/arm | true r | coverage | mean CI width |")
    print("|---|---|---|---|---|")
    for j, (n_exp, ns) in enumerate(((5, 100), (5, 400), (10, 100), (10, 400))):
        reps = max(args.reps // 4, 50)
        r = run_correlation(n_exp, ns, 750, reps, seed=args.seed * 7000 + j)
        print(f"| {n_exp} | {ns} | {r['truth']:.3f} | {r['coverage']:.3f} ({reps} reps) | {r['mean_width']:.3f} |")
    print(f"\n({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
