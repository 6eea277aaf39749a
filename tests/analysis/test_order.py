"""Order effects: hand-worked contrasts and flip rates, JS vs scipy, design-aware permutation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.multitest import multipletests

from simsurvey.analysis import AnalysisConfig, order_effects, permutation_p_value
from simsurvey.analysis.frames import encode_responses
from simsurvey.analysis.order import design_p_value, holm, position_contrasts
from simsurvey.analysis.synthetic import synthetic_instrument

ORDERS = {"as_is|letters": ["c0", "c1", "c2"], "reversed|letters": ["c2", "c1", "c0"]}


def _frame(answers: dict[str, list], orders: dict[str, list] = ORDERS, *, reps: int = 1, probs=None,
           elicitation: str = "sample"):
    """Persona p answers ``answers[cond][p * reps + r]`` in replicate r of each condition."""
    rows = []
    for cond, ans in answers.items():
        for i, a in enumerate(ans):
            rows.append({"persona_id": i // reps, "question_id": "q0", "condition_id": cond, "replicate": i % reps,
                         "option_order": orders[cond], "model": "m", "answer_code": a, "valid": True,
                         "refusal": False, "elicitation": elicitation,
                         "probs": None if probs is None else probs(cond, orders[cond])})
    n = max(len(a) for a in answers.values()) // reps
    personas = pd.DataFrame({"persona_id": np.arange(n), "weight": 1.0})
    return pd.DataFrame(rows).astype({"persona_id": "Int64"}), personas


def _instrument(k: int = 3):
    inst = synthetic_instrument(1, k)
    # Drop the don't-know option so the display is the k substantive options.
    q = inst.questions[0].model_copy(update={"options": inst.questions[0].options[:k]})
    return inst.model_copy(update={"questions": (q,)})


def _question(oe):
    """The one row that carries primacy/recency (found without the ``level`` column)."""
    rows = oe.dropna(subset=["primacy"])
    assert len(rows) == 1
    return rows.iloc[0]


def _oe(responses, personas, inst, use_probs=None, n_permutations=99, seed=0):
    rows = encode_responses(responses, personas, inst, [])
    return order_effects(rows, inst, AnalysisConfig(n_permutations=n_permutations), seed=seed,
                         use_probs=use_probs)


def test_hand_worked_order_effects():
    responses, personas = _frame({"as_is|letters": ["c0", "c0", "c1", "c2"], "reversed|letters": ["c2"] * 4})
    oe = _oe(responses, personas, _instrument())
    assert list(oe.level) == ["pair", "question"]
    r, qrow = oe.iloc[0], oe.iloc[1]
    assert (r.condition_a, r.condition_b) == ("as_is|letters", "reversed|letters")
    assert r.flip_rate == pytest.approx(0.75)  # personas 0, 1, 2 changed their answer
    assert np.isnan(r.retest_flip_rate) and np.isnan(r.excess_flip_rate)  # no replicates
    assert r.js_divergence == pytest.approx(jensenshannon([2, 1, 1], [0, 0, 4], base=2) ** 2)
    assert 0 < r.p_value <= 1 and r.p_adjusted == r.p_value  # a family of one
    assert r.permutation == "within" and (r.n_units_a, r.n_units_b) == (4, 4)
    assert np.isnan(r.primacy) and np.isnan(r.recency)
    # c0 is first in as_is (share 2/4) and last in reversed (0/4); c2 first in reversed (4/4),
    # last in as_is (1/4); c1 is never first: (0.5 + 0.75) / 2. Only first-vs-last is identified.
    assert (qrow.condition_a, qrow.condition_b) == ("*", "*")
    assert qrow.primacy == pytest.approx(0.625)
    assert np.isnan(qrow.recency) and "primacy is first vs last" in qrow.note
    assert (qrow.n_a, qrow.n_units_a) == (8, 4)


def test_answers_mode_uses_answers_not_probability_mass():
    # Every answer is the first displayed option; the probability vectors are uniform.
    responses, personas = _frame({"as_is|letters": ["c0"] * 6, "reversed|letters": ["c2"] * 6},
                                 probs=lambda cond, order: dict.fromkeys(order, 1 / 3))
    inst = _instrument()
    by_answers = _oe(responses, personas, inst, use_probs={"m": False})
    assert by_answers.primacy.dropna().tolist() == pytest.approx([1.0])
    by_probs = _oe(responses, personas, inst, use_probs={"m": True})
    assert by_probs.primacy.dropna().tolist() == pytest.approx([0.0])


def test_position_blind_respondents_score_zero_and_a_primacy_bias_scores_positive():
    shuffled = {"as_is|letters": ["c0", "c1", "c2", "c3"], "reversed|letters": ["c3", "c2", "c1", "c0"],
                "shuffled|letters": ["c1", "c3", "c0", "c2"], "shuffled|numbers": ["c2", "c0", "c3", "c1"]}
    inst = _instrument(4)
    # Majority-like: always the same option, wherever it is shown.
    responses, personas = _frame({c: ["c1"] * 5 for c in shuffled}, shuffled)
    q = _question(_oe(responses, personas, inst))
    assert q.primacy == pytest.approx(0.0) and q.recency == pytest.approx(0.0)
    # Uniform-like in probs mode: 1/K on every displayed option.
    responses, personas = _frame({c: ["c0"] * 5 for c in shuffled}, shuffled,
                                 probs=lambda cond, order: dict.fromkeys(order, 0.25), elicitation="logprobs")
    q = _question(_oe(responses, personas, inst, use_probs={"m": True}))
    assert q.primacy == pytest.approx(0.0) and q.recency == pytest.approx(0.0)
    # Always the first option: share 1 when first, 0 in the middle; last, like the middle, gets 0.
    responses, personas = _frame({c: [o[0]] * 5 for c, o in shuffled.items()}, shuffled)
    q = _question(_oe(responses, personas, inst))
    assert q.primacy == pytest.approx(1.0)
    assert q.recency == pytest.approx(0.0)
    # Always the last option: recency 1, primacy 0.
    responses, personas = _frame({c: [o[-1]] * 5 for c, o in shuffled.items()}, shuffled)
    q = _question(_oe(responses, personas, inst))
    assert q.primacy == pytest.approx(0.0) and q.recency == pytest.approx(1.0)


def test_binary_items_report_the_first_last_contrast_not_its_negative_twice():
    orders = {"as_is|letters": ["c0", "c1"], "reversed|letters": ["c1", "c0"]}
    responses, personas = _frame({"as_is|letters": ["c0", "c0", "c1", "c0"],
                                  "reversed|letters": ["c0", "c1", "c1", "c0"]}, orders)
    q = _question(_oe(responses, personas, _instrument(2)))
    # c0: 3/4 first vs 2/4 last; c1: 2/4 first vs 1/4 last.
    assert q.primacy == pytest.approx(0.25)
    assert np.isnan(q.recency)


def test_position_contrasts_weights_and_the_middle_reference():
    x = np.array([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    rank = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1], [0, 2, 1]], dtype=np.int8)
    w = np.array([1.0, 1.0, 3.0, 1.0])
    p, r, middle = position_contrasts(x, w, rank)
    assert middle
    # option 0: first in rows 0, 3 (shares 1, 0 -> 1/2), middle in row 1 (0): 1/2
    # option 1: first in rows 1, 2 (1 w1, 0 w3 -> 1/4), middle in row 0 (0): 1/4; option 2 never first
    assert p == pytest.approx(np.mean([0.5, 0.25]))
    # last vs middle: option 0 last in row 2 (1) vs row 1 (0); option 1 last in row 3 (0) vs row 0 (0);
    # option 2 last in rows 0, 1 (0) vs rows 2, 3 (1/4)
    assert r == pytest.approx(np.mean([1.0, 0.0, -0.25]))
    # No middle position anywhere (K = 2): the first-vs-last contrast, recency not identified.
    p2, r2, middle2 = position_contrasts(x[:, :2], w, np.array([[0, 1], [1, 0], [1, 0], [0, 1]], dtype=np.int8))
    assert not middle2 and np.isnan(r2)
    # option 0 first in rows 0, 3 (1/2) vs last in rows 1, 2 (3/4); option 1 first rows 1, 2 (1/4) vs 0
    assert p2 == pytest.approx(np.mean([0.5 - 0.75, 0.25]))


def test_within_persona_permutation_finds_a_paired_shift_the_pooled_test_misses():
    # Personas hold fixed, very different answers; in condition b, 12 of 200 move up one option.
    rng = np.random.default_rng(4)
    base = rng.choice(["c0", "c1", "c2"], 200)
    moved = base.copy()
    up = np.flatnonzero(base == "c0")[:12]
    moved[up] = "c1"
    orders = {"as_is|letters": ["c0", "c1", "c2"], "as_is|numbers": ["c0", "c1", "c2"]}
    responses, personas = _frame({"as_is|letters": list(base), "as_is|numbers": list(moved)}, orders)
    r = _oe(responses, personas, _instrument(), n_permutations=999).iloc[0]
    assert r.p_value < 0.01 and r.permutation == "within"
    # Treating the 400 rows as exchangeable (the old test) hides it.
    x = np.eye(3)[[int(c[1]) for c in [*base, *moved]]]
    is_a = np.arange(400) < 200
    assert permutation_p_value(x, np.ones(400), is_a, 999, np.random.default_rng(0)) > 0.1


def test_deterministic_copies_are_one_unit_and_give_no_test():
    # Ten logprob copies of one no-persona prompt per condition, a near-zero difference.
    probs = {"as_is|letters": {"c0": 0.5, "c1": 0.3, "c2": 0.2},
             "reversed|letters": {"c0": 0.501, "c1": 0.3, "c2": 0.199}}
    rows = [{"persona_id": None, "question_id": "q0", "condition_id": "no_persona|" + c, "replicate": j,
             "option_order": ORDERS[c], "model": "m", "answer_code": "c0", "valid": True, "refusal": False,
             "elicitation": "logprobs", "probs": probs[c]} for c in ORDERS for j in range(10)]
    responses = pd.DataFrame(rows).astype({"persona_id": "Int64"})
    personas = pd.DataFrame({"persona_id": [0], "weight": 1.0})
    for use_probs in (True, False):
        r = _oe(responses, personas, _instrument(), use_probs={"m": use_probs}, n_permutations=999).iloc[0]
        assert r.condition_a == "no_persona|as_is|letters"
        assert np.isnan(r.p_value)
        assert (r.n_a, r.n_units_a, r.n_units_b) == (10, 1, 1) and r.permutation == "none"
        assert "20 rows of deterministic prompts are 2 units" in r.note and "no test" in r.note
    # Sampled replicates of a prompt are independent draws: ten units, a test.
    sampled = responses.assign(elicitation="sample", probs=None)
    r = _oe(sampled, personas, _instrument(), n_permutations=99).iloc[0]
    assert (r.n_units_a, r.n_units_b) == (10, 10) and r.p_value == 1.0 and r.permutation == "between"


def test_retest_flip_rate_from_replicates():
    # Two replicates per condition. Persona 0: a=(c0, c1) b=(c0, c0); persona 1: a=(c2, c2) b=(c1, c2).
    responses, personas = _frame({"as_is|letters": ["c0", "c1", "c2", "c2"],
                                  "reversed|letters": ["c0", "c0", "c1", "c2"]}, reps=2)
    r = _oe(responses, personas, _instrument()).iloc[0]
    # Cross-condition (persona, replicate) pairs: (c0,c0) (c1,c0) (c2,c1) (c2,c2): 2 of 4 flip.
    assert r.flip_rate == pytest.approx(0.5)
    # Same condition: p0a flips, p0b not, p1a not, p1b flips: 2 of 4.
    assert r.retest_flip_rate == pytest.approx(0.5)
    assert r.excess_flip_rate == pytest.approx(0.0)


def test_holm_matches_statsmodels_and_keeps_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2, 0.001])
    expected = multipletests(p[np.isfinite(p)], method="holm")[1]
    got = holm(p)
    assert np.isnan(got[2])
    assert got[np.isfinite(p)] == pytest.approx(expected)


def test_p_adjusted_is_holm_within_model_and_question():
    rng = np.random.default_rng(0)
    conds = {f"as_is|l{i}": ["c0", "c1", "c2"] for i in range(4)}
    responses, personas = _frame({c: list(rng.choice(["c0", "c1", "c2"], 30)) for c in conds}, conds)
    oe = _oe(responses, personas, _instrument())
    pairs = oe[oe.level == "pair"]
    assert len(pairs) == 6
    assert pairs.p_adjusted.to_numpy() == pytest.approx(holm(pairs.p_value.to_numpy()))


def test_permutation_p_uniformish_under_null_and_small_under_shift():
    k, n = 4, 300
    p_null = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        pos = rng.choice(k, n, p=[0.4, 0.3, 0.2, 0.1])
        x = np.eye(k)[pos]
        is_a = rng.random(n) < 0.5
        p_null.append(permutation_p_value(x, np.ones(n), is_a, 199, np.random.default_rng(seed + 100)))
    p_null = np.array(p_null)
    assert (p_null > 0.05).mean() >= 0.8
    assert 0.3 < p_null.mean() < 0.7
    rng = np.random.default_rng(7)
    is_a = np.arange(n) < n // 2
    pos = np.where(is_a, rng.choice(k, n, p=[0.4, 0.3, 0.2, 0.1]), rng.choice(k, n, p=[0.1, 0.2, 0.3, 0.4]))
    p = permutation_p_value(np.eye(k)[pos], np.ones(n), is_a, 199, np.random.default_rng(1))
    assert p == pytest.approx(1 / 200)  # no permutation reaches the observed JS


def test_exact_cell_draws_match_row_permutation_and_sign_flips():
    rng = np.random.default_rng(3)
    n, k = 200, 3
    pos = rng.choice(k, n, p=[0.5, 0.3, 0.2])
    w = rng.choice([1.0, 2.0, 0.5], n)
    is_a = rng.random(n) < 0.4
    pos[is_a & (rng.random(n) < 0.15)] = 2  # a mild shift
    x = np.eye(k)[pos]
    fast = permutation_p_value(x, w, is_a, 2000, np.random.default_rng(1))  # 9 cells: hypergeometric
    jitter = w * (1 + 1e-9 * rng.random(n))  # every row its own cell: row permutation
    rows = permutation_p_value(x, jitter, is_a, 2000, np.random.default_rng(2))
    assert fast == pytest.approx(rows, abs=0.04)
    assert np.isnan(permutation_p_value(x, w, is_a, 0, np.random.default_rng(0)))
    # Paired: binomial counts over cells of equal differences vs one sign per pair.
    xa, xb = np.eye(k)[rng.choice(k, 150)], np.eye(k)[rng.choice(k, 150, p=[0.2, 0.3, 0.5])]
    empty = np.zeros((0, k))
    cells = design_p_value(xa, xb, empty, np.zeros(0, bool), 2000, np.random.default_rng(3))
    wj = (1 + 1e-9 * rng.random(150))[:, None]
    signs = design_p_value(wj * xa, wj * xb, empty, np.zeros(0, bool), 2000, np.random.default_rng(4))
    assert cells == pytest.approx(signs, abs=0.04)


def test_conditions_of_an_experiment_pair_only_within_their_arm():
    # Two arms x two orders: the 2 within-arm pairs are order effects; the 4 cross-arm pairs are
    # the treatment (treatment_effects.parquet), never an order-effect row.
    orders = {f"{o}|letters|arm:{a}": ORDERS[f"{o}|letters"] for o in ("as_is", "reversed") for a in ("t", "c")}
    answers = {c: (["c0", "c1", "c2", "c0"] if c.endswith("arm:t") else ["c2", "c2", "c1", "c2"]) for c in orders}
    responses, personas = _frame(answers, orders)
    oe = _oe(responses, personas, _instrument())
    pairs = oe[oe.level == "pair"]
    assert sorted(zip(pairs.condition_a, pairs.condition_b)) == [
        ("as_is|letters|arm:c", "reversed|letters|arm:c"), ("as_is|letters|arm:t", "reversed|letters|arm:t")]
    # Conditions without an arm tag still pair with each other.
    from simsurvey.analysis.order import arm_of
    assert arm_of("as_is|letters|arm:penalty_second") == "penalty_second" and arm_of("as_is|letters") is None
