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
question_id ``"*"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["lower", "higher", "near_one", "none"]
Level = Literal["group", "variable", "question", "pair", "model"]
Kind = Literal["nominal", "ordinal"]


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


def pearson_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis, ignoring positions where either is NaN.

    NaN when fewer than 3 finite pairs (two points always correlate ±1) or a side is constant.
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
    return np.where(n >= 3, np.clip(r, -1.0, 1.0), np.nan)


@dataclass(frozen=True)
class MetricSpec:
    """Metadata of one metric name in ``metrics.parquet``."""

    name: str
    direction: Direction
    level: Level
    applies_to: tuple[Kind, ...]
    formula: str
    source: str
    description: str


_BOTH: tuple[Kind, ...] = ("nominal", "ordinal")
_ORD: tuple[Kind, ...] = ("ordinal",)
_NOM: tuple[Kind, ...] = ("nominal",)
_SANTURKAR = "Santurkar et al. 2023, Whose Opinions Do Language Models Reflect? (OpinionQA)"
_DASMAN = "ChatGPT is not A Man but Das Man (2025): homogenization of silicon samples"
_ARGYLE = "Argyle et al. 2023, Out of One, Many (algorithmic fidelity / pattern correspondence)"

#: The one registry of metric names (public contract), in report order.
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("js_divergence", "lower", "group", _BOTH, "½KL(p‖m)+½KL(q‖m), m=(p+q)/2, log2",
                   "Lin 1991", "Jensen–Shannon divergence silicon vs human, in [0,1]."),
        MetricSpec("kl_silicon_human", "lower", "group", _BOTH, "Σ p~ log2(p~/q~), p~=(p+ε)/(1+Kε)",
                   "Kullback & Leibler 1951", "KL(silicon‖human) in bits, ε = kl_smoothing."),
        MetricSpec("kl_human_silicon", "lower", "group", _BOTH, "Σ q~ log2(q~/p~), q~=(q+ε)/(1+Kε)",
                   "Kullback & Leibler 1951", "KL(human‖silicon) in bits, ε = kl_smoothing."),
        MetricSpec("total_variation", "lower", "group", _BOTH, "½Σ|p−q|", "standard",
                   "Total variation distance silicon vs human, in [0,1]."),
        MetricSpec("wasserstein_norm", "lower", "group", _ORD, "Σ|F_p−F_q|/(K−1) over positions",
                   _SANTURKAR, "Normalized Wasserstein-1 over ordinal answer positions."),
        MetricSpec("representativeness", "higher", "group", _ORD, "1 − W1/(K−1)", _SANTURKAR,
                   "OpinionQA representativeness of the silicon distribution."),
        MetricSpec("entropy_norm_silicon", "none", "group", _BOTH, "−Σ p log p / log K", "Shannon 1948",
                   "Normalized entropy of the silicon answers."),
        MetricSpec("entropy_norm_human", "none", "group", _BOTH, "−Σ q log q / log K", "Shannon 1948",
                   "Normalized entropy of the human answers."),
        MetricSpec("entropy_ratio", "near_one", "group", _BOTH, "H_norm(p)/H_norm(q)", _DASMAN,
                   "Silicon/human entropy; < 1 means the silicon sample is less diverse."),
        MetricSpec("variance_silicon", "none", "group", _ORD, "Σ p_i (i−μ)², positions 0..K−1", _DASMAN,
                   "Within-group variance of silicon ordinal answers."),
        MetricSpec("variance_human", "none", "group", _ORD, "Σ q_i (i−μ)², positions 0..K−1", _DASMAN,
                   "Within-group variance of human ordinal answers."),
        MetricSpec("variance_ratio", "near_one", "group", _ORD, "Var(p)/Var(q)", _DASMAN,
                   "Silicon/human within-group variance; < 1 is homogenization."),
        MetricSpec("gini_simpson_silicon", "none", "group", _NOM, "1 − Σ p_i²", "Simpson 1949",
                   "Gini–Simpson diversity of silicon nominal answers."),
        MetricSpec("gini_simpson_human", "none", "group", _NOM, "1 − Σ q_i²", "Simpson 1949",
                   "Gini–Simpson diversity of human nominal answers."),
        MetricSpec("gini_simpson_ratio", "near_one", "group", _NOM, "GS(p)/GS(q)", _DASMAN,
                   "Silicon/human Gini–Simpson; < 1 is homogenization."),
        MetricSpec("group_vs_all_js_silicon", "none", "group", _BOTH, "JS(p_group, p_all)", _DASMAN,
                   "How far a silicon subgroup sits from the whole silicon sample (rows with a known "
                   "value of the variable); compare with the human value."),
        MetricSpec("group_vs_all_js_human", "none", "group", _BOTH, "JS(q_group, q_all)", _DASMAN,
                   "How far a human subgroup sits from the whole human sample: the subgroup signal "
                   "a silicon sample should reproduce."),
        MetricSpec("cramers_v_silicon", "none", "variable", _BOTH, "sqrt(χ²/(n(min(r,c)−1)))",
                   "Cramér 1946", "Association of the demographic with the silicon answer."),
        MetricSpec("cramers_v_human", "none", "variable", _BOTH, "sqrt(χ²/(n(min(r,c)−1)))",
                   "Cramér 1946", "Association of the demographic with the human answer."),
        MetricSpec("subgroup_mean_corr", "higher", "variable", _ORD,
                   "pearson(mean position by group, silicon vs human), ≥3 groups", _ARGYLE,
                   "Do silicon subgroup means order like the human ones?"),
        MetricSpec("pair_cramers_v_silicon", "none", "pair", _BOTH, "V of the q1×q2 table of persona answers",
                   _ARGYLE, "Association between two questions' silicon answers (same persona)."),
        MetricSpec("pair_cramers_v_human", "none", "pair", _BOTH, "V of the q1×q2 table of respondent answers",
                   _ARGYLE, "Association between two questions' human answers (same respondent)."),
        MetricSpec("pattern_cramers_v_corr", "higher", "model", _BOTH,
                   "pearson over question pairs of (V_silicon, V_human), ≥3 pairs", _ARGYLE,
                   "Pattern correspondence: do silicon inter-question associations track human ones?"),
        MetricSpec("no_persona_js", "none", "question", _BOTH, "JS(p_no_persona, Σ_j w_j p_j / Σ w_j)",
                   "Demographic Probing Lacks Construct Validity; Argyle et al. 2023",
                   "Structural consistency: the persona-free answer vs the weighted persona mixture."),
        MetricSpec("invalid_rate", "lower", "group", _BOTH, "Σ w·[¬valid] / Σ w", "—",
                   "Weighted share of persona rows whose answer could not be parsed (valid=False)."),
        MetricSpec("refusal_rate", "lower", "group", _BOTH, "Σ w·[refusal] / Σ w", "—",
                   "Weighted share of persona rows flagged as refusals (may overlap invalid_rate)."),
        MetricSpec("nonsubstantive_rate", "none", "group", _BOTH, "Σ w·[code ∉ substantive] / Σ w·[valid]",
                   "—", "Weighted share of valid answers on non-substantive or neutral options; "
                   "they are kept out of every distribution."),
    )
}

#: Distance metrics that get a human split-half noise floor, with their function.
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


def group_metrics(p: np.ndarray, q: np.ndarray, kind: Kind, *, eps: float) -> dict[str, np.ndarray]:
    """Every ``group``-level distribution metric of silicon ``p`` vs human ``q`` (shapes (..., K)).

    Returns a dict metric name -> array of the broadcast leading shape, in registry order,
    restricted to the metrics that apply to ``kind``.
    """
    out: dict[str, np.ndarray] = {}
    for name in DISTANCES:
        if kind in METRICS[name].applies_to:
            out[name] = distance(name, p, q, eps=eps)
    hs, hh = entropy_norm(p), entropy_norm(q)
    out.update(entropy_norm_silicon=hs, entropy_norm_human=hh, entropy_ratio=ratio(hs, hh))
    if kind == "ordinal":
        vs, vh = ordinal_variance(p), ordinal_variance(q)
        out.update(variance_silicon=vs, variance_human=vh, variance_ratio=ratio(vs, vh))
    else:
        gs, gh = gini_simpson(p), gini_simpson(q)
        out.update(gini_simpson_silicon=gs, gini_simpson_human=gh, gini_simpson_ratio=ratio(gs, gh))
    return out
