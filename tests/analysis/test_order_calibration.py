"""Fixed-seed calibration subset of the order-effect statistics (the full grid:
benchmarks/calibrate_order.py, results in VALIDATION.md).

Each simulated study is one model × question of :func:`synthetic_run` (independent draws), scored
through ``encode_responses`` + ``order_effects`` as ``analyze()`` does. Personas carry a persona-level
logit shift, so their answers correlate across conditions (the case a design-blind test gets wrong).
"""

from __future__ import annotations

import numpy as np
import pytest

from simsurvey.analysis import AnalysisConfig, order_effects
from simsurvey.analysis.frames import encode_responses
from simsurvey.analysis.synthetic import synthetic_run

TWO = ("as_is|letters", "reversed|letters")
THREE = ("as_is|letters", "reversed|letters", "shuffled|letters")


def _studies(n_studies: int, *, design: str, conditions=TWO, primacy: float = 0.0, n_permutations: int = 199,
             n_personas: int = 60, no_persona: int = 0, seed: int, **kw):
    models = tuple(f"m{i}" for i in range(n_studies // 4))
    personas, responses, _, inst = synthetic_run(
        n_personas=n_personas, n_human=20, n_questions=4, k=5, conditions=conditions, models=models,
        primacy=primacy, persona_sd=1.5, design=design, invalid_rate=0.0, dk_rate=0.0, no_persona=no_persona, seed=seed, **kw)
    rows = encode_responses(responses, personas, inst, [])
    return order_effects(rows, inst, AnalysisConfig(n_permutations=n_permutations), seed=seed,
                         use_probs=dict.fromkeys(models, bool(kw.get("with_probs"))))


@pytest.mark.parametrize(("design", "seed"), [("within", 11), ("between", 12)])
def test_pair_test_size_under_no_order_effect(design, seed):
    oe = _studies(320, design=design, seed=seed)
    p = oe[oe.level == "pair"].p_value
    assert len(p) == 320 and p.notna().all()
    assert (oe[oe.level == "pair"].permutation == design).all()
    size = float((p < 0.05).mean())
    assert 0.02 <= size <= 0.08, size


def _z(v):
    v = v.dropna().to_numpy()
    return v.mean() / (v.std(ddof=1) / np.sqrt(len(v)))


@pytest.mark.parametrize(("design", "seed"), [("within", 21), ("between", 22)])
def test_position_blind_primacy_and_recency_are_zero_within_noise(design, seed):
    oe = _studies(320, design=design, conditions=THREE, n_permutations=0, n_personas=80, seed=seed)
    q = oe[oe.level == "question"]
    assert len(q) == 320 and q.primacy.notna().all() and q.recency.notna().all()
    assert abs(_z(q.primacy)) < 3 and abs(_z(q.recency)) < 3
    biased = _studies(80, design=design, conditions=THREE, n_permutations=0, primacy=0.1, n_personas=80,
                      seed=seed + 100)
    qb = biased[biased.level == "question"]
    assert qb.primacy.mean() > 0.05 and _z(qb.primacy) > 5


def test_deterministic_copies_never_reject_and_holm_holds_the_family():
    oe = _studies(160, design="within", seed=31, conditions=("as_is|letters", "reversed|letters",
                                                             "as_is|numbers", "reversed|numbers"),
                  no_persona=10, deterministic_no_persona=True, n_personas=40)
    pairs = oe[oe.level == "pair"]
    ctrl = pairs[pairs.condition_a.str.startswith("no_persona|")]
    assert len(ctrl) == 160 * 6 and ctrl.p_value.isna().all() and (ctrl.n_units_a == 1).all()
    persona = pairs[~pairs.condition_a.str.startswith("no_persona|")]
    fam = persona.groupby(["model", "question_id"])
    raw = fam.p_value.apply(lambda p: bool((p < 0.05).any())).mean()
    adj = fam.p_adjusted.apply(lambda p: bool((p < 0.05).any())).mean()
    assert raw > 0.1 and adj <= 0.09, (raw, adj)
