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

That greedy repair can fail on sparse tables where an exact allotment exists (e.g. a 3 × 4 table
whose zeros leave a single path through the cells). Then the allotment is solved exactly as an
integer program (scipy's ``milp``, HiGHS): integer counts on the live cells whose marginals are the
fixed counts, minimizing Σ |count − N p|. Only when that program is infeasible — no allotment of N
units to the live cells hits every fixed marginal count — does :func:`integerize` raise; it never
returns a table that breaks a marginal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from simsurvey.errors import UserError
from simsurvey.population.ipf import marginals

#: Bound on the exact fallback (it only runs when the greedy repair fails, on sparse tables).
_TIME_LIMIT_S = 60.0


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


def integerize(joint: np.ndarray, n: int, *, margins: Sequence[np.ndarray] | None = None) -> np.ndarray:
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
            marginal counts unreachable (no exact allotment exists).
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
        return _exact(p, n, need)
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
    if left and not _repair(counts.reshape(p.shape), n * p, deficit, idx, left):
        return _exact(p, n, need)
    return counts.reshape(p.shape)


def _exact(p: np.ndarray, n: int, need: list[np.ndarray]) -> np.ndarray:
    """The allotment as an integer program: the fixed marginals on the live cells, min Σ |c − n p|.

    c = floor(n p) + u + e − d per live cell, with u ∈ {0, 1} (the round-up, cost 1 − 2·frac
    against the floor's deviation frac), e ≥ 0 (further units, cost 1 each) and 0 ≤ d ≤ floor
    (units below the floor, cost 1 each): exactly the piecewise-linear |c − n p|, without
    auxiliary rows.
    """
    live = np.flatnonzero(p.ravel() > 0)
    m = len(live)
    idx = np.unravel_index(live, p.shape)
    target = n * p.ravel()[live]
    base = np.floor(target)
    frac = target - base
    # One row per (axis, category): sparse, as a persona table has thousands of cells.
    offsets = np.cumsum([0] + [len(nd) for nd in need[:-1]])
    member = sparse.csr_matrix(
        (np.ones(m * len(need)), (np.concatenate([o + ix for o, ix in zip(offsets, idx)]), np.tile(np.arange(m), len(need)))),
        shape=(sum(len(nd) for nd in need), m))
    rhs = np.concatenate(need) - member @ base
    res = milp(np.concatenate([1 - 2 * frac, np.ones(m), np.ones(m)]),
               constraints=LinearConstraint(sparse.hstack([member, member, -member]), rhs, rhs),
               integrality=np.ones(3 * m), bounds=Bounds(0, np.concatenate([np.ones(m), np.full(m, n), base])),
               options={"time_limit": _TIME_LIMIT_S})
    if res.x is None:
        why = ("no allotment of {n} units hits every marginal count: the joint's zero cells block the remaining "
               "category combinations" if res.status == 2 else
               f"no exact allotment of {{n}} units found within {_TIME_LIMIT_S:.0f} s ({res.message})")
        raise UserError(f"integerize: {why.format(n=n)} (change n, the margins or the seed table)")
    x = np.round(res.x).astype(np.int64)
    out = np.zeros(p.size, dtype=np.int64)
    out[live] = base.astype(np.int64) + x[:m] + x[m:2 * m] - x[2 * m:]
    return out.reshape(p.shape)


def _repair(
    counts: np.ndarray, exact: np.ndarray, deficit: list[np.ndarray], idx: tuple[np.ndarray, ...], left: int
) -> bool:
    """Place the last ``left`` units in place (``counts`` is an N-d view), keeping marginals exact.

    Returns False (``counts`` then half-repaired: the caller solves exactly instead) when a unit
    cannot be placed without breaking a marginal.
    """
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
            if surplus.size and not _swap(counts, exact, d, k, int(surplus[0])):
                return False
    return True


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
