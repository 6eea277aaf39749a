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


def synthetic_demographics() -> dict[str, list[str]]:
    """The synthetic personas' and respondents' variables: the US spec's default subgroups
    (``compare``) with their codes, drawn uniformly. The answer model reads the category indices
    of the first, second and fourth variables (sex, age and college there)."""
    from simsurvey.reference.builtin import us_variables

    v = us_variables()
    return {name: list(v.codes(name)) for name in v.compare}


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
             n: int, temperature: float = 1.0, persona: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Answer positions and their probability matrix from a demographic-driven logit model."""
    base = np.linspace(-1, 1, k) * (0.3 + 0.2 * qi)
    first, second, _, fourth = list(demo.values())[:4]
    eff = (first * 0.6 - second * 0.25 + fourth * 0.5 + shift + persona)[:, None]
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
                  persona_weights: str = "uniform", design: str = "within", persona_sd: float = 0.0,
                  deterministic_no_persona: bool = False,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Instrument]:
    """Personas, responses, reference frames and their instrument, all seeded.

    With ``design`` "within" every persona answers every question in every condition and replicate;
    with "between" each persona × question keeps one condition (dealt from a shuffled, balanced
    deck). A condition id starting ``reversed`` reverses the options, ``shuffled`` draws a fresh
    order per row, anything else shows them as is; answers never depend on the display position
    except through ``primacy``, which moves that share of answers to the first displayed option.
    ``silicon_shift`` and ``temperature`` make the silicon answers differ from the human ones;
    ``persona_sd`` adds a persona-level N(0, sd²) shift to the answer logits (answers of one persona
    correlate across conditions, as a real model's do). ``persona_weights`` is "uniform" (distinct
    weights drawn from U(0.5, 2)) or "equal" (all 1.0, as the population sampler writes them; the
    same random stream is used either way, so the answers do not change). The ``no_persona`` rows
    are sampled answers, or with ``deterministic_no_persona`` logprob copies: per question ×
    condition one fixed probability vector repeated in every replicate, as a deterministic backend
    gives. The options beyond the defaults draw from their own stream, so the defaults' frames do
    not change.
    """
    if persona_weights not in ("uniform", "equal"):
        raise ValueError(f"persona_weights must be 'uniform' or 'equal', not {persona_weights!r}")
    if design not in ("within", "between"):
        raise ValueError(f"design must be 'within' or 'between', not {design!r}")
    rng = np.random.default_rng(seed)
    extra = np.random.default_rng([seed, 7])  # the non-default options' stream
    inst = synthetic_instrument(n_questions, k)
    codes = np.array([f"c{j}" for j in range(k)] + ["dk"], dtype=object)

    demographics = synthetic_demographics()

    def demo_frame(n: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        idx = {v: rng.integers(0, len(c), n) for v, c in demographics.items()}
        df = pd.DataFrame({v: np.array(demographics[v], dtype=object)[i] for v, i in idx.items()})
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
    persona = extra.normal(0.0, persona_sd, n_personas) if persona_sd > 0 else 0.0
    rows_n = np.arange(n_personas)
    for model in models:
        for qi in range(n_questions):
            assigned = (np.tile(extra.permutation(n_cond), -(-n_personas // n_cond))[:n_personas][
                extra.permutation(n_personas)] if design == "between" else None)
            for ci, cond in enumerate(conditions):
                for r in range(replicates):
                    pos, p = _answers(rng, pdemo, qi, k, silicon_shift, n_personas, temperature, persona)
                    # Reversed order reverses the scale; "don't know" stays last, as on real forms.
                    if cond.startswith("shuffled"):
                        perm = extra.random((n_personas, k)).argsort(1)
                        orders = [list(codes[:k][o]) + ["dk"] for o in perm]
                        first_pos = perm[:, 0]
                    else:
                        order = list(codes[:k][::-1]) + ["dk"] if cond.startswith("reversed") else list(codes)
                        orders = [order] * n_personas
                        first_pos = np.full(n_personas, int(order[0][1:]))
                    moved = rng.random(n_personas) < primacy
                    pos = np.where(moved, first_pos, pos)
                    ans = codes[pos].copy()
                    dk = rng.random(n_personas) < dk_rate
                    ans[dk] = "dk"
                    bad = rng.random(n_personas) < invalid_rate
                    ans[bad] = None
                    pp = p * (1 - primacy)
                    pp[rows_n, first_pos] += primacy
                    probs = [dict(zip(codes[:k], row.tolist())) for row in pp] if with_probs else None
                    part = _Part(n_personas, {
                        "persona_id": rows_n,
                        "question_id": f"q{qi}", "condition_id": cond, "replicate": r,
                        "order_mode": cond.split("|")[0], "label_style": "letters",
                        "neutral_option": False, "cue_style": "attributes",
                        "option_order": orders, "model": model, "backend": "synthetic",
                        "elicitation": "logprobs" if with_probs else "sample", "answer_code": ans,
                        "valid": ~bad, "refusal": np.zeros(n_personas, bool),
                        "probs": probs if with_probs else [None] * n_personas,
                    })
                    parts.append(part if assigned is None else part.take(assigned == ci))
            if deterministic_no_persona:
                parts.extend(_no_persona_copies(extra, codes, k, qi, model, conditions, no_persona))
                continue
            for j in range(no_persona):
                cond = "no_persona|" + conditions[j % n_cond]
                pos = rng.integers(0, k, 1)
                parts.append(_Part(1, {
                    "persona_id": [None], "question_id": f"q{qi}",
                    "condition_id": cond, "replicate": j // n_cond, "order_mode": "as_is",
                    "label_style": "letters", "neutral_option": False, "cue_style": "none",
                    "option_order": [list(codes)], "model": model, "backend": "synthetic",
                    "elicitation": "logprobs" if with_probs else "sample", "answer_code": codes[pos],
                    "valid": [True], "refusal": [False],
                    "probs": [dict(zip(codes[:k], np.full(k, 1.0 / k).tolist()))] if with_probs else [None],
                }))
    return personas, _Part.frame(parts), reference, inst


class _Part:
    """A block of response rows as columns (scalars broadcast): one frame is built at the end,
    which is several times faster than concatenating thousands of small frames."""

    DTYPES = {"persona_id": "Int64", "replicate": "int64", "neutral_option": "bool", "valid": "bool",
              "refusal": "bool"}

    def __init__(self, n: int, cols: dict) -> None:
        self.n = n
        self.cols = {c: _objects(v) if isinstance(v, (list, np.ndarray)) else v for c, v in cols.items()}

    def take(self, mask: np.ndarray) -> _Part:
        return _Part(int(mask.sum()), {c: v[mask] if isinstance(v, np.ndarray) else v for c, v in self.cols.items()})

    @staticmethod
    def frame(parts: list[_Part]) -> pd.DataFrame:
        out = {}
        for c in parts[0].cols:
            vals = np.empty(sum(p.n for p in parts), dtype=object)
            at = 0
            for p in parts:
                vals[at:at + p.n] = p.cols[c]
                at += p.n
            out[c] = pd.array(vals, dtype=_Part.DTYPES[c]) if c in _Part.DTYPES else vals
        return pd.DataFrame(out)


def _objects(v: list | np.ndarray) -> np.ndarray:
    """A 1-d object array of the items of ``v`` (lists stay lists, never a 2-d array)."""
    a = np.empty(len(v), dtype=object)
    if isinstance(v, np.ndarray) and v.ndim == 1:
        a[:] = v
    else:
        for i, x in enumerate(v):
            a[i] = x
    return a


def _no_persona_copies(rng: np.random.Generator, codes: np.ndarray, k: int, qi: int, model: str,
                       conditions: tuple[str, ...], copies: int) -> list[_Part]:
    """``copies`` identical logprob rows per condition: one vector per question, nudged by 1e-3 per condition."""
    base = rng.dirichlet(np.ones(k))
    out = []
    for ci, cond in enumerate(conditions):
        v = base + 1e-3 * ci * (np.arange(k) == 0)
        v /= v.sum()
        order = list(codes[:k][::-1]) + ["dk"] if cond.startswith("reversed") else list(codes)
        out.append(_Part(copies, {
            "persona_id": [None] * copies, "question_id": f"q{qi}",
            "condition_id": "no_persona|" + cond, "replicate": np.arange(copies), "order_mode": cond.split("|")[0],
            "label_style": "letters", "neutral_option": False, "cue_style": "none",
            "option_order": [order] * copies, "model": model, "backend": "synthetic", "elicitation": "logprobs",
            "answer_code": codes[int(np.argmax(v))], "valid": True, "refusal": False,
            "probs": [dict(zip(codes[:k], v.tolist()))] * copies,
        }))
    return out
