"""Order effects: hand-worked primacy/recency/flip rate, JS vs scipy, permutation p-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from simsurvey.analysis import AnalysisConfig, order_effects, permutation_p_value
from simsurvey.analysis.frames import encode_responses
from simsurvey.analysis.synthetic import synthetic_instrument


def _frame(answers_a, answers_b):
    n = len(answers_a)
    rows = []
    for cond, answers, order in (("as_is|letters", answers_a, ["c0", "c1", "c2"]),
                                 ("reversed|letters", answers_b, ["c2", "c1", "c0"])):
        for pid, a in enumerate(answers):
            rows.append({"persona_id": pid, "question_id": "q0", "condition_id": cond, "replicate": 0,
                         "option_order": order, "model": "m", "answer_code": a, "valid": True,
                         "refusal": False})
    personas = pd.DataFrame({"persona_id": np.arange(n), "weight": 1.0})
    return pd.DataFrame(rows).astype({"persona_id": "Int64"}), personas


def _instrument():
    inst = synthetic_instrument(1, 3)
    # Drop the don't-know option so K displayed = 3, as in the hand-worked case.
    q = inst.questions[0].model_copy(update={"options": inst.questions[0].options[:3]})
    return inst.model_copy(update={"questions": (q,)})


def test_hand_worked_order_effects():
    responses, personas = _frame(["c0", "c0", "c1", "c2"], ["c2", "c2", "c2", "c2"])
    inst = _instrument()
    rows = encode_responses(responses, personas, inst, [])
    oe = order_effects(rows, inst, AnalysisConfig(n_permutations=99), seed=0)
    assert len(oe) == 1
    r = oe.iloc[0]
    assert (r.condition_a, r.condition_b) == ("as_is|letters", "reversed|letters")
    assert r.flip_rate == pytest.approx(0.75)  # personas 0, 1, 2 changed their answer
    assert r.primacy == pytest.approx(6 / 8 - 1 / 3)  # 2 of 4 chose first shown, then 4 of 4
    assert r.recency == pytest.approx(1 / 8 - 1 / 3)
    assert r.js_divergence == pytest.approx(jensenshannon([2, 1, 1], [0, 0, 4], base=2) ** 2)
    assert 0 < r.p_value <= 1


def test_permutation_p_uniformish_under_null_and_small_under_shift():
    k, n = 4, 300
    p_null = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        pos = rng.choice(k, n, p=[0.4, 0.3, 0.2, 0.1])
        x = np.eye(k)[pos]
        is_a = rng.random(n) < 0.5
        p_null.append(permutation_p_value(x, np.ones(n), is_a, 199, np.random.default_rng(seed + 100), pos))
    p_null = np.array(p_null)
    assert (p_null > 0.05).mean() >= 0.8
    assert 0.3 < p_null.mean() < 0.7
    rng = np.random.default_rng(7)
    is_a = np.arange(n) < n // 2
    pos = np.where(is_a, rng.choice(k, n, p=[0.4, 0.3, 0.2, 0.1]), rng.choice(k, n, p=[0.1, 0.2, 0.3, 0.4]))
    p = permutation_p_value(np.eye(k)[pos], np.ones(n), is_a, 199, np.random.default_rng(1), pos)
    assert p == pytest.approx(1 / 200)  # no permutation reaches the observed JS


def test_hypergeometric_shortcut_matches_row_permutation():
    rng = np.random.default_rng(3)
    n, k = 200, 3
    pos = rng.choice(k, n, p=[0.5, 0.3, 0.2])
    w = rng.choice([1.0, 2.0, 0.5], n)
    is_a = rng.random(n) < 0.4
    pos[is_a & (rng.random(n) < 0.15)] = 2  # a mild shift
    x = np.eye(k)[pos]
    fast = permutation_p_value(x, w, is_a, 2000, np.random.default_rng(1), pos)
    rows = permutation_p_value(x, w, is_a, 2000, np.random.default_rng(2), None)
    assert fast == pytest.approx(rows, abs=0.04)
    assert np.isnan(permutation_p_value(x, w, is_a, 0, np.random.default_rng(0), pos))
