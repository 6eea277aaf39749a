"""Matched personas (population.targets=reference) against known human samples, by simulation.

For each replicate, a human sample of `--respondents` people is drawn from a known joint over the
US spec's sex x age x race_ethnicity x college x household_income (random Dirichlet(0.5) tables of
sex x race, age x college and income given college, so every replicate has its own associations), with weights U(0.5, 2), region not recorded, education
recorded only as college, and `--missing` of the income values missing at random. Personas are
drawn through the public API (``sample_personas`` with ``targets="reference"``) and compared with
the sample's weighted composition:

- marginal: max over attributes and codes of |persona share - weighted human share| x n (<= 1 means
  within 1/n: integerize's exact counts);
- joint: max over the cells of sex x race_ethnicity and of age x college of |persona share - weighted
  human share|, beside the same statistic for n personas drawn i.i.d. from the human sample's
  weighted joint (what a random draw of that size would give);
- independence: the same joint error had the attributes been matched one at a time (product of the
  weighted margins), to show the joint is really carried over.

    python benchmarks/validate_match.py                 # the grid in VALIDATION.md
    python benchmarks/validate_match.py --reps 5 --n 200 1000
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
import pandas as pd

from simsurvey.population import PopulationConfig, sample_personas

SPEC = "personas/us_adults.yaml"
DIMS = {
    "sex": ["female", "male"],
    "age": ["18-29", "30-44", "45-64", "65+"],
    "race_ethnicity": ["white_nh", "black_nh", "hispanic", "asian_nh", "other_multiple_nh"],
    "college": ["no", "yes"],
    "household_income": ["under_50k", "50k_100k", "100k_150k", "150k_plus"],
}
PAIRS = (("sex", "race_ethnicity"), ("age", "college"))


def human_sample(rng: np.random.Generator, n: int, missing: float) -> pd.DataFrame:
    shape = [len(v) for v in DIMS.values()]
    # Associations that matter: sex x race, age x college, and income given college (each Dirichlet(0.5)).
    sr = rng.dirichlet(np.full(10, 0.5)).reshape(2, 1, 5, 1, 1)
    ac = rng.dirichlet(np.full(8, 0.5)).reshape(1, 4, 1, 2, 1)
    ic = np.stack([rng.dirichlet(np.full(4, 0.5)) for _ in range(2)]).reshape(1, 1, 1, 2, 4)
    joint = (sr * ac * ic).ravel()
    joint /= joint.sum()
    cells = np.unravel_index(rng.choice(joint.size, n, p=joint), shape)
    people = pd.DataFrame({k: np.asarray(v, dtype=object)[ix] for (k, v), ix in zip(DIMS.items(), cells)})
    people.loc[rng.random(n) < missing, "household_income"] = None
    people["education"] = None
    people["region"] = None
    people.insert(0, "weight", rng.uniform(0.5, 2.0, n))
    people.insert(0, "respondent_id", [f"r{i}" for i in range(n)])
    people.insert(0, "source", "known")
    people["question_id"] = "q"
    people["answer_code"] = "x"
    return people.astype({c: "string" for c in [*DIMS, "education", "region"]})


def _joint_error(frame: pd.DataFrame, w: np.ndarray, want: pd.Series, pair: tuple[str, str]) -> float:
    got = pd.Series(w, index=frame.index).groupby([frame[pair[0]], frame[pair[1]]]).sum() / w.sum()
    return float((got.reindex(want.index, fill_value=0.0) - want).abs().max())


def one(rng: np.random.Generator, n: int, respondents: int, missing: float, seed: int) -> dict[str, float]:
    people = human_sample(rng, respondents, missing)
    personas = sample_personas(PopulationConfig(spec=SPEC, n=n, targets="reference"), seed=seed,
                               cue_style="attributes", reference=people).frame
    w = people["weight"].to_numpy()
    marg = 0.0
    for col in DIMS:
        ok = people[col].notna().to_numpy()
        want = pd.Series(w[ok]).groupby(people[col][ok].to_numpy()).sum() / w[ok].sum()
        got = personas[col].value_counts(normalize=True).reindex(want.index, fill_value=0.0)
        marg = max(marg, float((got - want).abs().max()) * (n if col != "college" else n / 3))
    out = {"marginal_x_n": marg}
    draw = people.iloc[rng.choice(len(people), n, p=w / w.sum())]
    for a, b in PAIRS:
        want = pd.Series(w).groupby([people[a].to_numpy(), people[b].to_numpy()]).sum() / w.sum()
        want.index.names = [a, b]
        out[f"joint {a}x{b}"] = _joint_error(personas, np.ones(len(personas)), want, (a, b))
        out[f"iid {a}x{b}"] = _joint_error(draw, np.ones(len(draw)), want, (a, b))
        ma, mb = want.groupby(level=0).sum(), want.groupby(level=1).sum()
        indep = pd.Series([ma[x] * mb[y] for x, y in want.index], index=want.index)
        out[f"indep {a}x{b}"] = float((indep - want).abs().max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[200, 1000, 5000])
    ap.add_argument("--respondents", type=int, default=3000)
    ap.add_argument("--missing", type=float, default=0.1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for n in args.n:
        rng = np.random.default_rng([args.seed, n])
        reps = pd.DataFrame([one(rng, n, args.respondents, args.missing, seed=k) for k in range(args.reps)])
        row = {"n personas": n, "max marginal error x n": reps["marginal_x_n"].max()}
        for a, b in PAIRS:
            row[f"{a} x {b}: matched (mean / max)"] = f"{reps[f'joint {a}x{b}'].mean():.4f} / {reps[f'joint {a}x{b}'].max():.4f}"
            row[f"{a} x {b}: i.i.d. draw (mean)"] = f"{reps[f'iid {a}x{b}'].mean():.4f}"
            row[f"{a} x {b}: margins only (mean)"] = f"{reps[f'indep {a}x{b}'].mean():.4f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    cols = list(table.columns)
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for _, r in table.iterrows():
        print("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    print(f"\n{args.reps} replicates per row, {args.respondents:,} respondents, {args.missing:.0%} of incomes missing, "
          f"seed {args.seed}")


if __name__ == "__main__":
    main()
