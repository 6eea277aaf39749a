"""Vectorized bootstrap resampling of weighted count tables.

The count-based bootstrap resamples a group's (weighted) answer distribution as
``multinomial(n_eff, p̂) / n_eff`` for all B replicates in one call, with n_eff the Kish
effective sample size (Σw)²/Σw² — the number of equally weighted respondents carrying the same
information as the weighted sample. Groups are resampled separately (stratified) and each
replicate is rescaled to the group's weighted total, so cross-group margins (which Cramér's V
and subgroup correlations depend on) stay those of the data.

When a persona answers a question more than once (several conditions or replicates) its rows are
not independent, so personas are resampled instead of rows (cluster bootstrap):
:func:`cluster_tables` for one-hot answers (a multinomial over the few distinct per-persona answer
patterns), :func:`unit_tables` for logprob distributions. Human respondents answer each question
once, so their rows are resampled as before.
"""

from __future__ import annotations

import numpy as np


def kish_n(sum_w: np.ndarray, sum_w2: np.ndarray) -> np.ndarray:
    """Kish effective sample size (Σw)²/Σw², rounded, at least 1 where Σw > 0 (else 0)."""
    sum_w, sum_w2 = np.asarray(sum_w, float), np.asarray(sum_w2, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(sum_w2 > 0, sum_w**2 / np.where(sum_w2 > 0, sum_w2, 1.0), 0.0)
    return np.where(sum_w > 0, np.maximum(np.rint(n), 1), 0).astype(np.int64)


def multinomial_tables(rng: np.random.Generator, table: np.ndarray, n_eff: np.ndarray, b: int) -> np.ndarray:
    """Count-based bootstrap of a (G, K) weighted table: returns (b, G, K).

    Row g of each replicate is ``multinomial(n_eff[g], table[g]/Σtable[g]) / n_eff[g] · Σtable[g]``;
    rows with no mass stay all-zero (their distributions are NaN downstream).
    """
    table = np.asarray(table, float)
    g, k = table.shape
    tot = table.sum(-1)
    ok = (tot > 0) & (n_eff > 0)
    p = np.where(ok[:, None], table / np.where(ok, tot, 1.0)[:, None], 1.0 / max(k, 1))
    # Guard against rounding pushing Σp above 1, which numpy rejects.
    p = p / p.sum(-1, keepdims=True)
    n = np.where(ok, n_eff, 0)
    draws = rng.multinomial(n, p, size=(b, g)).astype(float)
    scale = np.where(ok, tot / np.maximum(n, 1), 0.0)
    return draws * scale[None, :, None]


def unit_tables(rng: np.random.Generator, units: np.ndarray, unit_group: np.ndarray, n_groups: int,
                b: int) -> np.ndarray:
    """Bootstrap by resampling units (personas) within each group: returns (b, G, K).

    ``units`` is (n_units, K), each row a unit's weighted mass (e.g. weight × its averaged
    probability vector). Within group g, n_g units are drawn with replacement for every replicate
    at once: every unit's slot draws one unit uniformly from its own group (one uniform number
    per slot, all groups and replicates in one array), the draws are counted with ``bincount``
    and the counts multiply the masses. Replicates go in blocks of ~2M draws to bound memory (the
    random stream does not depend on the block size).
    """
    units = np.asarray(units, float)
    k = units.shape[1]
    out = np.zeros((b, n_groups, k))
    idx = np.flatnonzero(unit_group >= 0)
    if len(idx) == 0 or b == 0:
        return out
    order = idx[np.argsort(unit_group[idx], kind="stable")]
    g_sorted = unit_group[order]
    sizes = np.bincount(g_sorted, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n = len(order)
    slot_start, slot_size = starts[g_sorted], sizes[g_sorted]
    masses = units[order]
    block = max(1, int(2e6 // n))
    for r0 in range(0, b, block):
        c = min(block, b - r0)
        u = rng.random((c, n))
        drawn = slot_start + np.minimum((u * slot_size).astype(np.int64), slot_size - 1)
        counts = np.bincount((drawn + (np.arange(c) * n)[:, None]).ravel(), minlength=c * n).reshape(c, n)
        for g in np.flatnonzero(sizes):
            s, e = starts[g], starts[g] + sizes[g]
            out[r0:r0 + c, g] = counts[:, s:e] @ masses[s:e]
    return out


#: Above this many distinct persona answer patterns the cluster bootstrap draws personas one by one.
MAX_PATTERNS = 4096


def answer_patterns(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a (n_units, K) answer-count table: (pattern id per unit, (P, K) patterns)."""
    counts = np.asarray(counts, np.int64)
    n_units, k = counts.shape
    base = int(counts.max()) + 1 if counts.size else 1
    if k * np.log2(max(base, 2)) < 62:
        key = counts @ (base ** np.arange(k, dtype=np.int64))
        _, first, pid = np.unique(key, return_index=True, return_inverse=True)
    else:
        _, first, pid = np.unique(counts, axis=0, return_index=True, return_inverse=True)
    return pid.reshape(-1), counts[first]


def cluster_tables(rng: np.random.Generator, counts: np.ndarray, w: np.ndarray, unit_group: np.ndarray,
                   n_groups: int, b: int, patterns: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Cluster (persona) bootstrap of one-hot answers: returns (b, G, K).

    ``counts`` is (n_units, K): how often each persona gave each substantive answer (over the
    conditions and replicates it answered); ``w`` its weight. Personas, not rows, are resampled
    within each group, so a persona's correlated rows move together. Personas with the same
    answer pattern are exchangeable, so drawing n personas with replacement is drawn exactly as a
    multinomial over the few distinct patterns — the count-based bootstrap of
    :func:`multinomial_tables` one level up: pattern probabilities are weighted persona shares, n
    the Kish effective number of personas, each replicate rescaled to the group's weighted total
    (with equal weights: exactly resampling personas; with unequal weights the same Kish
    approximation the row bootstrap makes). Beyond :data:`MAX_PATTERNS` patterns (many rows per
    persona) personas are drawn one by one with :func:`unit_tables`. ``patterns`` is
    :func:`answer_patterns` of ``counts`` when the caller already has it.
    """
    pid, pat = patterns if patterns is not None else answer_patterns(counts)
    n_pat = len(pat)
    if n_pat > MAX_PATTERNS:
        return unit_tables(rng, np.asarray(counts, float) * w[:, None], unit_group, n_groups, b)
    m = unit_group >= 0
    table = np.bincount(unit_group[m] * n_pat + pid[m], weights=w[m],
                        minlength=n_groups * n_pat).reshape(n_groups, n_pat)
    sw = np.bincount(unit_group[m], weights=w[m], minlength=n_groups)
    sw2 = np.bincount(unit_group[m], weights=w[m] ** 2, minlength=n_groups)
    draws = multinomial_tables(rng, table, kish_n(sw, sw2), b)
    return draws @ pat.astype(float)


def binomial_rates(rng: np.random.Generator, rate: np.ndarray, n_eff: np.ndarray, b: int) -> np.ndarray:
    """Bootstrap replicates (b, G) of weighted rates: binomial(n_eff, rate)/n_eff."""
    r = np.nan_to_num(np.clip(rate, 0.0, 1.0))
    draws = rng.binomial(np.maximum(n_eff, 0), r, size=(b, len(r)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_eff > 0, draws / np.maximum(n_eff, 1), np.nan)


def percentile_ci(reps: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI over axis 0 of bootstrap replicates, ignoring NaN (NaN if none, or b = 0)."""
    if reps.shape[0] == 0:
        nan = np.full(reps.shape[1:], np.nan)
        return nan, nan.copy()
    a = (1.0 - ci) / 2.0
    # Vectorized nanpercentile (numpy's loops over columns in Python): sort NaN to the end,
    # then interpolate linearly among each column's finite values, as numpy's default does.
    reps = np.where(np.isfinite(reps), reps, np.nan)
    srt = np.sort(reps, axis=0)
    n = np.isfinite(reps).sum(0)
    out = []
    for q in (a, 1.0 - a):
        h = q * np.maximum(n - 1, 0)
        lo_i = np.floor(h).astype(np.int64)
        hi_i = np.minimum(lo_i + 1, np.maximum(n - 1, 0))
        v_lo = np.take_along_axis(srt, lo_i[None], 0)[0]
        v_hi = np.take_along_axis(srt, hi_i[None], 0)[0]
        out.append(np.where(n > 0, v_lo + (h - lo_i) * (v_hi - v_lo), np.nan))
    return out[0], out[1]
