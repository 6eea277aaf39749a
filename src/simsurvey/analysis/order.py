"""Instability: order effects between design conditions (``order_effects.parquet``).

For each model, question and pair of conditions (condition_id values of the same kind: persona
conditions are paired with persona conditions, ``no_persona`` conditions with each other):

- ``js_divergence``: JS (base 2) between the two conditions' weighted answer distributions;
- ``flip_rate``: weighted share of (persona, replicate) pairs that answered both conditions
  with different codes (within-persona design only; NaN when no persona answered both);
- ``primacy`` / ``recency``: over the rows of both conditions, the weighted share of answers on
  the first / last *displayed* option minus its expectation 1/K (K = options displayed in the
  row); with logprob distributions, the probability mass on that option instead of the answer;
- ``p_value``: permutation test of the JS statistic: condition labels of the pair's rows are
  permuted within the question (seeded), p = (1 + #{JS_perm ≥ JS_obs}) / (1 + n_permutations).
  With one-hot answers the label permutation is drawn exactly, and fast, as a multivariate
  hypergeometric draw over cells of (answer, weight); with probability vectors rows are permuted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsurvey.analysis import metrics as M
from simsurvey.analysis.config import AnalysisConfig
from simsurvey.analysis.frames import Rows, answer_vectors
from simsurvey.instruments.models import Instrument

#: Above this many (answer, weight) cells the hypergeometric draw costs more than permuting rows.
_MAX_CELLS = 256

ORDER_COLUMNS = ["model", "question_id", "condition_a", "condition_b", "js_divergence", "flip_rate",
                 "primacy", "recency", "p_value", "n_a", "n_b"]


def permutation_p_value(x: np.ndarray, w: np.ndarray, is_a: np.ndarray, n_permutations: int,
                        rng: np.random.Generator, pos: np.ndarray | None = None) -> float:
    """Permutation p-value of JS(dist_a, dist_b) under exchangeable condition labels.

    Args:
        x: (n, K) answer vectors of the pooled rows (one-hot or probabilities).
        w: (n,) row weights.
        is_a: (n,) bool, the row's observed label is condition a.
        n_permutations: number of label permutations.
        rng: generator (seeded by the caller).
        pos: (n,) substantive positions when ``x`` is one-hot: enables the exact hypergeometric
            shortcut (rows with equal answer and weight are exchangeable).

    Returns:
        (1 + #{JS_perm ≥ JS_obs}) / (1 + n_permutations), or NaN when n_permutations is 0 or a
        side is empty.
    """
    n_a = int(is_a.sum())
    if n_permutations <= 0 or n_a == 0 or n_a == len(is_a):
        return float("nan")
    wx = w[:, None] * x
    total = wx.sum(0)
    a_obs = wx[is_a].sum(0)
    obs = float(M.js_divergence(a_obs, total - a_obs))
    k = x.shape[1]
    cells = counts = None
    if pos is not None:
        wu, winv = np.unique(w, return_inverse=True)
        cells, counts = np.unique(winv * k + pos, return_counts=True)
    if cells is not None and len(cells) <= _MAX_CELLS:
        e = np.zeros((len(cells), k))
        e[np.arange(len(cells)), cells % k] = wu[cells // k]
        draws = rng.multivariate_hypergeometric(counts, n_a, size=n_permutations)
        a = draws @ e
    else:
        # Blocks of ~1M labels keep the float copy cache-sized (the reduction got ~5x faster than
        # with 20M) and bound memory; the RNG stream (row by row) does not depend on the block.
        chunk = max(1, int(1e6 // max(len(is_a), 1)))
        parts = []
        for start in range(0, n_permutations, chunk):
            c = min(chunk, n_permutations - start)
            labels = rng.permuted(np.tile(is_a, (c, 1)), axis=1)
            parts.append(labels.astype(np.float64) @ wx)
        a = np.concatenate(parts)
    stat = M.js_divergence(a, total[None] - a)
    # A tiny tolerance so float noise in a tie does not count as "smaller".
    return float((1 + np.sum(stat >= obs - 1e-12)) / (1 + n_permutations))


def _wmean(v: np.ndarray, w: np.ndarray) -> float:
    s = w.sum()
    return float((v * w).sum() / s) if s > 0 else float("nan")


def order_effects(rows: Rows, instrument: Instrument, cfg: AnalysisConfig, *, seed: int,
                  use_probs: dict[str, bool] | None = None) -> pd.DataFrame:
    """Order effects per model, question and pair of conditions (see module docstring).

    Args:
        rows: encoded responses (:func:`simsurvey.analysis.frames.encode_responses`).
        instrument: the instrument (substantive codes per question).
        cfg: analysis config (n_permutations).
        seed: master seed.
        use_probs: model -> score probability vectors instead of answers (default: answers).

    Returns:
        DataFrame with :data:`ORDER_COLUMNS`.
    """
    out: list[dict] = []
    use_probs = use_probs or {}
    models = rows.model_names if rows.model is not None else []
    for mi, model in enumerate(models):
        probs = bool(use_probs.get(model, False))
        in_model = rows.model == mi
        for qi, q in enumerate(instrument.questions):
            k = len(q.substantive_codes)
            if q.kind not in ("single_choice", "ordinal") or k < 2:
                continue
            idx = np.flatnonzero(in_model & (rows.q == qi))
            if len(idx) == 0:
                continue
            ok, x = answer_vectors(rows, idx, k, probs)
            for persona_kind in (True, False):
                sel = (rows.unit[idx] >= 0) == persona_kind
                present = np.unique(rows.condition[idx[sel]])
                conds = sorted((rows.condition_names[c], int(c)) for c in present if c >= 0)
                for i, ca in enumerate(conds):
                    for cb in conds[i + 1:]:
                        rng = np.random.default_rng([seed, 5, mi, qi, len(out)])
                        out.append(_pair(rows, idx, ok, x, sel, ca, cb, probs, cfg, rng)
                                   | {"model": model, "question_id": q.id})
    df = pd.DataFrame(out, columns=ORDER_COLUMNS)
    for c in ("model", "question_id", "condition_a", "condition_b"):
        df[c] = df[c].astype("string")
    for c in ("js_divergence", "flip_rate", "primacy", "recency", "p_value"):
        df[c] = df[c].astype("float64")
    for c in ("n_a", "n_b"):
        df[c] = df[c].astype("int64")
    return df


def _pair(rows: Rows, idx: np.ndarray, ok: np.ndarray, x: np.ndarray, sel: np.ndarray,
          ca: tuple[str, int], cb: tuple[str, int],
          probs: bool, cfg: AnalysisConfig, rng: np.random.Generator) -> dict:
    cond = rows.condition[idx]
    (ca, code_a), (cb, code_b) = ca, cb
    in_a, in_b = sel & (cond == code_a), sel & (cond == code_b)
    # Distribution rows (ok) of the two conditions.
    xa_mask, xb_mask = in_a[ok], in_b[ok]
    w_ok = rows.w[idx][ok]
    pooled = xa_mask | xb_mask
    da = (w_ok[xa_mask, None] * x[xa_mask]).sum(0)
    db = (w_ok[xb_mask, None] * x[xb_mask]).sum(0)
    js = float(M.js_divergence(da, db))
    pos = None if probs else rows.pos[idx][ok][pooled]
    p = permutation_p_value(x[pooled], w_ok[pooled], xa_mask[pooled], cfg.n_permutations, rng, pos)
    # Flip rate: same persona and replicate, both answered (any valid code).
    answered = rows.valid[idx] & ~rows.refusal[idx] & (rows.code[idx] >= 0) & (rows.unit[idx] >= 0)
    rep_base = int(rows.replicate.max()) + 1 if len(rows.replicate) else 1
    key = rows.unit[idx] * rep_base + rows.replicate[idx]
    ka_i, kb_i = np.flatnonzero(in_a & answered), np.flatnonzero(in_b & answered)
    _, ia, ib = np.intersect1d(key[ka_i], key[kb_i], assume_unique=False, return_indices=True)
    if len(ia):
        ra, rb = ka_i[ia], kb_i[ib]
        flip = _wmean((rows.code[idx][ra] != rows.code[idx][rb]).astype(float), rows.w[idx][ra])
    else:
        flip = float("nan")
    # Primacy / recency over both conditions' rows.
    basis = rows.has_probs[idx] if probs and rows.has_probs is not None else \
        rows.valid[idx] & ~rows.refusal[idx]
    kd = rows.n_displayed[idx] if rows.n_displayed is not None else np.zeros(len(idx))
    pm = (in_a | in_b) & basis & np.isfinite(rows.first_share[idx]) & (kd > 0)
    wp = rows.w[idx][pm]
    expect = _wmean(1.0 / kd[pm], wp) if pm.any() else float("nan")
    primacy = _wmean(rows.first_share[idx][pm], wp) - expect
    recency = _wmean(rows.last_share[idx][pm], wp) - expect
    return {"condition_a": ca, "condition_b": cb, "js_divergence": js, "flip_rate": flip,
            "primacy": primacy, "recency": recency, "p_value": p,
            "n_a": int(xa_mask.sum()), "n_b": int(xb_mask.sum())}
