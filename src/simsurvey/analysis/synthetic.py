"""Synthetic, contract-shaped frames for tests, benchmarks and demos (vectorized, seeded).

:func:`synthetic_run` makes personas, responses and reference frames that follow the shared
contracts: ordinal and nominal questions (with a "don't know" option), demographics with a real
effect on the answers, within-persona order conditions with a configurable primacy bias, and
optionally logprob ``probs`` maps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsurvey.instruments.models import Instrument, Option, Question

DEMOGRAPHICS: dict[str, list[str]] = {
    "sex": ["female", "male"],
    "age": ["18-29", "30-44", "45-64", "65+"],
    "race_ethnicity": ["white_nh", "black_nh", "hispanic", "asian_nh", "other_multiple_nh"],
    "college": ["yes", "no"],
    "region": ["northeast", "midwest", "south", "west"],
    "household_income": ["under_50k", "50k_100k", "100k_150k", "150k_plus"],
}


def synthetic_instrument(n_questions: int = 4, k: int = 5) -> Instrument:
    """Alternating ordinal / single_choice questions with k substantive options and a DK option."""
    qs = []
    for i in range(n_questions):
        opts = [Option(code=f"c{j}", label=f"Option {j}") for j in range(k)]
        opts.append(Option(code="dk", label="Don't know", non_substantive=True))
        qs.append(Question(id=f"q{i}", text=f"Question {i}?", kind="ordinal" if i % 2 == 0 else "single_choice",
                           options=tuple(opts)))
    return Instrument(id="synthetic", title="Synthetic", questions=tuple(qs))


def _answers(rng: np.random.Generator, demo: dict[str, np.ndarray], qi: int, k: int, shift: float,
             n: int, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Answer positions and their probability matrix from a demographic-driven logit model."""
    base = np.linspace(-1, 1, k) * (0.3 + 0.2 * qi)
    eff = (demo["sex"] * 0.6 - demo["age"] * 0.25 + demo["college"] * 0.5 + shift)[:, None]
    logits = (eff * np.linspace(-1, 1, k)[None, :] + base[None, :]) / temperature
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    u = rng.random(n)[:, None]
    pos = (u > np.cumsum(p, 1)).sum(1).clip(0, k - 1)
    return pos, p


def synthetic_run(n_personas: int = 400, n_human: int = 1500, n_questions: int = 4, k: int = 5,
                  conditions: tuple[str, ...] = ("as_is|letters", "reversed|letters"),
                  replicates: int = 1, models: tuple[str, ...] = ("test/model",), primacy: float = 0.0,
                  silicon_shift: float = 0.0, temperature: float = 1.0, dk_rate: float = 0.03,
                  invalid_rate: float = 0.02, no_persona: int = 5, with_probs: bool = False,
                  persona_weights: str = "uniform", seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Instrument]:
    """Personas, responses, reference frames and their instrument, all seeded.

    Every persona answers every question in every condition and replicate (a within design).
    ``primacy`` moves that share of answers to the first displayed option; ``silicon_shift`` and
    ``temperature`` make the silicon answers differ from the human ones. ``persona_weights`` is
    "uniform" (distinct weights drawn from U(0.5, 2)) or "equal" (all 1.0, as the population
    sampler writes them; the same random stream is used either way, so the answers do not change).
    """
    if persona_weights not in ("uniform", "equal"):
        raise ValueError(f"persona_weights must be 'uniform' or 'equal', not {persona_weights!r}")
    rng = np.random.default_rng(seed)
    inst = synthetic_instrument(n_questions, k)
    codes = np.array([f"c{j}" for j in range(k)] + ["dk"], dtype=object)

    def demo_frame(n: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        idx = {v: rng.integers(0, len(c), n) for v, c in DEMOGRAPHICS.items()}
        df = pd.DataFrame({v: np.array(DEMOGRAPHICS[v], dtype=object)[i] for v, i in idx.items()})
        return df, idx

    personas, pdemo = demo_frame(n_personas)
    personas.insert(0, "persona_id", np.arange(n_personas, dtype=np.int64))
    pw = rng.uniform(0.5, 2.0, n_personas)
    personas.insert(1, "weight", pw if persona_weights == "uniform" else np.ones(n_personas))
    personas["cue"] = "synthetic persona"
    human, hdemo = demo_frame(n_human)
    human.insert(0, "respondent_id", [f"r{i}" for i in range(n_human)])
    human.insert(1, "weight", rng.uniform(0.5, 2.0, n_human))
    ref_parts = []
    for qi in range(n_questions):
        pos, _ = _answers(rng, hdemo, qi, k, 0.0, n_human)
        ans = codes[pos].copy()
        ans[rng.random(n_human) < dk_rate] = "dk"
        ref_parts.append(human.assign(source="synthetic_survey", question_id=f"q{qi}", answer_code=ans))
    reference = pd.concat(ref_parts, ignore_index=True)

    parts = []
    n_cond = len(conditions)
    for model in models:
        for qi in range(n_questions):
            for ci, cond in enumerate(conditions):
                for r in range(replicates):
                    pos, p = _answers(rng, pdemo, qi, k, silicon_shift, n_personas, temperature)
                    # Reversed order reverses the scale; "don't know" stays last, as on real forms.
                    order = list(codes[:k][::-1]) + ["dk"] if cond.startswith("reversed") else list(codes)
                    first_pos = int(order[0][1:])
                    moved = rng.random(n_personas) < primacy
                    pos = np.where(moved, first_pos, pos)
                    ans = codes[pos].copy()
                    dk = rng.random(n_personas) < dk_rate
                    ans[dk] = "dk"
                    bad = rng.random(n_personas) < invalid_rate
                    ans[bad] = None
                    pp = p * (1 - primacy)
                    pp[:, first_pos] += primacy
                    probs = [dict(zip(codes[:k], row.tolist())) for row in pp] if with_probs else None
                    parts.append(pd.DataFrame({
                        "persona_id": pd.array(np.arange(n_personas), dtype="Int64"),
                        "question_id": f"q{qi}", "condition_id": cond, "replicate": r,
                        "order_mode": cond.split("|")[0], "label_style": "letters",
                        "neutral_option": False, "cue_style": "attributes",
                        "option_order": [order] * n_personas, "model": model, "backend": "synthetic",
                        "elicitation": "logprobs" if with_probs else "sample", "answer_code": ans,
                        "valid": ~bad, "refusal": np.zeros(n_personas, bool),
                        "probs": probs if with_probs else [None] * n_personas,
                    }))
            for j in range(no_persona):
                cond = "no_persona|" + conditions[j % n_cond]
                pos = rng.integers(0, k, 1)
                parts.append(pd.DataFrame({
                    "persona_id": pd.array([None], dtype="Int64"), "question_id": f"q{qi}",
                    "condition_id": cond, "replicate": j // n_cond, "order_mode": "as_is",
                    "label_style": "letters", "neutral_option": False, "cue_style": "none",
                    "option_order": [list(codes)], "model": model, "backend": "synthetic",
                    "elicitation": "logprobs" if with_probs else "sample", "answer_code": codes[pos],
                    "valid": [True], "refusal": [False],
                    "probs": [dict(zip(codes[:k], np.full(k, 1.0 / k).tolist()))] if with_probs else [None],
                }))
    responses = pd.concat(parts, ignore_index=True)
    return personas, responses, reference, inst
