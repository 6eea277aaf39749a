"""Batteries (grids) and multi_select answers: internal consistency and selection rates, silicon vs human.

Pure functions on numpy arrays; the I/O edge (frames -> arrays) is the caller's.

**Internal consistency of a battery.** A unit (a persona's conversation, a human respondent) answers
the battery's k items; ``x`` is the (n, k) matrix of its answers on the scale positions 0..K−1, with
reverse-keyed items reflected first (x → K−1−x, :func:`reflect`). With unit weights w the weighted
item covariance is C = Σ w (x − x̄)(x − x̄)ᵀ / Σ w, and

- Cronbach's alpha α = k/(k−1) · (1 − tr C / 1ᵀC1) (Cronbach 1951; the normalization of C cancels,
  so this equals the usual n−1 formula, e.g. ``pingouin.cronbach_alpha``, for equal weights);
- standardized alpha α_std = k r̄ / (1 + (k−1) r̄), r̄ the mean off-diagonal correlation of
  R = D^−½ C D^−½ (the weighted Pearson correlation matrix);
- the silicon-vs-human comparison: Δα = α_silicon − α_human, and the mean absolute difference of the
  inter-item correlations MAD = mean_{i<j} |R_s,ij − R_h,ij|.

Units with a missing item are left out (complete cases), as a scale score would be.

**Bootstrap.** Both sides are resampled independently by *clusters* (a persona, whose replicates or
conditions are correlated; a human respondent is its own cluster) with their weights, every
replicate at once: a cluster's weighted moments (Σw, Σwx, Σwxxᵀ) are additive, so each bootstrap
replicate's covariance comes from the resampled moment totals
(:func:`simsurvey.analysis.bootstrap.unit_tables`, the persona bootstrap the analyzer uses).

**Intervals and tests** (the calibration is in VALIDATION.md, ``benchmarks/calibrate_battery.py``).
Alphas and Δα: percentile intervals. The test of α_s = α_h and of equal selection rates is the
bootstrap test of Hall & Wilson (1991): the null distribution of the difference is the bootstrap
distribution of its sampling error, (θ*_s − θ̂_s) − (θ*_h − θ̂_h), and p is two-sided
(:func:`simsurvey.analysis.inference.null_summary`, tail ``two``). MAD is non-negative and biased
upward by sampling noise (like a distance), so it is read against its sampling null at these sizes,
MAD of the centred errors mean|(R*_s − R̂_s) − (R*_h − R̂_h)| (one-sided p, ``null_mean``,
``excess``). MAD is not smooth where a correlation difference is near 0 (like total variation), so
its interval is the union of the percentile interval and the one re-centred on the bias-corrected
estimate (:func:`simsurvey.analysis.inference.shifted_percentile_ci`; the analyzer's ``span``
interval); at a true MAD of 0 no interval of a non-negative estimate is honest and the test is the
reading.

**multi_select.** A row's answer is a set of option codes (``"a|c"``); :func:`selection_matrix` turns
sets into 0/1 indicators. The selection rate of option j is r_j = Σ w x_j / Σ w over the rows with a
valid set (a persona's several rows are one cluster), and the per-option difference
d_j = r_s,j − r_h,j gets a percentile interval and the Hall–Wilson test above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsurvey.analysis.bootstrap import percentile_ci, unit_tables
from simsurvey.analysis.inference import null_summary, shifted_percentile_ci


def reflect(x: np.ndarray, reverse: np.ndarray | list[bool], n_levels: int) -> np.ndarray:
    """Reflect reverse-keyed items: position p -> (n_levels − 1) − p in the columns where ``reverse``.

    Args:
        x: (n, k) answer positions 0..n_levels−1 (NaN for missing).
        reverse: (k,) True for a reverse-keyed item.
        n_levels: number of substantive scale points K.
    """
    x = np.asarray(x, float)
    rev = np.asarray(reverse, bool)
    return np.where(rev[None, :], (n_levels - 1) - x, x)


def _sym_eps(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def moments(x: np.ndarray, w: np.ndarray, cluster: np.ndarray | None = None) -> np.ndarray:
    """(n_clusters, 1 + k + k²) weighted moments per cluster: Σw, Σw·x, Σw·x xᵀ (flattened).

    ``cluster`` numbers the rows' clusters 0..n_clusters−1 (None: each row its own cluster).
    """
    x, w = np.asarray(x, float), np.asarray(w, float)
    n, k = x.shape
    per_row = np.concatenate([w[:, None], w[:, None] * x, (w[:, None, None] * x[:, :, None] * x[:, None, :])
                             .reshape(n, k * k)], 1)
    if cluster is None:
        return per_row
    cluster = np.asarray(cluster, np.int64)
    n_c = int(cluster.max()) + 1 if n else 0
    out = np.zeros((n_c, per_row.shape[1]))
    np.add.at(out, cluster, per_row)
    return out


def covariance(m: np.ndarray, k: int) -> np.ndarray:
    """Weighted covariance matrices (..., k, k) from moment totals (..., 1 + k + k²) (NaN if Σw = 0)."""
    m = np.asarray(m, float)
    s0 = m[..., :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = m[..., 1:1 + k] / s0
        ex2 = m[..., 1 + k:].reshape(m.shape[:-1] + (k, k)) / s0[..., None]
    return _sym_eps(ex2 - mu[..., :, None] * mu[..., None, :])


def correlation(cov: np.ndarray) -> np.ndarray:
    """Correlation matrices from covariance matrices (..., k, k); NaN where an item has no variance."""
    d = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / (d[..., :, None] * d[..., None, :])
        r = np.where((d[..., :, None] > 0) & (d[..., None, :] > 0), r, np.nan)
    k = cov.shape[-1]
    eye = np.eye(k, dtype=bool)
    return np.clip(np.where(eye, 1.0, r), -1.0, 1.0)


def cronbach_alpha(cov: np.ndarray) -> np.ndarray:
    """Cronbach's alpha k/(k−1) · (1 − tr C / 1ᵀC1) of covariance matrices (..., k, k) (Cronbach 1951).

    NaN for k < 2 or a total-score variance of 0. Not bounded below (negative when items covary
    negatively), at most 1.
    """
    k = cov.shape[-1]
    if k < 2:
        return np.full(cov.shape[:-2], np.nan)
    tr = np.trace(cov, axis1=-2, axis2=-1)
    tot = cov.sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 1e-12, k / (k - 1) * (1.0 - tr / np.where(tot > 1e-12, tot, 1.0)), np.nan)


def mean_inter_item_r(corr: np.ndarray) -> np.ndarray:
    """Mean off-diagonal correlation r̄ of correlation matrices (..., k, k)."""
    k = corr.shape[-1]
    iu = np.triu_indices(k, 1)
    return corr[..., iu[0], iu[1]].mean(-1) if k >= 2 else np.full(corr.shape[:-2], np.nan)


def standardized_alpha(corr: np.ndarray) -> np.ndarray:
    """Standardized alpha k r̄ / (1 + (k−1) r̄) (the Spearman–Brown formula on the mean inter-item r)."""
    k = corr.shape[-1]
    r = mean_inter_item_r(corr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return k * r / (1.0 + (k - 1) * r)


def corr_mad(r_s: np.ndarray, r_h: np.ndarray) -> np.ndarray:
    """Mean absolute difference of the off-diagonal (i < j) entries of two correlation matrices."""
    k = r_s.shape[-1]
    iu = np.triu_indices(k, 1)
    return np.abs(r_s[..., iu[0], iu[1]] - r_h[..., iu[0], iu[1]]).mean(-1)


@dataclass(frozen=True)
class Estimate:
    """A statistic's point estimate (shape S), its bootstrap replicates (B, *S), and, for a
    silicon-vs-human comparison, its null replicates (B, *S) (None otherwise)."""

    point: np.ndarray
    reps: np.ndarray
    null: np.ndarray | None = None


@dataclass(frozen=True)
class SideStats:
    """One side's battery statistics with their bootstrap replicates (axis 0 of ``*_b``)."""

    n_units: int
    n_clusters: int
    cov: np.ndarray  #: (k, k)
    corr: np.ndarray  #: (k, k)
    cov_b: np.ndarray  #: (B, k, k)
    corr_b: np.ndarray  #: (B, k, k)

    @property
    def alpha(self) -> Estimate:
        return Estimate(cronbach_alpha(self.cov), cronbach_alpha(self.cov_b))

    @property
    def alpha_std(self) -> Estimate:
        return Estimate(standardized_alpha(self.corr), standardized_alpha(self.corr_b))


def battery_side(x: np.ndarray, w: np.ndarray | None = None, cluster: np.ndarray | None = None, *,
                 b: int, rng: np.random.Generator) -> SideStats:
    """Covariance and correlation matrices of one side and their cluster-bootstrap replicates.

    Args:
        x: (n, k) item answers (reverse-keyed items already reflected); rows with a NaN are dropped.
        w: (n,) unit weights (None: 1).
        cluster: (n,) cluster of each row, any integers (None: each row its own cluster).
        b: bootstrap replicates.
        rng: the generator every draw comes from.
    """
    x = np.asarray(x, float)
    n, k = x.shape
    w = np.ones(n) if w is None else np.asarray(w, float)
    ok = np.isfinite(x).all(1) & np.isfinite(w) & (w > 0)
    x, w = x[ok], w[ok]
    cl = np.arange(len(x)) if cluster is None else np.unique(np.asarray(cluster)[ok], return_inverse=True)[1]
    cl = np.asarray(cl, np.int64).reshape(-1)
    m = moments(x, w, cl)
    cov = covariance(m.sum(0), k)
    tot = unit_tables(rng, m, np.zeros(len(m), np.int64), 1, b)[:, 0]  # (B, 1+k+k²)
    cov_b = covariance(tot, k)
    return SideStats(len(x), len(m), cov, correlation(cov), cov_b, correlation(cov_b))


def _diff(s: Estimate, h: Estimate) -> Estimate:
    """Difference silicon − human, its bootstrap replicates and its centred (Hall–Wilson) null."""
    return Estimate(s.point - h.point, s.reps - h.reps, (s.reps - s.point) - (h.reps - h.point))


@dataclass(frozen=True)
class BatteryComparison:
    """Silicon vs human internal consistency of one battery (see the module docstring)."""

    silicon: SideStats
    human: SideStats
    alpha_silicon: Estimate
    alpha_human: Estimate
    alpha_diff: Estimate  #: null = centred bootstrap errors (two-sided test)
    alpha_std_silicon: Estimate
    alpha_std_human: Estimate
    alpha_std_diff: Estimate
    corr_mad: Estimate  #: null = MAD of the centred bootstrap errors (one-sided test)


def compare_battery(xs: np.ndarray, xh: np.ndarray, *, ws: np.ndarray | None = None, wh: np.ndarray | None = None,
                    cs: np.ndarray | None = None, ch: np.ndarray | None = None, b: int = 1000,
                    rng: np.random.Generator) -> BatteryComparison:
    """Compare a battery's internal consistency between silicon (``xs``) and human (``xh``) units.

    Args:
        xs, xh: (n, k) item answers on the scale positions, reverse-keyed items reflected
            (:func:`reflect`); the same k items in the same column order.
        ws, wh: unit weights (None: 1).
        cs, ch: cluster of each unit (silicon: the persona; None: each unit its own cluster).
        b: bootstrap replicates per side.
        rng: the generator every draw comes from.
    """
    s = battery_side(xs, ws, cs, b=b, rng=rng)
    h = battery_side(xh, wh, ch, b=b, rng=rng)
    a_s, a_h, z_s, z_h = s.alpha, h.alpha, s.alpha_std, h.alpha_std
    mad = Estimate(corr_mad(s.corr, h.corr), corr_mad(s.corr_b, h.corr_b),
                   corr_mad(s.corr_b - s.corr, h.corr_b - h.corr))
    return BatteryComparison(s, h, a_s, a_h, _diff(a_s, a_h), z_s, z_h, _diff(z_s, z_h), mad)


def summarize(est: Estimate, *, ci: float = 0.95, interval: str = "percentile", tail: str | None = None,
              bounds: tuple[float, float] = (-np.inf, np.inf)) -> dict[str, np.ndarray]:
    """Interval and test of an :class:`Estimate`, as the analyzer writes them.

    Args:
        est: the estimate.
        ci: interval level.
        interval: ``percentile``, ``shifted`` (re-centred on the bias-corrected estimate) or
            ``span`` (the union of both; for non-smooth statistics such as MAD).
        tail: the test of ``est.null`` (``two`` for a difference, ``upper`` for MAD; None: no test).
        bounds: the statistic's range (the interval is clipped to it).

    Returns:
        ``value``, ``ci_low``, ``ci_high``, ``null_mean``, ``null_q95``, ``p_value`` (NaN where untested).
    """
    point = np.asarray(est.point, float)
    if interval not in ("percentile", "shifted", "span"):
        raise ValueError(f"interval must be percentile, shifted or span, not {interval!r}")
    p_lo, p_hi = percentile_ci(est.reps, ci)
    p_lo, p_hi = np.clip(p_lo, *bounds), np.clip(p_hi, *bounds)
    lo, hi = p_lo, p_hi
    if interval != "percentile":
        lo, hi = shifted_percentile_ci(point, est.reps, ci, bounds)
        if interval == "span":
            lo, hi = np.fmin(lo, p_lo), np.fmax(hi, p_hi)
    nan = np.full(point.shape, np.nan)
    mean, crit, p = nan, nan, nan
    if tail is not None and est.null is not None:
        mean, crit, p = null_summary(point, est.null, tail, ci)
    return {"value": point, "ci_low": lo, "ci_high": hi, "null_mean": mean, "null_q95": crit, "p_value": p}


# --- multi_select ---------------------------------------------------------------------------------

def selection_matrix(answers: list[str | None] | np.ndarray, codes: tuple[str, ...] | list[str],
                     sep: str = "|") -> tuple[np.ndarray, np.ndarray]:
    """Answer sets (``"a|c"``) -> (n, K) 0/1 selection indicators over ``codes`` and a validity mask.

    A null answer is not valid (its row is all 0 and left out of the rates); the empty string is
    the valid empty set. A code outside ``codes`` makes the row invalid: nothing is guessed.
    """
    index = {c: j for j, c in enumerate(codes)}
    out = np.zeros((len(answers), len(codes)))
    ok = np.zeros(len(answers), bool)
    for i, a in enumerate(answers):
        if a is None or (isinstance(a, float) and np.isnan(a)):
            continue
        parts = [p for p in str(a).split(sep) if p != ""]
        if all(p in index for p in parts):
            ok[i] = True
            out[i, [index[p] for p in parts]] = 1.0
    return out, ok


@dataclass(frozen=True)
class SelectionComparison:
    """Per-option selection rates, silicon vs human (every array's last axis: the options)."""

    silicon: Estimate
    human: Estimate
    diff: Estimate  #: null = centred bootstrap errors (two-sided test per option)
    n_silicon: int  #: rows
    n_human: int
    n_clusters_silicon: int
    n_clusters_human: int


def _rates_side(sel: np.ndarray, w: np.ndarray | None, cluster: np.ndarray | None, b: int,
                rng: np.random.Generator) -> tuple[Estimate, int, int]:
    sel = np.asarray(sel, float)
    n, k = sel.shape
    w = np.ones(n) if w is None else np.asarray(w, float)
    cl = np.arange(n) if cluster is None else np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
    n_c = int(cl.max()) + 1 if n else 0
    mass = np.zeros((n_c, k + 1))
    np.add.at(mass, cl, np.concatenate([w[:, None] * sel, w[:, None]], 1))
    tot = mass.sum(0)
    reps = unit_tables(rng, mass, np.zeros(n_c, np.int64), 1, b)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        point = tot[:k] / tot[k]
        r = reps[:, :k] / reps[:, k:]
    return Estimate(point, r), n, n_c


def compare_selection(sel_s: np.ndarray, sel_h: np.ndarray, *, ws: np.ndarray | None = None,
                      wh: np.ndarray | None = None, cs: np.ndarray | None = None, ch: np.ndarray | None = None,
                      b: int = 1000, rng: np.random.Generator) -> SelectionComparison:
    """Per-option selection rates of multi_select answers, silicon vs human.

    Args:
        sel_s, sel_h: (n, K) 0/1 selection indicators of the valid rows (:func:`selection_matrix`).
        ws, wh: row weights (None: 1).
        cs, ch: cluster of each row (a persona answering in several conditions is one cluster;
            None: each row its own).
        b: bootstrap replicates per side.
        rng: the generator every draw comes from.
    """
    s, ns, cns = _rates_side(sel_s, ws, cs, b, rng)
    h, nh, cnh = _rates_side(sel_h, wh, ch, b, rng)
    return SelectionComparison(s, h, _diff(s, h), ns, nh, cns, cnh)
