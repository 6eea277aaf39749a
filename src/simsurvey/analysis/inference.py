"""Calibrated inference: design-effective sample sizes, sampling nulls, intervals and p-values.

Every silicon-vs-human comparison is read against the **sampling null at its own sizes**: the
distribution the metric would have if the silicon answers came from the human distribution
itself, drawn at the silicon side's effective size and the human side's effective size.

Effective size (:func:`design_n`). A side's distribution estimate is the ratio
p̂ = Σ_i w_i y_i / Σ_i w_i m_i over its units i (a persona, or a human respondent), where y_i is
the unit's summed answer vector over its m_i rows for the question (one-hot answers, or logprob
probability vectors). Its linearized (Taylor) covariance is
V = Σ_i w_i² (y_i − m_i p̂)(y_i − m_i p̂)ᵀ / (Σ_i w_i m_i)² (Wolter 2007, ch. 6, with-replacement
clusters). A simple random sample of n single answers has trace covariance (1 − Σp̂²)/n, so

    n_eff = (1 − Σ_k p̂_k²) / tr V

is the number of independent single answers carrying the same information — the first-order
Rao–Scott design correction (Rao & Scott 1981, 1984) in one number. It equals n for one answer
per unit with equal weights, the Kish size (Σw)²/Σw² for weights unrelated to the answer, the
number of personas when a persona repeats one answer in all its conditions, and *exceeds* the
number of personas for probability vectors (a persona's token uncertainty is not sampling noise
of the estimate: only the spread of the personas' vectors is). It is NaN where p̂ is degenerate
(all mass on one option: the trace is 0/0); :func:`design_n` then falls back to the Kish number
of units, the conservative choice.

Null (:func:`null_tables`). Under H0 "silicon = human" both sides estimate one distribution,
estimated by the effective-size-weighted pooled p0 = (n_s p̂ + n_h q̂)/(n_s + n_h) (the MLE under
H0 for two multinomials). Null replicates draw P* ~ Mult(n_s, p0)/n_s and Q* ~ Mult(n_h, p0)/n_h
(parametric bootstrap test of homogeneity; sizes rounded). A metric's null mean, its null
critical value, and the p-value (1 + #{T* at least as extreme as T}) / (1 + B) follow.

Intervals (:func:`shifted_percentile_ci`). Plug-in divergences are biased upward by about the null
mean; the percentile interval of their bootstrap inherits the bias twice (the replicates are
biased once more around the biased estimate) and misses the truth. The interval used here is the
percentile interval of the replicates re-centred on the bootstrap bias-corrected estimate
θ̂_bc = 2θ̂ − mean(θ*): [q_lo(θ*) − 2b̂, q_hi(θ*) − 2b̂], b̂ = mean(θ*) − θ̂ (Efron & Tibshirani
1993, §10.6 bias correction; the skew of the replicates is kept, unlike the basic interval), clipped
to the metric's range. For the non-smooth distances (TV, W1 and representativeness) the bootstrap
bias estimate is itself unreliable when some option's difference is near 0 (|·| is not
differentiable there), so their interval is the union of the percentile and the re-centred
intervals: every bias correction from none to the full one (``MetricSpec.ci == "span"``).
Coverage is measured on the calibration grid in VALIDATION.md. At a
distance of exactly 0 no interval of a non-negative estimate is honest; there the verdict is the
test (``p_value``).
"""

from __future__ import annotations

import numpy as np

#: Effective sizes above this are treated as exact (a side with no sampling spread).
N_EXACT = 1e9


def design_n(y: np.ndarray, m: np.ndarray, w: np.ndarray, g: np.ndarray,
             n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearized effective sample size and estimate per group (see module docstring).

    Args:
        y: (n_units, K) each unit's answer vectors summed over its rows (unweighted).
        m: (n_units,) rows per unit (the sum of y's row for normalized answer vectors).
        w: (n_units,) unit weights.
        g: (n_units,) group code per unit, -1 = not in any group.
        n_groups: number of groups G.

    Returns:
        (n_eff, p_hat): shapes (G,) and (G, K). n_eff is N_EXACT when a group's estimate has no
        spread but is not degenerate, the Kish number of units when p̂ is degenerate, 0 for an
        empty group.
    """
    y, m, w = np.asarray(y, float), np.asarray(m, float), np.asarray(w, float)
    k = y.shape[1]
    ok = g >= 0
    gg, yy, mm, ww = g[ok], y[ok], m[ok], w[ok]
    bc = lambda v: np.bincount(gg, weights=v, minlength=n_groups)  # noqa: E731
    s = bc(ww * mm)
    wy = np.stack([bc(ww * yy[:, j]) for j in range(k)], 1) if k else np.zeros((n_groups, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = wy / s[:, None]
    w2 = ww**2
    a = bc(w2 * (yy**2).sum(1))
    bv = np.stack([bc(w2 * mm * yy[:, j]) for j in range(k)], 1)
    c = bc(w2 * mm**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = a - 2 * (p * bv).sum(1) + (p**2).sum(1) * c  # Σ w²‖y − m p̂‖²
        tr = np.maximum(ss, 0.0) / s**2
        num = 1.0 - (p**2).sum(1)
        n = np.where(tr > 1e-15 * np.maximum(num, 1e-300), num / tr, N_EXACT)
    kish = bc(ww) ** 2 / np.maximum(bc(w2), 1e-300)
    degenerate = num < 1e-12
    n = np.where(degenerate, kish, n)
    n = np.where(s > 0, np.minimum(n, N_EXACT), 0.0)
    return n, p


def pooled(p: np.ndarray, q: np.ndarray, n_s: np.ndarray, n_h: np.ndarray) -> np.ndarray:
    """The null's common distribution (n_s p + n_h q)/(n_s + n_h) per group: (G, K)."""
    a, b = np.asarray(n_s, float)[..., None], np.asarray(n_h, float)[..., None]
    p, q = np.nan_to_num(p), np.nan_to_num(q)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(a + b > 0, (a * p + b * q) / np.where(a + b > 0, a + b, 1.0), np.nan)
    return out


def multinomial_props(rng: np.random.Generator, p: np.ndarray, n: np.ndarray, b: int) -> np.ndarray:
    """(b, G, K) replicates Mult(n_g, p_g)/n_g; rows with n ≥ N_EXACT are p itself, n = 0 NaN."""
    p = np.asarray(p, float)
    g, k = p.shape
    ok = np.isfinite(p).all(1) & (p.sum(1) > 0) & (n > 0)
    pp = np.where(ok[:, None], np.clip(np.nan_to_num(p), 0, None), 1.0 / max(k, 1))
    pp = pp / pp.sum(1, keepdims=True)
    exact = n >= N_EXACT
    nn = np.where(ok & ~exact, np.maximum(np.rint(n), 1), 0).astype(np.int64)
    draws = rng.multinomial(nn, pp, size=(b, g)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = draws / nn[None, :, None]
    out = np.where(exact[None, :, None], pp[None], out)
    return np.where(ok[None, :, None], out, np.nan)


def null_tables(rng: np.random.Generator, p: np.ndarray, q: np.ndarray, n_s: np.ndarray,
                n_h: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Null replicates (P*, Q*), each (b, G, K), of both sides drawn from the pooled distribution."""
    p0 = pooled(p, q, n_s, n_h)
    return multinomial_props(rng, p0, n_s, b), multinomial_props(rng, p0, n_h, b)


def shifted_percentile_ci(point: np.ndarray, reps: np.ndarray, ci: float,
                          bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the bootstrap replicates re-centred on the bias-corrected estimate.

    [q_{α/2}(θ*) − 2b̂, q_{1−α/2}(θ*) − 2b̂], b̂ = mean(θ*) − θ̂, clipped to ``bounds``; replicates
    are axis 0 of ``reps`` (NaN replicates ignored). NaN where there are no finite replicates.
    """
    from simsurvey.analysis.bootstrap import percentile_ci

    point = np.asarray(point, float)
    lo, hi = percentile_ci(reps, ci)
    if reps.shape[0] == 0:
        return lo, hi
    fin = np.isfinite(reps)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(fin, reps, 0.0).sum(0) / fin.sum(0)
    shift = np.where(np.isfinite(point), 2.0 * (mean - point), np.nan)
    lo, hi = lo - shift, hi - shift
    return np.clip(lo, *bounds), np.clip(hi, *bounds)


def null_summary(point: np.ndarray, null: np.ndarray, tail: str | list[str | None],
                 ci: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(null mean, null critical value, p-value) of ``point`` against null replicates (axis 0).

    ``tail`` (one, or one per row of a (M, G) ``point``): "upper" (large values are evidence
    against H0: distances; the critical value is the null's ``ci`` quantile), "lower" (small values
    are: representativeness; the ``1−ci`` quantile) or "two" (ratios; the critical value is NaN);
    any other value gives NaN. p = (1 + #{as or more extreme}) / (1 + B); two-sided p doubles the
    smaller tail, capped at 1. A tolerance of 1e-12 keeps float ties (identical tables) as ties.
    """
    from simsurvey.analysis.bootstrap import percentile_ci

    point = np.asarray(point, float)
    tails = np.broadcast_to(np.asarray([tail] if isinstance(tail, str) else tail, dtype=object)
                            .reshape((-1,) + (1,) * (point.ndim - 1)) if point.ndim else np.asarray(tail),
                            point.shape)
    fin = np.isfinite(null)
    nb = fin.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(fin, null, 0.0).sum(0) / nb
        up = (1 + ((null >= point - 1e-12) & fin).sum(0)) / (1 + nb)
        down = (1 + ((null <= point + 1e-12) & fin).sum(0)) / (1 + nb)
    q_lo, q_hi = percentile_ci(null, 2 * ci - 1)  # the 1−ci and ci quantiles
    crit = np.where(tails == "upper", q_hi, np.where(tails == "lower", q_lo, np.nan))
    p = np.where(tails == "upper", up, np.where(tails == "lower", down,
                                                 np.where(tails == "two", np.minimum(1.0, 2 * np.minimum(up, down)),
                                                          np.nan)))
    tested = np.isin(tails, ["upper", "lower", "two"])
    bad = (nb == 0) | ~np.isfinite(point) | ~tested
    return (np.where((nb > 0) & tested, mean, np.nan), np.where(nb > 0, crit, np.nan), np.where(bad, np.nan, p))


def verdict(p_value: float, excess: float | None = None, alpha: float = 0.05) -> str:
    """The reading of a silicon-vs-human test, as the summary and the report print it.

    "distinguishable (p=…)" when p ≤ alpha, else "indistinguishable from sampling noise (p=…)";
    "untested" when there is no p-value. ``excess`` (the distance beyond the null mean) is
    appended when given and the difference is distinguishable.
    """
    if p_value is None or not np.isfinite(p_value):
        return "untested"
    p = f"p={p_value:.3f}" if p_value >= 0.001 else "p<0.001"
    if p_value <= alpha:
        extra = f", excess {excess:.4f}" if excess is not None and np.isfinite(excess) else ""
        return f"distinguishable ({p}{extra})"
    return f"indistinguishable from sampling noise ({p})"
