"""Calibration of the question-order (context) effect tests by simulation, through the public API.

Usage: python benchmarks/calibrate_context.py [--reps 100] [--personas 100 200] [--effects 0 0.15 0.3]
       [--permutations 199] [--seed 0]

Each simulated study (:func:`simsurvey.analysis.context_sim.simulate_context`) builds a sequential
design of 4 ordinal questions (4 options) in a random order per conversation
(:func:`simsurvey.instruments.build_design`), asks it through :func:`simsurvey.runner.administer`
with :class:`~simsurvey.analysis.context_sim.PreviousQuestionBackend` (q1's first option gains
``effect`` probability when q0 was asked just before; nothing else depends on the order) and scores
it with :func:`simsurvey.analysis.context_effects`. Prints the markdown of VALIDATION.md's
``## Question-order (context) effects`` section.

Size: the share of p < 0.05 over the rows other than the target (at effect 0 every row is null;
with an effect, q1's other contrasts are not: their "otherwise" pool holds the shifted answers), and
the family-wise share: studies in which some row of a question without an effect (q0, q2, q3) has
Holm ``p_adjusted`` < 0.05. Power: the share of studies whose q1 ``after:q0``
row has ``p_adjusted`` < 0.05.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simsurvey.analysis.context_sim import simulate_context

ALPHA = 0.05


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--personas", type=int, nargs="+", default=[100, 200])
    ap.add_argument("--effects", type=float, nargs="+", default=[0.0, 0.15, 0.3])
    ap.add_argument("--permutations", type=int, default=199)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print("| personas | effect | studies | size: rows other than the target, p < 0.05 (n rows) | size: family-wise, Holm (questions without effect) | power: q1 after q0, Holm p < 0.05 | mean JS of q1 after q0 |")
    print("|---|---|---|---|---|---|---|")
    for n in args.personas:
        for effect in args.effects:
            null_p, fam, hit, js = [], [], [], []
            for rep in range(args.reps):
                df = simulate_context(n_personas=n, effect=effect, seed=args.seed * 100_003 + rep * 7 + n,
                                      n_permutations=args.permutations)
                target = (df["question_id"] == "q1") & (df["condition_a"] == "after:q0")
                clean = ~target if effect > 0 else np.ones(len(df), bool)
                null_p += df.loc[clean, "p_value"].dropna().tolist()
                no_effect_q = df[df["question_id"] != "q1"] if effect > 0 else df
                fam += [bool((g["p_adjusted"] < ALPHA).any()) for _, g in no_effect_q.groupby("question_id")]
                hit.append(bool((df.loc[target, "p_adjusted"] < ALPHA).any()))
                js += df.loc[target, "js_divergence"].tolist()
            null_p = np.asarray(null_p)
            size = float(np.mean(null_p < ALPHA))
            se = np.sqrt(ALPHA * (1 - ALPHA) / len(null_p))
            print(f"| {n} | {effect:g} | {args.reps} | {size:.3f} (±{1.96 * se:.3f}; {len(null_p)}) | {np.mean(fam):.3f} ({len(fam)}) "
                  f"| {np.mean(hit):.2f} | {np.mean(js):.3f} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
