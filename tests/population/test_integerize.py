"""Exact-count integerization: sums, marginals within 1/N, zeros, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from simsurvey.errors import UserError
from simsurvey.population import integerize, ipf, largest_remainder, marginals


def test_largest_remainder_hand_example() -> None:
    # 10 x (0.333, 0.333, 0.334) = 3.33, 3.33, 3.34: floors 3,3,3, the one left goes to 0.34.
    assert largest_remainder(np.array([0.333, 0.333, 0.334]), 10).tolist() == [3, 3, 4]
    # Hamilton's method on the 1790 apportionment-style example: 7 seats, shares .45 .35 .2
    # -> quotas 3.15 2.45 1.4 -> 3 2 1 + one to the 0.45 remainder.
    assert largest_remainder(np.array([0.45, 0.35, 0.2]), 7).tolist() == [3, 3, 1]


def _check(counts: np.ndarray, joint: np.ndarray, n: int, margins: list[np.ndarray]) -> None:
    assert counts.dtype == np.int64 and counts.sum() == n and counts.min() >= 0
    assert np.all(counts[joint == 0] == 0)
    for m, t in zip(marginals(counts.astype(float)), margins):
        assert np.all(np.abs(m / n - t) < 1.0 / n + 1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_marginals_within_one_over_n_at_100k(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (2, 4, 5, 5, 4, 4)
    table = rng.random(shape) * (rng.random(shape) > 0.2)
    margins = [rng.dirichlet(np.ones(s)) for s in shape]
    fitted = ipf(table, margins, tol=1e-10).table
    n = 100_000
    counts = integerize(fitted, n, margins=margins)
    _check(counts, fitted, n, margins)
    # Against the fitted joint's own marginals the bound is 1/N + IPF tolerance.
    for m, f in zip(marginals(counts.astype(float)), marginals(fitted)):
        assert np.all(np.abs(m / n - f) <= 1.0 / n + 1e-10)
    assert integerize(fitted, n, margins=margins).tobytes() == counts.tobytes()


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    n=st.integers(1, 5000),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_exact_counts_without_zeros(shape: list[int], n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    joint = rng.gamma(0.5, size=shape) + 1e-9
    joint /= joint.sum()
    counts = integerize(joint, n)
    _check(counts, joint, n, marginals(joint))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(50, 3000), seed=st.integers(0, 2**32 - 1))
def test_property_with_zero_cells(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (3, 4, 5)
    joint = rng.random(shape) * (rng.random(shape) > 0.25)
    joint[0, 0, 0] = 1.0  # never all zero
    joint /= joint.sum()
    try:
        counts = integerize(joint, n)
    except UserError as e:  # never a table that breaks a marginal: a clear error instead
        assert "no allotment of" in str(e)
        return
    _check(counts, joint, n, marginals(joint))


def _flow_feasible(joint: np.ndarray, n: int, margins: list[np.ndarray]) -> bool:
    """An independent oracle for 2-d tables: the marginal counts are reachable iff the bipartite
    flow source -> rows (row counts) -> live cells -> columns (column counts) -> sink carries n."""
    rows, cols = (largest_remainder(m, n) for m in margins)
    r, c = joint.shape
    src, sink = r + c, r + c + 1
    edges = [(src, i, rows[i]) for i in range(r)] + [(r + j, sink, cols[j]) for j in range(c)]
    edges += [(i, r + j, n) for i in range(r) for j in range(c) if joint[i, j] > 0]
    u, v, cap = (np.array(x) for x in zip(*edges))
    graph = csr_matrix((cap.astype(np.int32), (u, v)), shape=(r + c + 2, r + c + 2))
    return maximum_flow(graph, src, sink).flow_value == n


def test_sparse_table_with_an_exact_allotment_is_allotted_exactly() -> None:
    # The zeros leave one allotment: column 1 only from row 0, column 3 only from row 2. The greedy
    # repair gave up here and the lenient path (sample_personas) returned column counts 8 4 7 5.
    joint = np.array([[0.39, 0.62, 0, 0], [0.78, 0, 0.51, 0], [0, 0, 0.37, 0.72]])
    counts = integerize(joint, 24)
    assert counts.tolist() == [[2, 5, 0, 0], [6, 0, 3, 0], [0, 0, 3, 5]]
    _check(counts, joint, 24, marginals(joint / joint.sum()))


@settings(max_examples=80, deadline=None)
@given(shape=st.tuples(st.integers(2, 5), st.integers(2, 5)), n=st.integers(1, 60),
       seed=st.integers(0, 2**32 - 1))
def test_property_sparse_2d_exact_iff_reachable(shape: tuple[int, int], n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    joint = rng.random(shape) * (rng.random(shape) > 0.5)
    joint[0, 0] = max(joint[0, 0], 0.1)
    margins = marginals(joint / joint.sum())
    try:
        counts = integerize(joint, n)
    except UserError:
        assert not _flow_feasible(joint, n, margins)
        return
    _check(counts, joint, n, margins)


def test_unreachable_counts_raise_a_clear_error() -> None:
    # n = 1 must pick row 0 (0.6) and column 1 (0.6), but cell (0, 1) is a zero.
    joint = np.array([[0.5, 0.0], [0.0, 0.5]])
    margins = [np.array([0.6, 0.4]), np.array([0.4, 0.6])]
    with pytest.raises(UserError, match="no allotment of 1 units hits every marginal count"):
        integerize(joint, 1, margins=margins)


def test_bad_inputs() -> None:
    with pytest.raises(UserError, match="n must be > 0"):
        integerize(np.ones((2, 2)), 0)
    with pytest.raises(UserError, match="no mass"):
        integerize(np.zeros((2, 2)), 5)


def test_margins_far_from_the_joint_are_still_met_exactly() -> None:
    # floor(n p) = 5 per cell over-fills row 1 (target 2): the greedy pass cannot start, the exact one can.
    joint = np.full((2, 2), 0.25)
    margins = [np.array([0.9, 0.1]), np.array([0.5, 0.5])]
    counts = integerize(joint, 20, margins=margins)
    assert counts.sum(1).tolist() == [18, 2] and counts.sum(0).tolist() == [10, 10]
