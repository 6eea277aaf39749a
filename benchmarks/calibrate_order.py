"""Calibration of the order-effect statistics by simulation, through the public API.

Usage: python benchmarks/calibrate_order.py [--reps 400] [--permutations 199] [--seed 0]
       [--baseline-personas 150]

Prints the ``## Order effects`` section of VALIDATION.md (markdown) to stdout.

Every cell draws contract-shaped responses with :func:`simsurvey.analysis.synthetic.synthetic_run`
(one simulated study per model × question: ``--reps`` of them per cell, independent draws), encodes
them with :func:`simsurvey.analysis.frames.encode_responses` and scores them with
:func:`simsurvey.analysis.order_effects`, exactly as ``analyze()`` does. Personas get a
persona-level shift of the answer logits (sd 1.5), so one persona's answers correlate across
conditions as a real model's do: that is what separates a within-persona test from a test that
treats rows as exchangeable. The baseline section runs the real uniform / majority / reference
baseline backends through :func:`simsurvey.runner.administer` on a within design with as_is,
reversed and shuffled orders.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from simsurvey.analysis import AnalysisConfig, order_effects, permutation_p_value
from simsurvey.analysis.frames import encode_responses
from simsurvey.analysis.synthetic import synthetic_run

TWO = ("as_is|letters", "reversed|letters")
THREE = ("as_is|letters", "reversed|letters", "shuffled|letters")
FOUR = ("as_is|letters", "reversed|letters", "as_is|numbers", "reversed|numbers")
ALPHA = 0.05
PERSONA_SD = 1.5


def simulate(*, reps: int, n_personas: int, k: int, design: str, primacy: float = 0.0,
             conditions: tuple[str, ...] = TWO, with_probs: bool = False, n_permutations: int = 199,
             seed: int = 0, deterministic_no_persona: bool = False, no_persona: int = 0,
             pooled: bool = False) -> pd.DataFrame:
    """``reps`` simulated studies (models × 4 questions) of one grid cell: their order_effects rows.

    With ``pooled`` the frame also gets ``p_pooled``: the JS permutation test that treats every row
    as exchangeable (what a design-blind test does), for comparison.
    """
    n_q = 4
    models = tuple(f"m{i}" for i in range(-(-reps // n_q)))
    personas, responses, _, inst = synthetic_run(
        n_personas=n_personas, n_human=20, n_questions=n_q, k=k, conditions=conditions, models=models,
        primacy=primacy, persona_sd=PERSONA_SD, design=design, with_probs=with_probs, no_persona=no_persona,
        deterministic_no_persona=deterministic_no_persona, invalid_rate=0.0, dk_rate=0.0, seed=seed)
    rows = encode_responses(responses, personas, inst, [])
    oe = order_effects(rows, inst, AnalysisConfig(n_permutations=n_permutations), seed=seed,
                       use_probs=dict.fromkeys(models, with_probs))
    if pooled:
        oe["p_pooled"] = np.nan
        rng = np.random.default_rng([seed, 99])
        persona_rows = responses[responses.persona_id.notna()]
        w = personas.set_index("persona_id")["weight"]
        for (m, q), g in persona_rows.groupby(["model", "question_id"], sort=False):
            x = np.eye(k)[g["answer_code"].str[1:].astype(int).to_numpy()]
            is_a = (g["condition_id"] == conditions[0]).to_numpy()
            p = permutation_p_value(x, w.loc[g["persona_id"].astype(int)].to_numpy(), is_a, n_permutations, rng)
            oe.loc[(oe.model == m) & (oe.question_id == q) & (oe.level == "pair"), "p_pooled"] = p
    # Exactly ``reps`` studies.
    studies = oe[["model", "question_id"]].drop_duplicates().head(reps)
    return oe.merge(studies, on=["model", "question_id"])


def _rate(p: pd.Series) -> tuple[float, float, int]:
    p = p.dropna()
    r = float((p < ALPHA).mean()) if len(p) else float("nan")
    return r, float(np.sqrt(r * (1 - r) / max(len(p), 1))), len(p)


def _fmt_rate(p: pd.Series) -> str:
    r, se, n = _rate(p)
    return f"{r:.3f} ± {se:.3f}" if n else "–"


def size_and_power(reps: int, n_permutations: int, seed: int, effect: float) -> list[str]:
    lines = ["### Size and power of the pair test (`p_value`, α = 0.05)", "",
             f"{reps} simulated studies per cell; two conditions (as_is, reversed); ± is the binomial "
             f"standard error. Power: a primacy effect moving {effect:.0%} of answers to the first displayed "
             "option. \"Design-blind\" permutes the pair's rows as if they were independent (the test before "
             "this change) — conservative in a within design because one persona's answers correlate.", "",
             "| design | K | personas | size | size, design-blind | power | power, design-blind |",
             "|---|---|---|---|---|---|---|"]
    for design in ("within", "between"):
        for k in (2, 5, 7):
            for n in (100, 500):
                s = seed + 1000 * k + n + (0 if design == "within" else 7)
                pooled = design == "within"
                null = simulate(reps=reps, n_personas=n, k=k, design=design, n_permutations=n_permutations,
                                seed=s, pooled=pooled)
                alt = simulate(reps=reps, n_personas=n, k=k, design=design, primacy=effect,
                               n_permutations=n_permutations, seed=s + 1, pooled=pooled)
                pn, pa = null[null.level == "pair"], alt[alt.level == "pair"]
                blind = (lambda d: _fmt_rate(d["p_pooled"])) if pooled else (lambda d: "(same test)")
                lines.append(f"| {design} | {k} | {n} | {_fmt_rate(pn.p_value)} | {blind(pn)} | "
                             f"{_fmt_rate(pa.p_value)} | {blind(pa)} |")
    return lines


def _mean_se(v: pd.Series) -> str:
    v = v.dropna()
    if len(v) == 0:
        return "NaN (not identified)"
    se = v.std(ddof=1) / np.sqrt(len(v))
    if se < 1e-12:  # every study gives the same value (a deterministic respondent): float rounding only
        return f"{v.mean():+.4f} (every study; |mean| {abs(v.mean()):.0e})"
    return f"{v.mean():+.4f} ± {se:.4f} ({v.mean() / se:+.1f} SE)"


def position_blind(reps: int, seed: int, biased: float) -> list[str]:
    lines = ["### Primacy and recency (question rows)", "",
             f"Mean over {reps} simulated studies ± its Monte-Carlo standard error. Position-blind: answers do "
             f"not depend on the display position (a calibrated contrast has mean 0 within a few SE). Biased: "
             f"{biased:.0%} of answers moved to the first displayed option. Orders: as_is, reversed, and (K > 2) "
             "shuffled, so the middle positions are the reference; at K = 2 only first-vs-last is identified "
             "(primacy is that contrast, recency NaN).",
             "", "| respondent | design | K | mode | primacy | recency |", "|---|---|---|---|---|---|"]
    for label, pr in (("position-blind", 0.0), ("primacy-biased", biased)):
        for design in ("within", "between"):
            for k in (2, 5, 7):
                for probs in (False, True):
                    if probs and (design == "between" or label != "position-blind"):
                        continue
                    oe = simulate(reps=reps, n_personas=100, k=k, design=design, primacy=pr,
                                  conditions=TWO if k == 2 else THREE, with_probs=probs, n_permutations=0,
                                  seed=seed + 31 * k + (5 if design == "between" else 0) + (3 if probs else 0))
                    q = oe[oe.level == "question"]
                    lines.append(f"| {label} | {design} | {k} | {'probs' if probs else 'answers'} | "
                                 f"{_mean_se(q.primacy)} | {_mean_se(q.recency)} |")
    return lines


def baselines(n_personas: int, seed: int) -> list[str]:
    """The real baseline backends through the runner, within design, three orders."""
    from simsurvey.instruments.config import DesignConfig
    from simsurvey.instruments.design import build_design
    from simsurvey.respondents.config import ModelConfig, RunnerConfig
    from simsurvey.respondents.prompt_config import PromptConfig
    from simsurvey.runner import administer

    personas, _, reference, inst = synthetic_run(n_personas=n_personas, n_human=2000, n_questions=8, k=5,
                                                 persona_weights="equal", seed=seed)
    personas["cue"] = "a persona"
    design = DesignConfig(orders=["as_is", "reversed", "shuffled"], labels=["letters"], assignment="within",
                          no_persona=False)
    trials = build_design(personas, inst, design, seed=seed)
    lines = ["### Baseline respondents (real backends through the runner)", "",
             f"{n_personas} personas × 8 questions (K = 5; odd questions nominal, so also shuffled), within design; "
             "primacy/recency are pooled over the 8 question rows (mean ± SE over questions).", "",
             "| baseline | elicitation | rows | primacy | recency | pairs with p < 0.05 (raw / Holm) |",
             "|---|---|---|---|---|---|"]
    for name, elicitation in (("baseline/uniform", "sample"), ("baseline/uniform", "logprobs"),
                              ("baseline/majority", "sample"), ("baseline/reference", "sample"),
                              ("baseline/reference", "logprobs")):
        with tempfile.TemporaryDirectory() as tmp:
            res = administer(trials, personas, inst, model=ModelConfig(backend=name, name=name, elicitation=elicitation),
                             prompt=PromptConfig(), runner=RunnerConfig(cache_dir=str(Path(tmp) / "cache")),
                             run_dir=Path(tmp) / "run", seed=seed, reference=reference, progress=False)
        responses = res.frame
        rows = encode_responses(responses, personas, inst, [])
        oe = order_effects(rows, inst, AnalysisConfig(n_permutations=999), seed=seed,
                           use_probs={name: elicitation == "logprobs"})
        q, pairs = oe[oe.level == "question"], oe[oe.level == "pair"]
        sig = f"{int((pairs.p_value < ALPHA).sum())} / {int((pairs.p_adjusted < ALPHA).sum())} of {len(pairs)}"
        lines.append(f"| {name} | {elicitation} | {len(responses)} | {_mean_se(q.primacy)} | "
                     f"{_mean_se(q.recency)} | {sig} |")
    return lines


def copies_and_family(reps: int, n_permutations: int, seed: int) -> list[str]:
    lines = ["### Deterministic copies and the Holm family", ""]
    oe = simulate(reps=reps, n_personas=50, k=5, design="within", no_persona=10, deterministic_no_persona=True,
                  with_probs=True,
                  n_permutations=n_permutations, seed=seed + 11)
    ctrl = oe[(oe.level == "pair") & oe.condition_a.str.startswith("no_persona|")]
    lines += [f"No-persona control, 10 logprob copies of one prompt per condition, conditions differing by "
              f"JS ≈ {ctrl.js_divergence.median():.1e}: {len(ctrl)} pairs, p < 0.05 in "
              f"{int((ctrl.p_value < ALPHA).sum())}, p = NaN (one unit per condition: no test) in "
              f"{int(ctrl.p_value.isna().sum())}; units per condition: {sorted(set(ctrl.n_units_a))}.", ""]
    oe = simulate(reps=reps, n_personas=100, k=5, design="within", conditions=FOUR, n_permutations=n_permutations,
                  seed=seed + 12)
    pairs = oe[oe.level == "pair"]
    fam = pairs.groupby(["model", "question_id"])
    raw = fam.p_value.apply(lambda p: bool((p < ALPHA).any()))
    adj = fam.p_adjusted.apply(lambda p: bool((p < ALPHA).any()))
    se = np.sqrt(ALPHA * (1 - ALPHA) / len(raw))
    lines += [f"Family-wise error rate under no effect, 4 conditions (6 pairs per model × question, within design, "
              f"K = 5, 100 personas), {len(raw)} families: any raw p < 0.05 in {raw.mean():.3f}; any `p_adjusted` "
              f"(Holm) < 0.05 in {adj.mean():.3f} (target ≤ 0.05; binomial SE at 0.05: {se:.3f})."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--permutations", type=int, default=199)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--effect", type=float, default=0.05)
    ap.add_argument("--biased", type=float, default=0.1)
    ap.add_argument("--baseline-personas", type=int, default=150)
    a = ap.parse_args()
    t0 = time.time()
    lines = ["## Order effects", "",
             f"Command: `python benchmarks/calibrate_order.py --reps {a.reps} --permutations {a.permutations} "
             f"--seed {a.seed}` (fixed seeds; the fast subset is `tests/analysis/test_order_calibration.py`).", ""]
    lines += size_and_power(a.reps, a.permutations, a.seed, a.effect) + [""]
    lines += position_blind(a.reps, a.seed, a.biased) + [""]
    lines += baselines(a.baseline_personas, a.seed) + [""]
    lines += copies_and_family(a.reps, a.permutations, a.seed) + [""]
    lines.append(f"_Measured {time.strftime('%Y-%m-%d', time.gmtime())}, {time.time() - t0:.0f} s wall._")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
