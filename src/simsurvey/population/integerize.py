"""Exact-count integerization of a fitted joint table.

Drawing N personas i.i.d. from the joint would leave every marginal off by O(sqrt(N)). Instead
the N units are allotted to cells deterministically: first each attribute's count is fixed by
largest-remainder rounding of N x its marginal share (so every marginal count is within 1 of
N x share), then the cells get floor(N p) units and the leftover units go to cells in order of
largest fractional remainder, but only to cells whose categories all still lack units. The result
sums to N and has exactly the fixed marginal counts; a cell is at most one unit above N p unless
zeros in the table force a unit elsewhere (second pass, by largest p). When zero cells block the
last units, a repair step places each one in the live cell matching the most lacking categories and
fixes the rest by moving units along one axis at a time (which leaves the other marginals alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simsurvey.errors import UserError
from simsurvey.population.ipf import marginals


def largest_remainder(shares: np.ndarray, n: int) -> np.ndarray:
    """Integers summing to ``n``, each floor or ceil of ``n * shares / shares.sum()`` (Hamilton)."""
    shares = np.asarray(shares, dtype=np.float64)
    exact = n * shares / shares.sum()
    out = np.floor(exact).astype(np.int64)
    short = n - int(out.sum())
    if short:
        # Stable sort: ties go to the earlier category, so the result is deterministic.
        order = np.argsort(-(exact - out), kind="stable")
        out[order[:short]] += 1
    return out


def integerize(
    joint: np.ndarray, n: int, *, margins: Sequence[np.ndarray] | None = None, strict: bool = True
) -> np.ndarray:
    """Allot ``n`` units to the cells of ``joint`` with exact marginal counts.

    Args:
        joint: Non-negative N-d table (shares or counts; normalized internally).
        n: Number of units (personas) to allot, > 0.
        margins: Per-axis target shares that fix the marginal counts (default: the joint's own
            marginals). Pass the spec's targets to make the sample hit them within 1/n.

    Returns:
        An int64 table of the same shape, summing to ``n``, whose axis-k marginal equals
        ``largest_remainder(margins[k], n)`` for every k, and which is zero wherever ``joint`` is.

    Raises:
        UserError: if ``n`` <= 0, the table is empty, or the zeros of ``joint`` make those
            marginal counts unreachable.
    """
    if n <= 0:
        raise UserError(f"integerize: n must be > 0 (got {n})")
    p = np.asarray(joint, dtype=np.float64)
    total = p.sum()
    if not total > 0:
        raise UserError("integerize: the joint table has no mass")
    p = p / total
    margins = marginals(p) if margins is None else [np.asarray(m, dtype=np.float64) for m in margins]
    need = [largest_remainder(m, n) for m in margins]

    exact = (n * p).ravel()
    counts = np.floor(exact).astype(np.int64)
    idx = np.unravel_index(np.arange(p.size), p.shape)  # category index of each cell, per axis
    deficit = [nd - np.bincount(ix, weights=counts, minlength=len(nd)).astype(np.int64) for nd, ix in zip(need, idx)]
    if any(np.any(d < 0) for d in deficit):  # only when margins differ from the joint's own
        raise UserError("integerize: margins are inconsistent with the joint (a category is over-filled by floor(n p))")
    left = n - int(counts.sum())

    def fill(order: np.ndarray) -> bool:
        nonlocal left
        # A Python loop over candidate cells, but only O(cells) cheap steps: the checks touch
        # one entry per axis. Each accepted unit lowers one deficit per axis.
        placed = False
        for c in order:
            if left == 0:
                break
            if all(d[ix[c]] > 0 for d, ix in zip(deficit, idx)):
                counts[c] += 1
                for d, ix in zip(deficit, idx):
                    d[ix[c]] -= 1
                left -= 1
                placed = True
        return placed

    live = np.flatnonzero(p.ravel() > 0)
    # Round up the largest remainders first; then, one unit per cell per round, the cells that
    # are furthest below n p, so no cell is piled up while its neighbours stay short.
    fill(live[np.argsort(-(exact - counts)[live], kind="stable")])
    while left and fill(live[np.argsort(-(exact - counts)[live], kind="stable")]):
        pass
    if left:
        _repair(counts.reshape(p.shape), n * p, deficit, idx, left, strict)
    return counts.reshape(p.shape)


def _repair(
    counts: np.ndarray, exact: np.ndarray, deficit: list[np.ndarray], idx: tuple[np.ndarray, ...], left: int, strict: bool
) -> None:
    """Place the last ``left`` units in place (``counts`` is an N-d view), keeping marginals exact."""
    p = exact / exact.sum()
    live = p.ravel() > 0
    flat = counts.reshape(-1)
    for _ in range(left):
        matched = sum((d[ix] > 0).astype(np.int64) for d, ix in zip(deficit, idx))
        # Most matched categories first, then the cell furthest below n p; dead cells never.
        under = exact.ravel() - flat
        tie = (under - under.min()) / (np.ptp(under) + 1.0)  # in [0, 1)
        score = np.where(live, matched + tie, -1.0)
        c = int(np.argmax(score))
        flat[c] += 1
        for d, ix in zip(deficit, idx):
            d[ix[c]] -= 1
        for k, d in enumerate(deficit):
            surplus = np.flatnonzero(d < 0)
            if surplus.size and not _swap(counts, exact, d, k, int(surplus[0])) and strict:
                raise UserError(
                    "integerize: a unit cannot be placed without breaking a marginal count "
                    "(the joint's zero cells block the remaining category combinations)"
                )


def _swap(counts: np.ndarray, exact: np.ndarray, d: np.ndarray, k: int, s: int) -> bool:
    """Move one unit along axis ``k`` from surplus category ``s`` to a lacking one with a live cell."""
    src = np.take(counts, s, axis=k)
    src_over = src - np.take(exact, s, axis=k)
    for t in np.flatnonzero(d > 0):
        dst_exact = np.take(exact, t, axis=k)
        ok = (src > 0) & (dst_exact > 0)
        if ok.any():
            # Take from the most over-filled source, give to the most under-filled destination.
            gain = src_over + (dst_exact - np.take(counts, t, axis=k))
            sub = np.unravel_index(int(np.argmax(np.where(ok, gain, -np.inf))), src.shape)
            counts[sub[:k] + (s,) + sub[k:]] -= 1
            counts[sub[:k] + (int(t),) + sub[k:]] += 1
            d[s] += 1
            d[t] -= 1
            return True
    return False
