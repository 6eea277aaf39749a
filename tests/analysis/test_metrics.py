"""Metric functions against scipy, hand-worked values and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, pearsonr, wasserstein_distance
from scipy.stats.contingency import association

from simsurvey.analysis import metrics as M

vec = st.integers(2, 7).flatmap(
    lambda k: st.tuples(*[st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 10)), min_size=k, max_size=k)] * 2)
).filter(lambda pq: sum(pq[0]) > 1e-3 and sum(pq[1]) > 1e-3)


@settings(max_examples=150, deadline=None)
@given(vec)
def test_distances_match_scipy(pq):
    p, q = (np.array(v) / sum(v) for v in pq)
    k = len(p)
    assert M.js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)
    eps = 1e-3
    ps, qs = (p + eps) / (1 + k * eps), (q + eps) / (1 + k * eps)
    assert M.kl_divergence(p, q, eps) == pytest.approx(entropy(ps, qs, base=2), rel=1e-9, abs=1e-12)
    assert M.total_variation(p, q) == pytest.approx(0.5 * np.abs(p - q).sum())
    w = wasserstein_distance(np.arange(k), np.arange(k), p, q) / (k - 1)
    assert M.wasserstein_norm(p, q) == pytest.approx(w, abs=1e-9)
    assert M.representativeness(p, q) == pytest.approx(1 - w, abs=1e-9)
    assert M.entropy_norm(p) == pytest.approx(entropy(p) / np.log(k), abs=1e-9)
    pos = np.arange(k)
    assert M.ordinal_variance(p) == pytest.approx(np.cov(pos, aweights=p, ddof=0), abs=1e-9)
    assert 0 <= M.js_divergence(p, q) <= 1


def test_hand_worked_values():
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert M.js_divergence(p, q) == pytest.approx(1.0)  # disjoint supports: the maximum, 1 bit
    assert M.total_variation([0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(0.5)
    # W1 between all mass at position 0 and at position 4 of 5 is 4; normalized 1.
    assert M.wasserstein_norm([1, 0, 0, 0, 0], [0, 0, 0, 0, 1]) == pytest.approx(1.0)
    assert M.wasserstein_norm([1, 0, 0], [0, 1, 0]) == pytest.approx(0.5)
    assert M.gini_simpson([0.5, 0.5]) == pytest.approx(0.5)
    assert M.gini_simpson([1, 0, 0]) == pytest.approx(0.0)
    assert M.entropy_norm([1, 1, 1, 1]) == pytest.approx(1.0)
    assert M.ordinal_variance([1, 0, 1]) == pytest.approx(1.0)  # positions 0 and 2, mean 1
    # Counts are normalized inside.
    assert M.js_divergence([2, 2], [1, 1]) == pytest.approx(0.0)
    # KL with smoothing is finite when a side has a zero.
    assert np.isfinite(M.kl_divergence([1, 0], [0, 1], 1e-3))
    assert np.isnan(M.js_divergence([0, 0], [1, 1]))


@settings(max_examples=60, deadline=None)
@given(vec)
def test_identical_distributions_give_zero_distance(pq):
    p = np.array(pq[0]) / sum(pq[0])
    for name in ("js_divergence", "kl_silicon_human", "kl_human_silicon", "total_variation", "wasserstein_norm"):
        assert M.distance(name, p, p * 3.0, eps=1e-3) == pytest.approx(0.0, abs=1e-12)
    assert M.representativeness(p, p) == pytest.approx(1.0)
    out = M.group_metrics(p, p, "nominal", eps=1e-3)
    assert out["entropy_ratio"] == pytest.approx(1.0) or M.entropy_norm(p) == 0


@settings(max_examples=80, deadline=None)
@given(vec, st.randoms(use_true_random=False))
def test_swapping_option_codes_changes_no_nominal_metric(pq, rnd):
    p, q = np.array(pq[0]), np.array(pq[1])
    perm = list(range(len(p)))
    rnd.shuffle(perm)
    a = M.group_metrics(p, q, "nominal", eps=1e-3)
    b = M.group_metrics(p[perm], q[perm], "nominal", eps=1e-3)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12, err_msg=name)
    g = np.array([[3, 1, 0], [0, 2, 5]])
    assert M.cramers_v(g) == pytest.approx(M.cramers_v(g[:, [2, 0, 1]]))


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 5), st.integers(2, 6), st.integers(0, 10_000))
def test_cramers_v_matches_scipy(r, c, seed):
    t = np.random.default_rng(seed).integers(0, 12, (r, c))
    t = t[t.sum(1) > 0][:, t[t.sum(1) > 0].sum(0) > 0]
    if min(t.shape) < 2:
        return
    assert M.cramers_v(t) == pytest.approx(association(t, method="cramer"), abs=1e-9)
    # Weighted counts: V is invariant to scaling the table.
    assert M.cramers_v(t * 2.5) == pytest.approx(M.cramers_v(t), abs=1e-12)


def test_vectorized_over_leading_axes():
    rng = np.random.default_rng(0)
    p, q = rng.random((7, 3, 5)), rng.random((7, 3, 5))
    js = M.js_divergence(p, q)
    assert js.shape == (7, 3)
    assert js[4, 2] == pytest.approx(jensenshannon(p[4, 2], q[4, 2], base=2) ** 2)
    v = M.cramers_v(p * 100)
    assert v.shape == (7,)
    assert v[3] == pytest.approx(association(np.rint(p[3] * 1e6).astype(int), method="cramer"), abs=1e-5)


def test_pearson_r_matches_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.random(6), rng.random(6)
    assert M.pearson_r(x, y) == pytest.approx(pearsonr(x, y)[0])
    assert np.isnan(M.pearson_r([1.0, 2.0], [3.0, 1.0]))  # two points: undefined, not ±1
    xs = np.stack([x, x * 2 + 1])
    np.testing.assert_allclose(M.pearson_r(xs, np.stack([y, x])), [pearsonr(x, y)[0], 1.0])


def test_registry_is_complete_and_documented():
    for name, spec in M.METRICS.items():
        assert spec.name == name
        assert spec.formula and spec.source and spec.description
        assert spec.direction in ("lower", "higher", "near_one", "none")
        assert spec.level in ("group", "variable", "question", "pair", "model", "option")
    for kind in ("nominal", "ordinal"):
        names = M.group_metrics(np.ones(3), np.ones(3), kind, eps=1e-3)
        for name in names:
            assert kind in M.METRICS[name].applies_to, name
