"""Metrics as pure, vectorized functions on numpy arrays, and their one registry.

Every function works on the LAST axis of its inputs and broadcasts over leading axes, so the
same code scores one distribution, every subgroup at once, and B bootstrap replicates at once
(shape ``(B, G, K)``). Inputs are non-negative count or probability vectors; they are
normalized inside, and an all-zero vector gives NaN (never a silent 0).

:data:`METRICS` is the single registry of the metric names written to ``metrics.parquet``
(a public contract: runs are compared across models and months). Each entry carries its
direction, level, the question kinds it applies to, its formula and its source.

Levels: ``group`` — one value per (model, question, group_var, group_value), including
``all/all``; ``variable`` — one per (model, question, group_var), written with group_value
``"*"``; ``question`` — one per (model, question), written as ``all/all``; ``pair`` — one per
(model, pair of questions), question_id ``"q1|q2"``; ``model`` — one per model,
question_id ``"*"``; ``option`` — one per (model, multi_select question, option), written with
group_var ``"option"`` and group_value the option code. Battery-level metrics are ``question``
level rows whose question_id is the battery id; a battery's scale-score rows (``scale_*``, the
``value_*`` comparison of numeric questions applied to per-respondent scale scores) are ``group``
level rows whose question_id is the battery id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

Direction = Literal["lower", "higher", "near_one", "none"]
Level = Literal["group", "variable", "question", "pair", "model", "option"]
Kind = Literal["nominal", "ordinal", "numeric"]


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    s = x.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, x / np.where(s > 0, s, 1.0), np.nan)


def _plogp_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Sum over the last axis of p log2(p/q), with 0 log 0 = 0."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        t = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0) / np.where(q > 0, q, 1.0)), 0.0)
    # NaN inputs (an empty side) must stay NaN rather than be masked to 0.
    return np.where(np.isnan(p).any(-1) | np.isnan(q).any(-1), np.nan, t.sum(-1))


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence, base 2, in [0, 1].

    JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m), m = ½(p + q), logs base 2.
    Source: Lin (1991), "Divergence measures based on the Shannon entropy"; used for silicon vs
    human opinion distributions by Argyle et al. (2023) and Durmus et al. (2023).
    """
    p, q = _normalize(p), _normalize(q)
    m = 0.5 * (p + q)
    return np.clip(0.5 * _plogp_ratio(p, m) + 0.5 * _plogp_ratio(q, m), 0.0, 1.0)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float) -> np.ndarray:
    """KL(p‖q) in bits after additive smoothing of both sides.

    p~ = (p + ε)/(1 + Kε), q~ likewise; KL = Σ p~ log2(p~/q~). The smoothing keeps KL finite when
    a side puts no mass on an option; ε is ``AnalysisConfig.kl_smoothing``.
    Source: Kullback & Leibler (1951); additive (Lidstone) smoothing.
    """
    p, q = _normalize(p), _normalize(q)
    k = p.shape[-1]
    ps = (p + eps) / (1.0 + k * eps)
    qs = (q + eps) / (1.0 + k * eps)
    return np.maximum(_plogp_ratio(ps, qs), 0.0)


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total variation distance TV = ½ Σ|p − q|, in [0, 1]. Source: standard (e.g. Levin & Peres)."""
    return 0.5 * np.abs(_normalize(p) - _normalize(q)).sum(-1)


def wasserstein_norm(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Normalized Wasserstein-1 over ordinal answer positions 0..K−1, in [0, 1].

    W1 = Σ_{i<K−1} |F_p(i) − F_q(i)| (CDFs over positions); returns W1/(K−1).
    Source: Santurkar et al. (2023), "Whose Opinions Do Language Models Reflect?" (OpinionQA).
    """
    p, q = _normalize(p), _normalize(q)
    k = p.shape[-1]
    if k < 2:
        return np.full(np.broadcast_shapes(p.shape, q.shape)[:-1], np.nan)
    w1 = np.abs(np.cumsum(p, -1) - np.cumsum(q, -1))[..., :-1].sum(-1)
    return w1 / (k - 1)


def representativeness(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """OpinionQA representativeness 1 − W1/(K−1), in [0, 1] (Santurkar et al. 2023)."""
    return 1.0 - wasserstein_norm(p, q)


def entropy_norm(p: np.ndarray) -> np.ndarray:
    """Normalized Shannon entropy H(p)/log K, in [0, 1] (Shannon 1948); NaN for K < 2."""
    p = _normalize(p)
    k = p.shape[-1]
    if k < 2:
        return np.full(p.shape[:-1], np.nan)
    u = np.full(k, 1.0 / k)
    # H(p) = log2 K − KL(p‖uniform): reuses the NaN-aware kernel.
    return (np.log2(k) - _plogp_ratio(p, u)) / np.log2(k)


def ordinal_mean(p: np.ndarray) -> np.ndarray:
    """Mean answer position Σ i p_i over positions 0..K−1."""
    p = _normalize(p)
    return (p * np.arange(p.shape[-1])).sum(-1)


def ordinal_variance(p: np.ndarray) -> np.ndarray:
    """Variance of the answer position Σ p_i (i − μ)² over positions 0..K−1.

    The within-group spread of opinion; a silicon/human ratio below 1 is the homogenization
    of "ChatGPT is not A Man but Das Man" (2025).
    """
    p = _normalize(p)
    pos = np.arange(p.shape[-1])
    mu = (p * pos).sum(-1, keepdims=True)
    return (p * (pos - mu) ** 2).sum(-1)


def gini_simpson(p: np.ndarray) -> np.ndarray:
    """Gini–Simpson diversity 1 − Σ p_i² (Simpson 1949): the chance two answers differ."""
    p = _normalize(p)
    return 1.0 - (p**2).sum(-1)


def _n_factor(n: np.ndarray | float | None) -> np.ndarray | float:
    """n/(n−1) with n the effective sample size (1 for None or n ≥ 1e9; NaN for n ≤ 1)."""
    if n is None:
        return 1.0
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 1e9, 1.0, np.where(n > 1, n / np.where(n > 1, n - 1, 1.0), np.nan))


def entropy_mm(p: np.ndarray, n: np.ndarray | float | None) -> np.ndarray:
    """Miller–Madow bias-corrected normalized entropy, clipped to [0, 1].

    (H_nats(p̂) + (K̂ − 1)/(2n)) / ln K, K̂ = options with p̂ > 0, n the effective sample size
    (:func:`simsurvey.analysis.inference.design_n`); plug-in entropy is biased down by about
    (K − 1)/(2n) nats. Source: Miller (1955), "Note on the bias of information estimates".
    """
    p = _normalize(p)
    k = p.shape[-1]
    if k < 2:
        return np.full(p.shape[:-1], np.nan)
    h = entropy_norm(p) * np.log(k)
    if n is not None:
        kk = (p > 0).sum(-1)
        n = np.asarray(n, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            h = h + np.where(n >= 1e9, 0.0, (kk - 1) / (2 * np.where(n > 0, n, np.nan)))
    return np.clip(h / np.log(k), 0.0, 1.0)


def gini_simpson_unbiased(p: np.ndarray, n: np.ndarray | float | None) -> np.ndarray:
    """n/(n−1) · (1 − Σ p̂²): unbiased for a multinomial sample of size n (Simpson 1949), with
    n the effective sample size; clipped to [0, 1]."""
    return np.clip(gini_simpson(p) * _n_factor(n), 0.0, 1.0)


def ordinal_variance_unbiased(p: np.ndarray, n: np.ndarray | float | None) -> np.ndarray:
    """n/(n−1) · Σ p̂_i (i − μ̂)²: the sample variance's Bessel correction with n effective."""
    return ordinal_variance(p) * _n_factor(n)


def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with NaN where b is 0 or NaN (a diversity ratio silicon/human)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def cramers_v(table: np.ndarray) -> np.ndarray:
    """Cramér's V of contingency tables on the last two axes (no bias correction).

    V = sqrt(χ² / (n (min(r, c) − 1))), χ² = Σ (O − E)²/E, E = row·col/n, over non-empty rows
    and columns (weighted counts are fine: V is scale-invariant). NaN when min(r, c) < 2.
    Source: Cramér (1946); equals ``scipy.stats.contingency.association(method="cramer")``.
    """
    t = np.asarray(table, dtype=np.float64)
    n = t.sum((-2, -1))
    row = t.sum(-1)
    col = t.sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = row[..., :, None] * col[..., None, :] / n[..., None, None]
        chi2 = np.where(e > 0, (t - e) ** 2 / np.where(e > 0, e, 1.0), 0.0).sum((-2, -1))
        r = (row > 0).sum(-1)
        c = (col > 0).sum(-1)
        d = np.minimum(r, c) - 1
        v = np.sqrt(chi2 / (n * d))
    return np.where((d > 0) & (n > 0), np.minimum(v, 1.0), np.nan)


def cramers_v_bc(table: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    """Bias-corrected Cramér's V of tables on the last two axes (Bergsma 2013).

    φ² = χ²/N (N the table total; scale-free), φ̃² = max(0, φ² − (k−1)(r−1)/(n−1)),
    k̃ = k − (k−1)²/(n−1), r̃ = r − (r−1)²/(n−1), Ṽ = sqrt(φ̃² / min(k̃−1, r̃−1)), over non-empty rows
    and columns; n is the effective sample size (for weighted or clustered tables the
    Rao–Scott-corrected size). Plain V of a table with independent margins is biased up by
    about sqrt((r−1)(k−1)/(n·min(r−1,k−1))); Ṽ is ≈ 0 there. NaN when min(r̃, k̃) < 2 or n ≤ 1.
    Source: Bergsma (2013), "A bias-correction for Cramér's V and Tschuprow's T", J. Korean
    Stat. Soc. 42:323–328.
    """
    t = np.asarray(table, dtype=np.float64)
    tot = t.sum((-2, -1))
    row, col = t.sum(-1), t.sum(-2)
    n = np.broadcast_to(np.asarray(n, float), tot.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = row[..., :, None] * col[..., None, :] / tot[..., None, None]
        chi2 = np.where(e > 0, (t - e) ** 2 / np.where(e > 0, e, 1.0), 0.0).sum((-2, -1))
        phi2 = chi2 / tot
        r = (row > 0).sum(-1).astype(float)
        c = (col > 0).sum(-1).astype(float)
        phi2c = np.maximum(0.0, phi2 - (r - 1) * (c - 1) / (n - 1))
        rc = r - (r - 1) ** 2 / (n - 1)
        cc = c - (c - 1) ** 2 / (n - 1)
        d = np.minimum(rc, cc) - 1
        v = np.sqrt(phi2c / d)
    return np.where((d > 0) & (tot > 0) & (n > 1), np.minimum(v, 1.0), np.nan)


def independence_p(table: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    """p-value of independence in tables (last two axes): χ²_RS = n·φ² on (r−1)(c−1) df.

    φ² is the table's χ²/N (scale-free) and n the effective size, so weighted and clustered
    tables get the first-order Rao–Scott correction (Rao & Scott 1981, 1984). For an unweighted
    table of counts it is Pearson's test (``scipy.stats.chi2_contingency`` without continuity
    correction).
    """
    from scipy.stats import chi2 as chi2_dist

    t = np.asarray(table, dtype=np.float64)
    tot = t.sum((-2, -1))
    row, col = t.sum(-1), t.sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = row[..., :, None] * col[..., None, :] / tot[..., None, None]
        chi2 = np.where(e > 0, (t - e) ** 2 / np.where(e > 0, e, 1.0), 0.0).sum((-2, -1))
        df = ((row > 0).sum(-1) - 1) * ((col > 0).sum(-1) - 1)
        stat = np.asarray(n, float) * chi2 / tot
    return np.where((df > 0) & (tot > 0), chi2_dist.sf(stat, np.maximum(df, 1)), np.nan)


def pearson_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis, ignoring positions where either is NaN.

    NaN when fewer than 3 finite pairs (two points always correlate ±1) or a side is constant
    (within a relative tolerance of 1e-9, so float noise is not correlated).
    Source: Pearson (1895); equals ``scipy.stats.pearsonr``.
    """
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    ok = np.isfinite(x) & np.isfinite(y)
    n = ok.sum(-1)
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xs.sum(-1, keepdims=True) / n[..., None]
        my = ys.sum(-1, keepdims=True) / n[..., None]
        dx, dy = np.where(ok, x - mx, 0.0), np.where(ok, y - my, 0.0)
        r = (dx * dy).sum(-1) / np.sqrt((dx**2).sum(-1) * (dy**2).sum(-1))
        sx, sy = np.sqrt((dx**2).sum(-1)), np.sqrt((dy**2).sum(-1))
        scale = np.maximum(np.abs(xs).max(-1, initial=0), np.abs(ys).max(-1, initial=0))
    # A side constant up to float noise (e.g. V ≈ 1e-16 everywhere) has no correlation to report.
    flat = (sx <= 1e-9 * np.maximum(scale, 1e-300) * np.sqrt(np.maximum(n, 1))) | \
        (sy <= 1e-9 * np.maximum(scale, 1e-300) * np.sqrt(np.maximum(n, 1))) | (sx < 1e-12) | (sy < 1e-12)
    return np.where((n >= 3) & ~flat, np.clip(r, -1.0, 1.0), np.nan)


Tail = Literal["upper", "lower", "two"]
_INF = float("inf")


@dataclass(frozen=True)
class MetricSpec:
    """Metadata of one metric name in ``metrics.parquet``.

    ``bounds`` is the metric's range (intervals are clipped to it); ``test`` says which rows get
    a sampling null, p-value and excess: ``upper`` (large values are evidence that silicon ≠
    human: distances), ``lower`` (small values are: representativeness), ``two`` (a ratio whose
    null value is 1), ``independence`` (a Rao–Scott χ² test that the association is 0; no null
    mean), or None (a reading aid without a test).
    """

    name: str
    direction: Direction
    level: Level
    applies_to: tuple[Kind, ...]
    formula: str
    source: str
    description: str
    bounds: tuple[float, float] = (0.0, 1.0)
    test: Tail | Literal["independence"] | None = None
    ci: Literal["shifted", "span", "percentile"] = "percentile"


_BOTH: tuple[Kind, ...] = ("nominal", "ordinal")
_ORD: tuple[Kind, ...] = ("ordinal",)
_NOM: tuple[Kind, ...] = ("nominal",)
_SANTURKAR = "Santurkar et al. 2023, Whose Opinions Do Language Models Reflect? (OpinionQA)"
_DASMAN = "ChatGPT is not A Man but Das Man (2025): homogenization of silicon samples"
_ARGYLE = "Argyle et al. 2023, Out of One, Many (algorithmic fidelity / pattern correspondence)"
_NULL = ("; null_mean/null_q95/p_value: the sampling null (silicon answers drawn from the pooled "
         "distribution at n_eff_silicon, human at n_eff_human; simsurvey.analysis.inference)")
_MM = "Miller 1955 (bias of information estimates)"
_RATIO_P = "; p_value: two-sided, against the sampling null (both sides from the pooled distribution)"
_ANS = ("; probs mode only: computed from the answer_code of the same rows (the drawn or argmax "
        "answer), so diversity the model expresses only as token uncertainty is not counted")
_BERGSMA = "Bergsma 2013, bias-corrected Cramér's V; Rao & Scott 1981 (p-value)"
_VBC = ("Ṽ=sqrt(max(0, φ²−(k−1)(r−1)/(n−1)) / min(k̃−1, r̃−1)), φ²=χ²/N, k̃=k−(k−1)²/(n−1), "
        "n=n_eff; p_value: n·φ² ~ χ²((r−1)(k−1))")


def _diversity(side: str, who: str, kinds: tuple[Kind, ...], suffix: str = "",
               extra: str = "") -> tuple[MetricSpec, ...]:
    """The corrected diversity metrics of one side (silicon/human) for the registry."""
    return (
        MetricSpec(f"entropy_norm_{side}{suffix}", "none", "group", _BOTH,
                   "(H_nats(p̂) + (K̂−1)/(2 n_eff)) / ln K, clipped to [0,1]", _MM,
                   f"Normalized entropy of the {who} answers (Miller–Madow corrected){extra}."),
        *((MetricSpec(f"variance_{side}{suffix}", "none", "group", _ORD,
                      "n_eff/(n_eff−1) · Σ p_i (i−μ)², positions 0..K−1", _DASMAN,
                      f"Within-group variance of {who} ordinal answers (Bessel-corrected){extra}.",
                      (0.0, _INF)),) if "ordinal" in kinds else ()),
        *((MetricSpec(f"gini_simpson_{side}{suffix}", "none", "group", _NOM,
                      "n_eff/(n_eff−1) · (1 − Σ p_i²)", "Simpson 1949",
                      f"Gini–Simpson diversity of {who} nominal answers (unbiased){extra}."),)
          if "nominal" in kinds else ()),
    )


def _ratios(suffix: str = "", extra: str = "") -> tuple[MetricSpec, ...]:
    return (
        MetricSpec(f"entropy_ratio{suffix}", "near_one", "group", _BOTH,
                   f"entropy_norm_silicon{suffix} / entropy_norm_human", _DASMAN,
                   f"Silicon/human entropy; < 1 means the silicon sample is less diverse{extra}{_RATIO_P}.",
                   (0.0, _INF), "two"),
        MetricSpec(f"variance_ratio{suffix}", "near_one", "group", _ORD,
                   f"variance_silicon{suffix} / variance_human", _DASMAN,
                   f"Silicon/human within-group variance; < 1 is homogenization{extra}{_RATIO_P}.",
                   (0.0, _INF), "two"),
        MetricSpec(f"gini_simpson_ratio{suffix}", "near_one", "group", _NOM,
                   f"gini_simpson_silicon{suffix} / gini_simpson_human", _DASMAN,
                   f"Silicon/human Gini–Simpson; < 1 is homogenization{extra}{_RATIO_P}.",
                   (0.0, _INF), "two"),
    )


_CRONBACH = "Cronbach 1951, Coefficient alpha and the internal structure of tests"
_HALL_WILSON = ("; p_value: Hall & Wilson 1991 bootstrap test (null = the centred bootstrap errors of both "
                "sides, two-sided; simsurvey.analysis.battery)")
_BAT = ("Battery rows (question_id = the battery id): units are a persona's complete battery in one "
        "replicate and condition (answers; a persona is one bootstrap cluster) and human respondents with every item "
        "answered; reverse-keyed items reflected")
_MS = ("multi_select rows (group_var 'option', group_value the option code): a row's answer set "
       "('a|c'); weighted over valid sets, personas resampled as clusters")
_BATTERY_METRICS = (
    MetricSpec("cronbach_alpha_silicon", "none", "question", _ORD, "k/(k−1)·(1 − tr C/1ᵀC1), C weighted item covariance",
               _CRONBACH, f"Cronbach's alpha of the silicon answers. {_BAT}.", (-_INF, 1.0)),
    MetricSpec("cronbach_alpha_human", "none", "question", _ORD, "k/(k−1)·(1 − tr C/1ᵀC1)", _CRONBACH,
               f"Cronbach's alpha of the human answers. {_BAT}.", (-_INF, 1.0)),
    MetricSpec("cronbach_alpha_diff", "none", "question", _ORD, "alpha_silicon − alpha_human", _CRONBACH,
               f"Silicon minus human internal consistency; > 0: the silicon answers hang together more "
               f"tightly than people's{_HALL_WILSON}.", (-_INF, _INF), "two"),
    MetricSpec("standardized_alpha_silicon", "none", "question", _ORD, "k r̄/(1 + (k−1) r̄)", _CRONBACH,
               f"Standardized alpha (mean inter-item correlation r̄) of the silicon answers. {_BAT}.", (-_INF, 1.0)),
    MetricSpec("standardized_alpha_human", "none", "question", _ORD, "k r̄/(1 + (k−1) r̄)", _CRONBACH,
               f"Standardized alpha of the human answers. {_BAT}.", (-_INF, 1.0)),
    MetricSpec("standardized_alpha_diff", "none", "question", _ORD, "standardized_alpha_silicon − _human",
               _CRONBACH, f"Silicon minus human standardized alpha{_HALL_WILSON}.", (-_INF, _INF), "two"),
    MetricSpec("inter_item_corr_mad", "lower", "question", _ORD, "mean_{i<j} |R_s,ij − R_h,ij| (weighted Pearson)",
               _ARGYLE, "Mean absolute difference of the inter-item correlations; null_mean/null_q95/p_value: its "
               "sampling null, the MAD of both sides' centred bootstrap errors (simsurvey.analysis.battery). "
               f"{_BAT}.", (0.0, 2.0), "upper", "span"),
    MetricSpec("inter_item_corr_silicon", "none", "pair", _ORD, "weighted Pearson r of two battery items",
               "Pearson 1896", f"Correlation of two items of a battery among personas (question_id 'item1|item2'). {_BAT}.",
               (-1.0, 1.0)),
    MetricSpec("inter_item_corr_human", "none", "pair", _ORD, "weighted Pearson r of two battery items",
               "Pearson 1896", f"Correlation of two items of a battery among human respondents. {_BAT}.", (-1.0, 1.0)),
    MetricSpec("selection_rate_silicon", "none", "option", (), "Σ w·[option ∈ set] / Σ w", "—",
               f"Share of silicon answers selecting the option. {_MS}."),
    MetricSpec("selection_rate_human", "none", "option", (), "Σ w·[option ∈ set] / Σ w", "—",
               f"Share of human answers selecting the option. {_MS}."),
    MetricSpec("selection_rate_diff", "none", "option", (), "selection_rate_silicon − selection_rate_human", "—",
               f"Silicon minus human selection rate{_HALL_WILSON}. {_MS}.", (-1.0, 1.0), "two"),
)


_NUM: tuple[Kind, ...] = ("numeric",)
_VAL = " on the raw scale (answer_value; valid rows with a number: simsurvey.analysis.numeric)"


def _numeric() -> tuple[MetricSpec, ...]:
    """The raw-scale metrics of numeric questions (their binned answers get the ordinal ones)."""
    return (
        MetricSpec("value_mean_silicon", "none", "group", _NUM, "Σ w x / Σ w", "standard",
                   f"Weighted mean of the silicon answers{_VAL}.", (-_INF, _INF)),
        MetricSpec("value_mean_human", "none", "group", _NUM, "Σ w x / Σ w", "standard",
                   f"Weighted mean of the human answers{_VAL}.", (-_INF, _INF)),
        MetricSpec("value_mean_diff", "none", "group", _NUM, "value_mean_silicon − value_mean_human", "standard",
                   f"Difference of means silicon − human{_VAL}{_RATIO_P}.", (-_INF, _INF), "two"),
        MetricSpec("value_sd_silicon", "none", "group", _NUM, "sqrt(n_eff/(n_eff−1) · Σ p_v (x_v−μ)²)", _DASMAN,
                   f"Weighted SD of the silicon answers (Bessel-corrected at n_eff){_VAL}.", (0.0, _INF)),
        MetricSpec("value_sd_human", "none", "group", _NUM, "sqrt(n_eff/(n_eff−1) · Σ q_v (x_v−μ)²)", _DASMAN,
                   f"Weighted SD of the human answers (Bessel-corrected at n_eff){_VAL}.", (0.0, _INF)),
        MetricSpec("value_variance_ratio", "near_one", "group", _NUM, "value_sd_silicon² / value_sd_human²", _DASMAN,
                   f"Silicon/human variance; < 1 is homogenization{_VAL}{_RATIO_P}.", (0.0, _INF), "two"),
        MetricSpec("value_wasserstein_norm", "lower", "group", _NUM,
                   "Σ_v |F_p(x_v)−F_q(x_v)|(x_{v+1}−x_v) / (max−min of the scale)", "Vallender 1974",
                   f"Wasserstein-1 between the silicon and human answers divided by the scale's range, "
                   f"in [0,1]{_VAL}{_NULL}.", test="upper", ci="span"),
        MetricSpec("value_ks", "lower", "group", _NUM, "sup_v |F_p(x_v) − F_q(x_v)|", "Smirnov 1939",
                   f"Kolmogorov–Smirnov statistic silicon vs human, in [0,1]{_VAL}{_NULL}.",
                   test="upper", ci="span"),
    )


_SCALE = (", here the battery's scale scores (question_id = the battery id): per unit the mean of its answered "
          "items on the positions 1..K, reverse-keyed items reflected (K+1−x), units with fewer than "
          "analysis.scale_min_share of the items answered unscored; silicon units a persona's battery in one "
          "replicate and condition (a persona is one cluster), human units respondents; compared as a numeric "
          "question's values on [1, K] (simsurvey.analysis.scale)")


def _scale_scores() -> tuple[MetricSpec, ...]:
    """The battery scale-score metrics: the ``value_*`` comparison applied to scale scores
    (``scale_*`` for ``value_*``; the same formulas, tests and intervals)."""
    return tuple(replace(s, name="scale_" + s.name.removeprefix("value_"), applies_to=_ORD,
                         description=s.description.replace(_VAL, _SCALE))
                 for s in _numeric())


#: The one registry of metric names (public contract), in report order.
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("js_divergence", "lower", "group", _BOTH, "½KL(p‖m)+½KL(q‖m), m=(p+q)/2, log2",
                   "Lin 1991", f"Jensen–Shannon divergence silicon vs human, in [0,1]{_NULL}.",
                   test="upper", ci="shifted"),
        MetricSpec("kl_silicon_human", "lower", "group", _BOTH, "Σ p~ log2(p~/q~), p~=(p+ε)/(1+Kε)",
                   "Kullback & Leibler 1951", f"KL(silicon‖human) in bits, ε = kl_smoothing{_NULL}.",
                   (0.0, _INF), "upper", "shifted"),
        MetricSpec("kl_human_silicon", "lower", "group", _BOTH, "Σ q~ log2(q~/p~), q~=(q+ε)/(1+Kε)",
                   "Kullback & Leibler 1951", f"KL(human‖silicon) in bits, ε = kl_smoothing{_NULL}.",
                   (0.0, _INF), "upper", "shifted"),
        MetricSpec("total_variation", "lower", "group", _BOTH, "½Σ|p−q|", "standard",
                   f"Total variation distance silicon vs human, in [0,1]{_NULL}.", test="upper", ci="span"),
        MetricSpec("wasserstein_norm", "lower", "group", _ORD, "Σ|F_p−F_q|/(K−1) over positions",
                   _SANTURKAR, f"Normalized Wasserstein-1 over ordinal answer positions{_NULL}.",
                   test="upper", ci="span"),
        MetricSpec("representativeness", "higher", "group", _ORD, "1 − W1/(K−1)", _SANTURKAR,
                   f"OpinionQA representativeness of the silicon distribution{_NULL} (lower tail).",
                   test="lower", ci="span"),
        *_diversity("silicon", "silicon", _BOTH),
        *_diversity("human", "human", _BOTH),
        *_ratios(),
        *_diversity("silicon", "silicon", _BOTH, "_answers", _ANS),
        *_ratios("_answers", _ANS),
        MetricSpec("group_vs_all_js_silicon", "none", "group", _BOTH, "JS(p_group, p_all)", _DASMAN,
                   "How far a silicon subgroup sits from the whole silicon sample (rows with a known "
                   "value of the variable); compare with the human value.", ci="shifted"),
        MetricSpec("group_vs_all_js_human", "none", "group", _BOTH, "JS(q_group, q_all)", _DASMAN,
                   "How far a human subgroup sits from the whole human sample: the subgroup signal "
                   "a silicon sample should reproduce.", ci="shifted"),
        MetricSpec("cramers_v_silicon", "none", "variable", _BOTH, _VBC, _BERGSMA,
                   "Association of the demographic with the silicon answer (bias-corrected; "
                   "p_value tests independence).", test="independence"),
        MetricSpec("cramers_v_human", "none", "variable", _BOTH, _VBC, _BERGSMA,
                   "Association of the demographic with the human answer (bias-corrected; "
                   "p_value tests independence).", test="independence"),
        MetricSpec("subgroup_mean_corr", "higher", "variable", _ORD,
                   "pearson(mean position by group, silicon vs human), ≥3 groups", _ARGYLE,
                   "Do silicon subgroup means order like the human ones? flag 'low_information' "
                   "when it rests on fewer than 5 groups.", (-1.0, 1.0)),
        MetricSpec("pair_cramers_v_silicon", "none", "pair", _BOTH,
                   "Ṽ of Σ_i w_i P_i(q1) ⊗ P_i(q2) (persona answer distributions), n = Kish n of personas",
                   _ARGYLE, "Association between two questions' silicon answers (same persona; "
                   "bias-corrected; personas resampled).", test="independence"),
        MetricSpec("pair_cramers_v_human", "none", "pair", _BOTH, "Ṽ of the q1×q2 table of respondent answers",
                   _ARGYLE, "Association between two questions' human answers (same respondent; "
                   "bias-corrected).", test="independence"),
        MetricSpec("pattern_cramers_v_corr", "higher", "model", _BOTH,
                   "pearson over question pairs of (Ṽ_silicon, Ṽ_human), ≥3 pairs; NaN when a side "
                   "is constant", _ARGYLE,
                   "Pattern correspondence: do silicon inter-question associations track human ones?",
                   (-1.0, 1.0)),
        MetricSpec("no_persona_js", "none", "question", _BOTH, "JS(p_no_persona, Σ_j w_j p_j / Σ w_j)",
                   "Demographic Probing Lacks Construct Validity; Argyle et al. 2023; " + _DASMAN,
                   "Structural consistency: the persona-free answer vs the weighted persona mixture "
                   "(n_silicon = no-persona units: distinct prompts in probs mode, rows otherwise; "
                   "n_human = persona rows)" + _NULL.replace("silicon answers", "no-persona answers")
                   .replace("human at", "persona mixture at") + ".", test="upper", ci="shifted"),
        MetricSpec("no_persona_js_human", "lower", "question", _BOTH, "JS(p_no_persona, q)",
                   "Demographic Probing Lacks Construct Validity; " + _DASMAN,
                   "The persona-free answer vs the human answers: is the model's unconditioned "
                   "answer the population's?" + _NULL + ".", test="upper", ci="shifted"),
        *_BATTERY_METRICS,
        MetricSpec("invalid_rate", "lower", "group", _BOTH, "Σ w·[¬valid] / Σ w", "—",
                   "Weighted share of persona rows whose answer could not be parsed (valid=False)."),
        MetricSpec("refusal_rate", "lower", "group", _BOTH, "Σ w·[refusal] / Σ w", "—",
                   "Weighted share of persona rows flagged as refusals (may overlap invalid_rate)."),
        MetricSpec("nonsubstantive_rate", "none", "group", _BOTH, "Σ w·[code ∉ substantive] / Σ w·[valid]",
                   "—", "Weighted share of valid answers on non-substantive or neutral options; "
                   "they are kept out of every distribution."),
        *_numeric(),
        *_scale_scores(),
    )
}

#: Distance metrics between silicon and human distributions (each gets a sampling null).
DISTANCES = ("js_divergence", "kl_silicon_human", "kl_human_silicon", "total_variation",
             "wasserstein_norm", "representativeness")


def distance(name: str, p: np.ndarray, q: np.ndarray, *, eps: float) -> np.ndarray:
    """Evaluate the distance metric ``name`` between silicon ``p`` and human ``q``."""
    if name == "js_divergence":
        return js_divergence(p, q)
    if name == "kl_silicon_human":
        return kl_divergence(p, q, eps)
    if name == "kl_human_silicon":
        return kl_divergence(q, p, eps)
    if name == "total_variation":
        return total_variation(p, q)
    if name == "wasserstein_norm":
        return wasserstein_norm(p, q)
    if name == "representativeness":
        return representativeness(p, q)
    raise KeyError(name)


def diversity(p: np.ndarray, n: np.ndarray | float | None, kind: Kind) -> dict[str, np.ndarray]:
    """The corrected diversity statistics of distributions ``p`` at effective sizes ``n``:
    ``entropy_norm`` and ``variance`` (ordinal) or ``gini_simpson`` (nominal)."""
    out = {"entropy_norm": entropy_mm(p, n)}
    if kind == "ordinal":
        out["variance"] = ordinal_variance_unbiased(p, n)
    else:
        out["gini_simpson"] = gini_simpson_unbiased(p, n)
    return out


def group_metrics(p: np.ndarray, q: np.ndarray, kind: Kind, *, eps: float,
                  n_s: np.ndarray | float | None = None,
                  n_h: np.ndarray | float | None = None) -> dict[str, np.ndarray]:
    """Every ``group``-level distribution metric of silicon ``p`` vs human ``q`` (shapes (..., K)).

    ``n_s`` / ``n_h`` are the sides' effective sizes (broadcast against the leading shape) for
    the small-sample corrections of the diversity statistics (None: no correction). Returns a dict
    metric name -> array of the broadcast leading shape, in registry order, restricted to the
    metrics that apply to ``kind``.
    """
    out: dict[str, np.ndarray] = {}
    for name in DISTANCES:
        if kind in METRICS[name].applies_to:
            out[name] = distance(name, p, q, eps=eps)
    ds, dh = diversity(p, n_s, kind), diversity(q, n_h, kind)
    for stat in ds:
        out[f"{stat}_silicon"] = ds[stat]
        out[f"{stat}_human"] = dh[stat]
    for stat in ds:
        out[f"{stat.removesuffix('_norm')}_ratio"] = ratio(ds[stat], dh[stat])
    return out
