"""IPF: hand-worked 2x2, cross-check with the ipfn package, zero cells, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simsurvey.errors import UserError
from simsurvey.population import ipf, marginals


def test_hand_worked_2x2() -> None:
    # Raking keeps the seed's odds ratio (1*4)/(2*3) = 2/3 and imposes the margins. With
    # x11 = a: rows (0.5, 0.5), cols (0.4, 0.6) give a(0.1 + a) / ((0.5 - a)(0.4 - a)) = 2/3,
    # i.e. a^2 + 2.1 a - 0.4 = 0.
    a = (-2.1 + math.sqrt(2.1**2 + 1.6)) / 2
    expected = np.array([[a, 0.5 - a], [0.4 - a, 0.1 + a]])
    res = ipf(np.array([[1.0, 2.0], [3.0, 4.0]]), [np.array([0.5, 0.5]), np.array([0.4, 0.6])], tol=1e-13)
    assert res.converged
    np.testing.assert_allclose(res.table, expected, atol=1e-12)
    assert res.max_error <= 1e-13


@pytest.mark.parametrize("seed", range(6))
def test_matches_ipfn_on_random_tables(seed: int) -> None:
    from ipfn import ipfn

    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 6, size=rng.integers(2, 6)))
    table = rng.gamma(1.0, size=shape) + 0.01
    margins = [rng.dirichlet(np.ones(s)) * 1000 for s in shape]
    ours = ipf(table, margins, tol=1e-9, max_iter=5000)
    ref = ipfn.ipfn(table.copy(), [m.copy() for m in margins], [[k] for k in range(len(shape))],
                    convergence_rate=1e-13, max_iteration=5000, rate_tolerance=0.0).iteration()
    np.testing.assert_allclose(ours.table, ref, rtol=1e-6, atol=1e-7)
    for m, t in zip(marginals(ours.table), margins):
        np.testing.assert_allclose(m, t, atol=1e-9)


def test_structural_zeros_stay_zero() -> None:
    rng = np.random.default_rng(3)
    table = rng.random((4, 3, 5))
    table[0, 1, :] = 0
    table[2, :, 4] = 0
    margins = [rng.dirichlet(np.ones(s)) for s in table.shape]
    res = ipf(table, margins)
    assert np.all(res.table[table == 0] == 0)
    assert res.max_error <= 1e-10


def test_target_without_seed_mass_is_an_error() -> None:
    table = np.ones((2, 3))
    table[:, 2] = 0
    with pytest.raises(UserError, match="'income' category 'high' has a target share but no seed mass"):
        ipf(table, [np.array([0.5, 0.5]), np.array([0.3, 0.3, 0.4])], names=["sex", "income"],
            codes=[["f", "m"], ["low", "mid", "high"]])


def test_inconsistent_margins() -> None:
    with pytest.raises(UserError, match="must agree"):
        ipf(np.ones((2, 2)), [np.array([0.5, 0.5]), np.array([0.5, 0.6])])
    with pytest.raises(UserError, match="negative"):
        ipf(np.ones((2, 2)), [np.array([1.5, -0.5]), np.array([0.5, 0.5])])
    with pytest.raises(UserError, match="entries"):
        ipf(np.ones((2, 2)), [np.array([1.0]), np.array([0.5, 0.5])])


def test_non_convergence_is_reported() -> None:
    # Zeros on the anti-diagonal force x11 = rows[0] and x11 = cols[0]: unreachable when they differ.
    table = np.array([[1.0, 0.0], [0.0, 1.0]])
    margins = [np.array([0.3, 0.7]), np.array([0.6, 0.4])]
    with pytest.raises(UserError, match=r"did not converge in 50 iterations \(max marginal error"):
        ipf(table, margins, max_iter=50)
    res = ipf(table, margins, max_iter=50, strict=False)
    assert not res.converged and res.iterations == 50 and res.max_error > 0.1
