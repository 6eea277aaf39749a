"""Iterative proportional fitting (raking) of a dense N-d table onto one-way marginals.

Pure numpy: each sweep rescales the table along every axis in turn so that its marginal on that
axis matches the target (Deming & Stephan 1940). Cells that are zero in the seed stay zero
(structural zeros). A target category whose seed slice has no mass at all cannot be reached by
any rescaling, so it is an error rather than silently missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simsurvey.errors import UserError


@dataclass(frozen=True)
class IpfResult:
    """Outcome of :func:`ipf`.

    Attributes:
        table: The fitted table (same shape as the seed, summing to the margins' common total).
        iterations: Full sweeps over all axes that were run.
        converged: Whether every marginal is within ``tol`` of its target.
        max_error: Largest absolute difference between a fitted and a target marginal entry.
    """

    table: np.ndarray
    iterations: int
    converged: bool
    max_error: float


def marginals(table: np.ndarray) -> list[np.ndarray]:
    """One-way marginals of ``table``, one array per axis."""
    axes = range(table.ndim)
    return [table.sum(axis=tuple(a for a in axes if a != k)) for k in axes]


def _check_margins(seed: np.ndarray, margins: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
    if len(margins) != seed.ndim:
        raise UserError(f"ipf: {len(margins)} marginals for a {seed.ndim}-d seed table")
    out = []
    for k, m in enumerate(margins):
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (seed.shape[k],):
            raise UserError(f"ipf: marginal {names[k]!r} has {m.size} entries, the seed has {seed.shape[k]}")
        if not np.all(np.isfinite(m)) or np.any(m < 0):
            raise UserError(f"ipf: marginal {names[k]!r} has a negative or non-finite entry")
        out.append(m)
    total = out[0].sum()
    for k, m in enumerate(out):
        if not np.isclose(m.sum(), total, rtol=1e-9, atol=1e-12):
            raise UserError(f"ipf: marginal {names[k]!r} sums to {m.sum():.9g}, marginal {names[0]!r} to {total:.9g}; they must agree")
    return out


def ipf(
    seed: np.ndarray,
    margins: Sequence[np.ndarray],
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
    names: Sequence[str] | None = None,
    codes: Sequence[Sequence[str]] | None = None,
    strict: bool = True,
) -> IpfResult:
    """Rake ``seed`` so that its one-way marginals equal ``margins``.

    Args:
        seed: Non-negative N-d array (counts or shares); its zeros stay zero.
        margins: One target array per axis; all must have the same sum (the fitted total).
        tol: Convergence when max |fitted marginal - target| <= tol (in the margins' units).
        max_iter: Cap on full sweeps.
        names: Axis names for error messages (default ``dim0``, ``dim1``, ...).
        codes: Category codes per axis for error messages.
        strict: Raise when not converged (default); else return with ``converged=False``.

    Returns:
        The fitted table and convergence diagnostics.

    Raises:
        UserError: inconsistent margins (negative, different totals, wrong length), a target
            category with positive share but no seed mass, or no convergence within ``max_iter``.
    """
    seed = np.asarray(seed, dtype=np.float64)
    names = list(names) if names is not None else [f"dim{k}" for k in range(seed.ndim)]
    if np.any(seed < 0) or not np.all(np.isfinite(seed)):
        raise UserError("ipf: seed table has a negative or non-finite cell")
    margins = _check_margins(seed, margins, names)
    for k, (have, want) in enumerate(zip(marginals(seed), margins)):
        bad = np.flatnonzero((have <= 0) & (want > 0))
        if bad.size:
            code = codes[k][bad[0]] if codes is not None else str(bad[0])
            raise UserError(
                f"ipf: attribute {names[k]!r} category {code!r} has a target share but no seed mass "
                "(add seed rows, set seed.prior_count > 0, or use joint: independent)"
            )
    table = seed * (margins[0].sum() / seed.sum())
    shapes = [tuple(-1 if a == k else 1 for a in range(seed.ndim)) for k in range(seed.ndim)]
    others = [tuple(a for a in range(seed.ndim) if a != k) for k in range(seed.ndim)]
    err = np.inf
    it = 0
    while it < max_iter:
        it += 1
        for k in range(seed.ndim):
            cur = table.sum(axis=others[k])
            # 0/0 -> 0: a category with no mass and no target stays empty.
            factor = np.divide(margins[k], cur, out=np.zeros_like(cur), where=cur > 0)
            table *= factor.reshape(shapes[k])
        err = max(float(np.abs(m - t).max()) for m, t in zip(marginals(table), margins))
        if err <= tol:
            return IpfResult(table, it, True, err)
    if not strict:
        return IpfResult(table, it, False, err)
    raise UserError(
        f"ipf: did not converge in {max_iter} iterations (max marginal error {err:.3g} > tol {tol:g}); "
        "the targets may be inconsistent with the seed's zero cells, or raise population.ipf_max_iter"
    )
