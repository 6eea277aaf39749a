"""Exact-count integerization: sums, marginals within 1/N, zeros, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    except UserError:
        counts = integerize(joint, n, strict=False)
        assert counts.sum() == n and np.all(counts[joint == 0] == 0)
        return
    _check(counts, joint, n, marginals(joint))


def test_unreachable_counts_strict_and_lenient() -> None:
    # n = 1 must pick row 0 (0.6) and column 1 (0.6), but cell (0, 1) is a zero.
    joint = np.array([[0.5, 0.0], [0.0, 0.5]])
    margins = [np.array([0.6, 0.4]), np.array([0.4, 0.6])]
    with pytest.raises(UserError, match="cannot be placed"):
        integerize(joint, 1, margins=margins)
    counts = integerize(joint, 1, margins=margins, strict=False)
    assert counts.sum() == 1 and counts[0, 1] == 0 and counts[1, 0] == 0


def test_bad_inputs() -> None:
    with pytest.raises(UserError, match="n must be > 0"):
        integerize(np.ones((2, 2)), 0)
    with pytest.raises(UserError, match="no mass"):
        integerize(np.zeros((2, 2)), 5)
