"""Raw-scale comparisons of numeric questions (feeling thermometers, 1-10 scales).

A numeric question's binned answers (``answer_code``) go through every distribution metric of
:mod:`simsurvey.analysis.compare` like an ordinal question's. This module adds the ``value_*``
metrics on the raw scale (``answer_value``): means, SDs, their difference, the variance ratio,
Wasserstein-1 normalized by the scale's range and the Kolmogorov–Smirnov statistic, overall and
per demographic group, weighted, with the analyzer's calibrated machinery.

Every side is held as weighted mass over the question's **support** x_1 < ... < x_V (the distinct
values either side gave; a continuous scale with more than :data:`MAX_SUPPORT` distinct values is
put on a grid of that many points over its range, an error of at most range/(2·(MAX_SUPPORT−1))
per value). A distribution is then a (…, V) table like an ordinal question's (…, K), so the same
pieces apply unchanged:

- effective sizes: :func:`simsurvey.analysis.inference.design_n` of the one-hot value vectors (a
  persona who answers in several conditions is one cluster; weights count as Kish's);
- the sampling null: both sides drawn from the pooled value distribution
  (n_s p̂ + n_h q̂)/(n_s + n_h) at their effective sizes (:func:`~simsurvey.analysis.inference.null_tables`),
  which resamples the pooled values themselves — human heaping at 50, 70, 85 is part of the
  distribution and stays in the null;
- the bootstrap: personas resampled when a persona answered more than once
  (:func:`~simsurvey.analysis.bootstrap.cluster_tables`), else the count-based multinomial of the rows.

Raw-scale metrics use ``answer_value`` only (one number per valid row: the parsed answer, or in
logprob elicitation the most probable value); non-substantive answers (Don't know) and invalid
rows have no value and are not in them (their rates are the question's ``nonsubstantive_rate`` /
``invalid_rate``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from simsurvey.analysis.bootstrap import cluster_tables, kish_n, multinomial_tables
from simsurvey.analysis.inference import design_n, null_tables

#: Most support points kept for a continuous scale (values are put on a grid beyond this).
MAX_SUPPORT = 1001

#: The raw-scale metric names, in report order (registry entries in :data:`simsurvey.analysis.metrics.METRICS`).
VALUE_METRICS: tuple[str, ...] = (
    "value_mean_silicon", "value_mean_human", "value_mean_diff", "value_sd_silicon", "value_sd_human",
    "value_variance_ratio", "value_wasserstein_norm", "value_ks",
)


def _norm(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, float)
    s = p.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, p / np.where(s > 0, s, 1.0), np.nan)


def value_mean(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weighted mean Σ p_v x_v of mass tables ``p`` (…, V) over support ``x`` (V,)."""
    return (_norm(p) * x).sum(-1)


def value_variance(p: np.ndarray, x: np.ndarray, n: np.ndarray | float | None = None) -> np.ndarray:
    """Weighted variance Σ p_v (x_v − μ)², Bessel-corrected by n/(n−1) with n the effective size
    (None or n ≥ 1e9: no correction; n ≤ 1: NaN) — the same correction as the ordinal variance."""
    p = _norm(p)
    mu = (p * x).sum(-1, keepdims=True)
    v = (p * (x - mu) ** 2).sum(-1)
    if n is None:
        return v
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(n >= 1e9, 1.0, np.where(n > 1, n / np.where(n > 1, n - 1, 1.0), np.nan))
    return v * f


def value_w1(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Wasserstein-1 distance on the raw scale: Σ_v |F_p(x_v) − F_q(x_v)| (x_{v+1} − x_v).

    Source: Vallender (1974); equals ``scipy.stats.wasserstein_distance`` with weights.
    """
    d = np.abs(np.cumsum(_norm(p), -1) - np.cumsum(_norm(q), -1))[..., :-1]
    return (d * np.diff(x)).sum(-1)


def value_ks(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Kolmogorov–Smirnov statistic sup_v |F_p(x_v) − F_q(x_v)| (the two ECDFs on one support).

    Source: Smirnov (1939); equals ``scipy.stats.ks_2samp(...).statistic`` for unweighted samples.
    """
    return np.abs(np.cumsum(_norm(p), -1) - np.cumsum(_norm(q), -1)).max(-1)


def value_metrics(p: np.ndarray, q: np.ndarray, x: np.ndarray, lo: float, hi: float, *,
                  n_s: np.ndarray | float | None = None,
                  n_h: np.ndarray | float | None = None) -> dict[str, np.ndarray]:
    """Every ``value_*`` metric of silicon ``p`` vs human ``q`` (mass tables (…, V) over ``x``).

    ``lo``/``hi`` are the scale's ends (W1 is divided by hi − lo); ``n_s``/``n_h`` the effective
    sizes of the Bessel corrections. Returns name -> array of the leading shape, in
    :data:`VALUE_METRICS` order.
    """
    ms, mh = value_mean(p, x), value_mean(q, x)
    vs, vh = value_variance(p, x, n_s), value_variance(q, x, n_h)
    with np.errstate(invalid="ignore", divide="ignore"):
        vr = np.where(vh > 0, vs / np.where(vh > 0, vh, 1.0), np.nan)
    return {
        "value_mean_silicon": ms, "value_mean_human": mh, "value_mean_diff": ms - mh,
        "value_sd_silicon": np.sqrt(vs), "value_sd_human": np.sqrt(vh), "value_variance_ratio": vr,
        "value_wasserstein_norm": value_w1(p, q, x) / (hi - lo), "value_ks": value_ks(p, q),
    }


def support(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(support x (V,), position of each value in x) for finite ``values``; beyond
    :data:`MAX_SUPPORT` distinct values, a grid of that many points over [lo, hi]."""
    x, pos = np.unique(values, return_inverse=True)
    if len(x) <= MAX_SUPPORT:
        return x, pos.reshape(-1)
    grid = np.linspace(lo, hi, MAX_SUPPORT)
    step = (hi - lo) / (MAX_SUPPORT - 1)
    gpos = np.clip(np.rint((np.asarray(values, float) - lo) / step), 0, MAX_SUPPORT - 1).astype(np.int64)
    return grid, gpos


class _Sink(Protocol):
    def add_block(self, model: str, qid: str, var: str, values: Any, metrics: list[str], point: np.ndarray,
                  reps: np.ndarray, ns: np.ndarray, nh: np.ndarray, *, null: np.ndarray | None = ...,
                  p_value: np.ndarray | None = ..., neff: tuple[np.ndarray, np.ndarray] | None = ...,
                  flag: str | None = ...) -> None: ...


class _ValueSide:
    """One side's valid values of a question, summed per unit (persona / respondent)."""

    def __init__(self, unit: np.ndarray, w: np.ndarray, vpos: np.ndarray, v: int) -> None:
        local, first, ul = np.unique(unit, return_index=True, return_inverse=True)
        self.ul, self.first, n_u = ul.reshape(-1), first, len(local)
        self.vpos, self.v = vpos, v
        self.w_row = w
        self.counts = np.bincount(self.ul * v + vpos, minlength=n_u * v).reshape(n_u, v)
        self.m = self.counts.sum(1).astype(float)
        self.w = w[first]
        self.clustered = bool((self.m > 1).any())

    def table(self, row_group: np.ndarray, n_groups: int) -> np.ndarray:
        ok = row_group >= 0
        return np.bincount(row_group[ok] * self.v + self.vpos[ok], weights=self.w_row[ok],
                           minlength=n_groups * self.v).reshape(n_groups, self.v)

    def unit_groups(self, row_group: np.ndarray) -> np.ndarray:
        return row_group[self.first]

    def boot(self, rng: np.random.Generator, table: np.ndarray, ug: np.ndarray, b: int) -> np.ndarray:
        g = table.shape[0]
        if self.clustered:
            return cluster_tables(rng, self.counts, self.w, ug, g, b)
        m = ug >= 0
        sw = np.bincount(ug[m], weights=self.w[m], minlength=g)
        sw2 = np.bincount(ug[m], weights=self.w[m] ** 2, minlength=g)
        return multinomial_tables(rng, table, kish_n(sw, sw2), b)

    def n_eff(self, ug: np.ndarray, g: int) -> np.ndarray:
        return design_n(self.counts.astype(float), self.m, self.w, ug, g)[0]

    def n_eff_mean(self, ug: np.ndarray, g: int, x: np.ndarray) -> np.ndarray:
        """Linearized effective size of the weighted mean: σ̂² / V̂(μ̂), V̂ = Σ_u w_u² (y_u − m_u μ̂)² / (Σ_u w_u m_u)²
        with y_u a unit's sum of values (Kish's n for unclustered rows with weights unrelated to
        the values; the number of units when a unit's values are identical). ``design_n`` counts a
        unit's rows as clustered only where they give the *same* value; scores that are correlated
        but not equal (a persona's scale score in several replicates) need this one."""
        ok = ug >= 0
        u, w, m = ug[ok], self.w[ok], self.m[ok]
        y = (self.counts[ok] * x).sum(1)
        y2 = (self.counts[ok] * x**2).sum(1)
        bc = lambda v: np.bincount(u, weights=v, minlength=g)
        s = bc(w * m)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = bc(w * y) / s
            var = bc(w * y2) / s - mu**2
            v_mean = bc(w**2 * (y - m * mu[u]) ** 2) / s**2
            n = np.where(v_mean > 1e-15 * np.maximum(var, 1e-300), var / v_mean, self.n_eff(ug, g))
        return np.where(s > 0, n, 0.0)


def numeric_block(out: _Sink, model: str, qid: str, lo: float, hi: float, *,
                  s_value: np.ndarray, s_unit: np.ndarray, s_w: np.ndarray, s_groups: dict[str, np.ndarray],
                  h_value: np.ndarray, h_unit: np.ndarray, h_w: np.ndarray, h_groups: dict[str, np.ndarray],
                  cats: dict[str, list[str]], min_group_n: int, bootstrap: int, null_draws: int,
                  seed: list[int], names: tuple[str, ...] = VALUE_METRICS,
                  neff_by: str = "values") -> None:
    """Add the ``value_*`` rows of one model × numeric question, overall and per group.

    Args:
        out: The analyzer's metric collector (``add_block``: CIs, null summaries, columns).
        model: Model name.
        qid: Question id.
        lo: The scale's minimum.
        hi: The scale's maximum.
        s_value: Silicon answer values, one per row that enters (valid persona rows with a value).
        s_unit: Persona index of each silicon row (rows of one persona are one cluster).
        s_w: Persona weight of each silicon row.
        s_groups: var -> group code of each silicon row into ``cats[var]`` (-1 = null); ``all``
            included.
        h_value: Human answer values (one per respondent row).
        h_unit: Respondent index of each human row.
        h_w: Respondent weight of each human row.
        h_groups: As ``s_groups``, for the human rows.
        cats: var -> the shared group values.
        min_group_n: Smallest subgroup (rows on either side) compared; ``all`` is always compared.
        bootstrap: Bootstrap replicates B.
        null_draws: Null replicates.
        seed: Seed parts; group variable i uses ``default_rng([*seed, i])``.
        names: The metric names written, aligned with :data:`VALUE_METRICS` (a battery's scale
            scores are compared by this same block under :data:`simsurvey.analysis.scale.SCALE_METRICS`).
        neff_by: ``values`` (the effective sizes of the one-hot value vectors, as for answer
            tables) or ``mean`` (:meth:`_ValueSide.n_eff_mean`, for a unit's correlated but unequal
            values, as a persona's scale scores over replicates and conditions are).
    """
    if neff_by not in ("values", "mean"):
        raise ValueError(f"neff_by must be values or mean, not {neff_by!r}")
    s_value, h_value = np.asarray(s_value, float), np.asarray(h_value, float)
    if len(s_value) == 0 or len(h_value) == 0:
        return
    x, vpos = support(np.concatenate([s_value, h_value]), lo, hi)
    v, n_s_rows = len(x), len(s_value)
    sil = _ValueSide(np.asarray(s_unit), np.asarray(s_w, float), vpos[:n_s_rows], v)
    hum = _ValueSide(np.arange(len(h_value)) if h_unit is None else np.asarray(h_unit),
                     np.asarray(h_w, float), vpos[n_s_rows:], v)
    for vi, var in enumerate(cats):
        if var not in s_groups or var not in h_groups:
            continue
        rng = np.random.default_rng([*seed, vi])
        n_groups = len(cats[var])
        sg, hg = s_groups[var], h_groups[var]
        ns = np.bincount(sg[sg >= 0], minlength=n_groups)
        nh = np.bincount(hg[hg >= 0], minlength=n_groups)
        floor_n = 1 if var == "all" else min_group_n
        kept = np.flatnonzero((ns >= floor_n) & (nh >= floor_n))
        if len(kept) == 0:
            continue
        remap = np.full(n_groups + 1, -1)
        remap[kept] = np.arange(len(kept))
        sgk, hgk = remap[sg], remap[hg]  # -1 stays -1 (remap[-1] is the trailing -1)
        S, H = sil.table(sgk, len(kept)), hum.table(hgk, len(kept))
        ug_s, ug_h = sil.unit_groups(sgk), hum.unit_groups(hgk)
        S_b, H_b = sil.boot(rng, S, ug_s, bootstrap), hum.boot(rng, H, ug_h, bootstrap)
        if neff_by == "mean":
            n_es, n_eh = sil.n_eff_mean(ug_s, len(kept), x), hum.n_eff_mean(ug_h, len(kept), x)
        else:
            n_es, n_eh = sil.n_eff(ug_s, len(kept)), hum.n_eff(ug_h, len(kept))
        XS, XH = np.concatenate([S[None], S_b]), np.concatenate([H[None], H_b])
        scored = value_metrics(XS, XH, x, lo, hi, n_s=n_es, n_h=n_eh)
        P0, Q0 = null_tables(rng, _norm(S), _norm(H), n_es, n_eh, null_draws)
        nulls = value_metrics(P0, Q0, x, lo, hi, n_s=n_es, n_h=n_eh)
        arr = np.stack([scored[n] for n in VALUE_METRICS], 1)
        out.add_block(model, qid, var, [cats[var][j] for j in kept], list(names), arr[0], arr[1:],
                      ns[kept], nh[kept], null=np.stack([nulls[n] for n in VALUE_METRICS], 1), neff=(n_es, n_eh))
