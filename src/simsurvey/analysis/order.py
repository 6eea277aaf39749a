"""Instability: order and label effects between design conditions (``order_effects.parquet``).

Two kinds of rows (column ``level``), per model and question, computed separately for persona
conditions and for the ``no_persona`` control (conditions are only paired within their kind). The
conditions of a question in a survey experiment end with ``|arm:<id>``; they are paired only within
one arm (two arms word the question differently: their difference is the treatment effect, in
``treatment_effects.parquet``, not an order effect):

**Pair rows** (``level="pair"``: one per pair of conditions, ``condition_a`` < ``condition_b``):

- ``js_divergence``: JS (base 2) between the two conditions' weighted answer distributions
  (valid, non-refusal, substantive answers; with ``distribution`` probs, the rows' renormalized
  substantive probability vectors);
- ``flip_rate``: weighted share of (persona, replicate) pairs that answered both conditions
  with different codes (any valid code; within-persona design only, else NaN);
- ``retest_flip_rate``: the same share between two replicates of the *same* condition of the same
  persona (all pairs of replicates, within a and within b, pooled; each persona weighted by its
  number of replicate pairs): the flip rate response noise alone produces. NaN without
  replicates. Deterministic replicates (logprob elicitation) are copies, so it is 0 there;
- ``excess_flip_rate`` = ``flip_rate`` − ``retest_flip_rate``: ≈ 0 when the conditions do not
  matter (under no effect both compare two independent draws of one persona);
- ``p_value``: randomization test of the JS statistic that follows the design (below);
- ``p_adjusted``: Holm's step-down adjustment of ``p_value`` within the family of all pair rows of
  one model × question (persona and control pairs together; NaN p-values are not counted).
  Holm, not Benjamini–Hochberg: pairs share conditions, so their tests are dependent in ways no
  PRDS argument covers, and Holm controls the family-wise error rate under any dependence. The
  family is the question, the claim the report makes ("this question's answers move with its
  presentation, between these conditions"); a family of every question of a model would need
  more than (pairs × questions) / α permutations before any adjusted p could fall below α.
- ``permutation``: the scheme used: ``within`` (every unit paired), ``between`` (no pairs),
  ``within+between`` (both), ``none`` (no test);
- ``n_a``, ``n_b``: rows in the two distributions; ``n_units_a``, ``n_units_b``: independent units
  of the test (pairs count in both); ``note``: why a test is missing or what was collapsed.

``primacy`` and ``recency`` are NaN on pair rows (see the question rows).

The test. Units: a row, except that rows which are copies of one deterministic prompt (logprob
elicitation, or any row scored by its probability vector in probs mode: same persona or none,
same condition, same displayed order) are collapsed into ONE unit (their mean vector), so ten
replicates of a no-persona prompt are one observation, not ten. Units of a persona that answered
both conditions in the same replicate are *pairs*: their labels are swapped within the pair with
probability 1/2 (the within-persona randomization; drawn exactly as binomial counts over cells
of equal differences when there are few such cells, else as random sign flips). Every other unit
joins a pool whose labels are permuted across units, the units of one persona in one condition
moving together (a persona is the randomized unit of a between design; drawn as a multivariate
hypergeometric over cells of equal vectors when there are few, else as row permutations).
p = (1 + #{JS_perm ≥ JS_obs}) / (1 + n_permutations). With fewer than 2 units in a condition the
design has no randomization to test against: p is NaN (never 1/(1+n_permutations)).

**Question rows** (``level="question"``, ``condition_a = condition_b = "*"`` for persona conditions,
``"no_persona|*"`` for the control; the other statistics NaN, ``n_a = n_b`` = rows used):

- ``primacy``: for each substantive option o, share(o | o displayed first) − share(o | o displayed
  in a middle position — neither first nor last), over all rows of the question's conditions (all
  randomized orders pooled); "share" is the weighted mean of the row's answer vector entry for o
  (one-hot answers, or the probability vector with ``distribution`` probs — never the other);
  positions count substantive options only (a trailing "don't know" is never "last"). The
  contrasts are averaged with equal weight over the options for which both shares are observed.
  A respondent whose answer does not depend on the display position scores 0 in expectation; one
  drawn to the first option scores > 0.
- ``recency``: the same with "displayed last" against the same middle positions. The middle is the
  reference for both, so a pure primacy bias leaves recency at 0 (a reference of "any other
  position" would include the first one and push recency below 0 by about primacy / (K − 1)).
- When no option is shown both in a middle position and at an end — always for K = 2, and for
  every design of only ``as_is``/``reversed`` orders (every ordinal question) — the data identify only the
  first-versus-last contrast: ``primacy`` is then share(o | first) − share(o | last) (positive:
  drawn to the top, negative: to the bottom), ``recency`` is NaN (it would be −primacy by the
  design, not by the respondent) and ``note`` says so.

Contract change (schema after 1): question rows and the columns ``level``, ``retest_flip_rate``,
``excess_flip_rate``, ``p_adjusted``, ``permutation``, ``n_units_a``, ``n_units_b``, ``note`` are new;
``primacy``/``recency`` moved from pair rows (where they were a share minus 1/K, biased for any
respondent with a non-uniform answer distribution) to question rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsurvey.analysis import metrics as M
from simsurvey.analysis.config import AnalysisConfig
from simsurvey.analysis.frames import Rows, answer_vectors
from simsurvey.instruments.models import Instrument

#: Above this many distinct cells the exact count draws cost more than permuting rows.
_MAX_CELLS = 256
#: Elements per block of the row-permutation / sign-flip paths (cache-sized, bounded memory).
_BLOCK = 1_000_000

ORDER_COLUMNS = ["model", "question_id", "condition_a", "condition_b", "js_divergence", "flip_rate",
                 "primacy", "recency", "p_value", "n_a", "n_b", "level", "retest_flip_rate",
                 "excess_flip_rate", "p_adjusted", "permutation", "n_units_a", "n_units_b", "note"]
_FLOATS = ("js_divergence", "flip_rate", "primacy", "recency", "p_value", "retest_flip_rate",
           "excess_flip_rate", "p_adjusted")
_STRINGS = ("model", "question_id", "condition_a", "condition_b", "level", "permutation", "note")
_INTS = ("n_a", "n_b", "n_units_a", "n_units_b")


#: Conditions of a question in a survey experiment end with this tag and the arm's id.
ARM_TAG = "|arm:"


def arm_of(condition_id: str) -> str | None:
    """The experiment arm a condition id belongs to (its ``|arm:<id>`` suffix), or None."""
    head, sep, arm = condition_id.rpartition(ARM_TAG)
    return arm if sep else None


def holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaN entries stay NaN and are not in the family.

    adj_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)) over the m finite p-values sorted ascending.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m:
        v = p[ok]
        order = np.argsort(v, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * v[order]))
        res = np.empty(m)
        res[order] = adj
        out[ok] = res
    return out


def _row_ids(v: np.ndarray) -> np.ndarray:
    """Dense ids of the distinct rows of a float matrix (per-column codes combined: 1-d sorts only)."""
    return _group_ids(*(np.unique(v[:, j], return_inverse=True)[1].reshape(-1) for j in range(v.shape[1])))


def _cells(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct rows of ``v`` and their counts, or None when there are more than _MAX_CELLS."""
    # A look at the first rows settles most large cases without coding them all.
    if len(v) > 4 * _MAX_CELLS and _row_ids(v[:4 * _MAX_CELLS]).max() >= _MAX_CELLS:
        return None
    ids = _row_ids(v)
    n = int(ids.max()) + 1
    if n > _MAX_CELLS:
        return None
    first = np.full(n, len(ids))
    np.minimum.at(first, ids, np.arange(len(ids)))
    return v[first], np.bincount(ids, minlength=n)


def _label_sums(s: np.ndarray, n_a: int, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """(n_perm, K) sums of ``s`` over ``n_a`` of its rows drawn without replacement."""
    found = _cells(s)
    if found is not None:
        # Rows with equal vectors are exchangeable: draw how many of each cell land in a.
        cells, counts = found
        return rng.multivariate_hypergeometric(counts, n_a, size=n_perm) @ cells
    is_a = np.zeros(len(s), dtype=bool)
    is_a[:n_a] = True
    chunk = max(1, _BLOCK // len(s))
    parts = []
    for start in range(0, n_perm, chunk):
        labels = rng.permuted(np.tile(is_a, (min(chunk, n_perm - start), 1)), axis=1)
        parts.append(labels.astype(np.float64) @ s)
    return np.concatenate(parts)


def _swap_sums(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """(n_perm, K) sums of the rows of ``d`` over a random subset, each row in with probability ½."""
    d = d[np.any(d != 0, axis=1)]  # a pair with equal vectors moves nothing when swapped
    if len(d) == 0:
        return np.zeros((n_perm, d.shape[1]))
    found = _cells(d)
    if found is not None:
        cells, counts = found
        return rng.binomial(counts, 0.5, size=(n_perm, len(cells))) @ cells
    chunk = max(1, _BLOCK // len(d))
    parts = []
    for start in range(0, n_perm, chunk):
        c = min(chunk, n_perm - start)
        # One random bit per pair: random bytes unpacked (10x cheaper than a uniform per pair).
        bits = np.unpackbits(np.frombuffer(rng.bytes(-(-c * len(d) // 8)), dtype=np.uint8))
        parts.append(bits[:c * len(d)].reshape(c, len(d)) @ d)
    return np.concatenate(parts)


def design_p_value(pair_a: np.ndarray, pair_b: np.ndarray, single: np.ndarray, single_is_a: np.ndarray,
                   n_permutations: int, rng: np.random.Generator) -> float:
    """Randomization p-value of JS(D_a, D_b) under the design's exchangeability.

    Args:
        pair_a: (P, K) weighted answer vectors (weight × vector) of paired units in condition a.
        pair_b: (P, K) the same units' partners in condition b: each pair's labels are swapped
            with probability ½.
        single: (U, K) weighted vectors (cluster sums) of unpaired units: labels permuted across them.
        single_is_a: (U,) bool, the unpaired unit is in condition a.
        n_permutations: number of randomizations drawn.
        rng: generator (seeded by the caller).

    Returns:
        (1 + #{JS_perm ≥ JS_obs}) / (1 + n_permutations); NaN when n_permutations is 0 or a
        condition has fewer than 2 units.
    """
    n_pairs, n_single_a = len(pair_a), int(single_is_a.sum())
    if (n_permutations <= 0 or n_pairs + n_single_a < 2
            or n_pairs + len(single) - n_single_a < 2):
        return float("nan")
    k = pair_a.shape[1] if n_pairs else single.shape[1]
    total = pair_a.sum(0) + pair_b.sum(0) + single.sum(0)
    obs_a = pair_a.sum(0) + single[single_is_a].sum(0)
    obs = float(M.js_divergence(obs_a, total - obs_a))
    a = np.zeros((n_permutations, k)) + pair_a.sum(0)
    if n_pairs:
        a -= _swap_sums(pair_a - pair_b, n_permutations, rng)
    if 0 < n_single_a < len(single):
        a += _label_sums(single, n_single_a, n_permutations, rng)
    else:
        a += single[single_is_a].sum(0)
    stat = M.js_divergence(a, total[None] - a)
    # A tiny tolerance so float noise in a tie does not count as "smaller".
    return float((1 + np.sum(stat >= obs - 1e-12)) / (1 + n_permutations))


def permutation_p_value(x: np.ndarray, w: np.ndarray, is_a: np.ndarray, n_permutations: int,
                        rng: np.random.Generator, pos: np.ndarray | None = None) -> float:
    """Permutation p-value of JS(dist_a, dist_b) with every row an exchangeable unit (between design).

    Args:
        x: (n, K) answer vectors of the pooled rows (one-hot or probabilities).
        w: (n,) row weights.
        is_a: (n,) bool, the row's observed label is condition a.
        n_permutations: number of label permutations.
        rng: generator (seeded by the caller).
        pos: unused (kept for callers of the earlier signature): rows with equal weighted vectors
            are found from ``x`` and ``w`` themselves, which enables the exact hypergeometric draw.

    Returns:
        (1 + #{JS_perm ≥ JS_obs}) / (1 + n_permutations), or NaN when n_permutations is 0 or a
        side has fewer than 2 rows.
    """
    del pos
    empty = np.zeros((0, x.shape[1]))
    return design_p_value(empty, empty, w[:, None] * x, np.asarray(is_a, dtype=bool), n_permutations, rng)


def position_contrasts(x: np.ndarray, w: np.ndarray, rank: np.ndarray) -> tuple[float, float, bool]:
    """Primacy and recency contrasts (module docstring) of answer vectors and their display ranks.

    Args:
        x: (n, K) answer vectors (one-hot or renormalized probabilities) over substantive options.
        w: (n,) row weights.
        rank: (n, K) display rank of each option among the row's displayed substantive options
            (0 = first), -1 when not displayed.

    Returns:
        (primacy, recency, middle): ``middle`` tells whether the reference is the middle positions
        (True) or, when no option is shown in one, the last position (primacy is then the
        first-vs-last contrast and recency NaN). NaN where a contrast is not observed at all.
    """
    shown = rank >= 0
    kd = shown.sum(1, keepdims=True)
    first = shown & (rank == 0)
    last = shown & (rank == kd - 1) & (kd >= 2)
    middle = shown & ~first & ~last
    wx = w[:, None] * x
    wc = w[:, None]

    def contrast(at: np.ndarray, ref: np.ndarray) -> float:
        n_at, n_ref = (wc * at).sum(0), (wc * ref).sum(0)
        ok = (n_at > 0) & (n_ref > 0)
        if not ok.any():
            return float("nan")
        return float(((wx * at).sum(0)[ok] / n_at[ok] - (wx * ref).sum(0)[ok] / n_ref[ok]).mean())

    # The middle is the reference when some option is seen both there and at an end.
    seen = middle.any(0)
    if (seen & (first.any(0) | last.any(0))).any():
        return contrast(first, middle), contrast(last, middle), True
    return contrast(first, last), float("nan"), False


def _wmean(v: np.ndarray, w: np.ndarray) -> float:
    s = w.sum()
    return float((v * w).sum() / s) if s > 0 else float("nan")


def _group_ids(*cols: np.ndarray) -> np.ndarray:
    """Dense ids (0..G-1) of the distinct tuples of the integer columns ``cols``."""
    key = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        if len(c) == 0:
            return key
        lo = int(c.min())
        key = _dense(key * (int(c.max()) - lo + 1) + (c.astype(np.int64) - lo))
    return key


def _dense(key: np.ndarray) -> np.ndarray:
    """Non-negative integer keys -> dense ids (by a lookup table when the keys are small: no sort)."""
    top = int(key.max()) + 1
    if top > 8 * len(key) + 1024:
        return np.unique(key, return_inverse=True)[1].reshape(-1)
    seen = np.zeros(top, dtype=bool)
    seen[key] = True
    return (np.cumsum(seen) - 1)[key]


def order_effects(rows: Rows, instrument: Instrument, cfg: AnalysisConfig, *, seed: int,
                  use_probs: dict[str, bool] | None = None) -> pd.DataFrame:
    """Order effects per model and question: pair rows and question rows (module docstring).

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
    kmax = rows.rank.shape[1] if rows.rank is not None else 0
    for mi, model in enumerate(models):
        probs = bool(use_probs.get(model, False)) and rows.x is not None
        in_model = rows.model == mi
        for qi, q in enumerate(instrument.questions):
            k = len(q.substantive_codes)
            if q.kind not in ("single_choice", "ordinal") or k < 2:
                continue
            idx = np.flatnonzero(in_model & (rows.q == qi))
            if len(idx) == 0:
                continue
            ok, x = answer_vectors(rows, idx, k, probs)
            sub = _Subset(rows, idx, ok, x, k, probs, kmax)
            first_row = len(out)
            for persona_kind in (True, False):
                sel = (rows.unit[idx] >= 0) == persona_kind
                present = np.unique(rows.condition[idx[sel]])
                conds = sorted((rows.condition_names[c], int(c)) for c in present if c >= 0)
                for i, ca in enumerate(conds):
                    for cb in conds[i + 1:]:
                        if arm_of(ca[0]) != arm_of(cb[0]):
                            continue  # another arm words the question differently: a treatment, not an order effect
                        rng = np.random.default_rng([seed, 5, mi, qi, len(out)])
                        out.append(_pair(sub, ca, cb, cfg.n_permutations, rng)
                                   | {"model": model, "question_id": q.id})
                if conds:
                    out.append(_question_row(sub, sel, "*" if persona_kind else "no_persona|*")
                               | {"model": model, "question_id": q.id})
            family = [r for r in out[first_row:] if r["level"] == "pair"]
            for r, adj in zip(family, holm(np.array([r["p_value"] for r in family], dtype=float))):
                r["p_adjusted"] = float(adj)
    df = pd.DataFrame(out, columns=ORDER_COLUMNS)
    for c in _STRINGS:
        df[c] = df[c].astype("string")
    for c in _FLOATS:
        df[c] = df[c].astype("float64")
    for c in _INTS:
        df[c] = df[c].astype("int64")
    return df


class _Subset:
    """One model × question's rows, as the arrays the pair and question rows need."""

    def __init__(self, rows: Rows, idx: np.ndarray, ok: np.ndarray, x: np.ndarray, k: int, probs: bool,
                 kmax: int) -> None:
        self.ok, self.x = ok, x
        self.cond = rows.condition[idx]
        self.unit = rows.unit[idx]
        self.rep = rows.replicate[idx]
        self.w = rows.w[idx]
        self.rank = rows.rank[idx, :k] if kmax >= k else np.full((len(idx), k), -1, np.int8)
        # A probability vector is a deterministic function of the prompt; so is a logprob argmax.
        det = np.ones(len(idx), bool) if probs else (
            rows.deterministic[idx] if rows.deterministic is not None else np.zeros(len(idx), bool))
        self.det = det
        # Answered rows for the flip rates: any valid code (don't know included), persona rows.
        self.code = rows.code[idx]
        self.answered = rows.valid[idx] & ~rows.refusal[idx] & (self.code >= 0) & (self.unit >= 0)


def _order_code(rank: np.ndarray) -> np.ndarray:
    """An id of each row's displayed order (its rank vector)."""
    k = rank.shape[1]
    if (k + 1) ** k < 2**62:
        return ((rank.astype(np.int64) + 1) * (k + 1) ** np.arange(k)).sum(1)
    return np.unique(rank, axis=0, return_inverse=True)[1].reshape(-1)


def _units(s: _Subset, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Collapse the distribution rows ``m`` (mask over ok rows) into test units.

    Returns (x, w, unit, cond, rep) per test unit and the number of rows collapsed away.
    """
    x, w = s.x[m], s.w[s.ok][m]
    unit, cond, rep = s.unit[s.ok][m], s.cond[s.ok][m], s.rep[s.ok][m]
    det = s.det[s.ok][m]
    if not det.any():
        return x, w, unit, cond, rep, 0
    order = _order_code(s.rank[s.ok][m])
    gid = _group_ids(unit, cond, order, np.where(det, -1, rep))
    n_u = int(gid.max()) + 1
    cnt = np.bincount(gid, minlength=n_u)
    ux = np.zeros((n_u, x.shape[1]))
    np.add.at(ux, gid, x)
    ux /= cnt[:, None]
    first = np.unique(gid, return_index=True)[1]  # first row of each unit (ids are 0..n_u-1)
    urep = np.full(n_u, np.iinfo(np.int64).max)
    np.minimum.at(urep, gid, rep)
    return ux, w[first], unit[first], cond[first], urep, len(gid) - n_u


def _pair(s: _Subset, ca: tuple[str, int], cb: tuple[str, int], n_permutations: int,
          rng: np.random.Generator) -> dict:
    (ca, code_a), (cb, code_b) = ca, cb
    cond_ok = s.cond[s.ok]
    xa_mask, xb_mask = cond_ok == code_a, cond_ok == code_b
    w_ok = s.w[s.ok]
    da = (w_ok[xa_mask, None] * s.x[xa_mask]).sum(0)
    db = (w_ok[xb_mask, None] * s.x[xb_mask]).sum(0)
    js = float(M.js_divergence(da, db))

    ux, uw, unit, cond, rep, collapsed = _units(s, xa_mask | xb_mask)
    wx = uw[:, None] * ux
    in_a = cond == code_a
    key = unit * (int(rep.max()) + 2 if len(rep) else 1) + rep
    persona = unit >= 0
    ia_all, ib_all = np.flatnonzero(in_a & persona), np.flatnonzero(~in_a & persona)
    _, ia, ib = np.intersect1d(key[ia_all], key[ib_all], return_indices=True)
    ra, rb = ia_all[ia], ib_all[ib]
    paired = np.zeros(len(unit), dtype=bool)
    paired[ra] = paired[rb] = True
    # Unpaired units: a persona's units in one condition move together (its cluster).
    rest = np.flatnonzero(~paired)
    cluster = _group_ids(np.where(persona[rest], unit[rest], -1 - np.arange(len(rest))), cond[rest]) \
        if len(rest) else np.zeros(0, np.int64)
    n_cl = int(cluster.max()) + 1 if len(rest) else 0
    single = np.zeros((n_cl, ux.shape[1]))
    np.add.at(single, cluster, wx[rest])
    single_is_a = np.zeros(n_cl, dtype=bool)
    single_is_a[cluster] = in_a[rest]
    p = design_p_value(wx[ra], wx[rb], single, single_is_a, n_permutations, rng)
    n_units_a, n_units_b = len(ra) + int(single_is_a.sum()), len(rb) + int((~single_is_a).sum())
    notes = []
    if collapsed:
        notes.append(f"{collapsed + len(unit)} rows of deterministic prompts are {len(unit)} units")
    if min(n_units_a, n_units_b) < 2:
        notes.append("fewer than 2 independent units in a condition: no test")
    scheme = "none" if not np.isfinite(p) else (
        "within" if n_cl == 0 else "between" if len(ra) == 0 else "within+between")

    flip, retest = _flips(s, code_a, code_b)
    return {"level": "pair", "condition_a": ca, "condition_b": cb, "js_divergence": js,
            "flip_rate": flip, "retest_flip_rate": retest, "excess_flip_rate": flip - retest,
            "primacy": float("nan"), "recency": float("nan"), "p_value": p,
            "p_adjusted": float("nan"), "permutation": scheme,
            "n_a": int(xa_mask.sum()), "n_b": int(xb_mask.sum()),
            "n_units_a": n_units_a, "n_units_b": n_units_b, "note": "; ".join(notes) or None}


def _flips(s: _Subset, code_a: int, code_b: int) -> tuple[float, float]:
    """Flip rate across the two conditions and the same-condition retest flip rate."""
    rep_base = int(s.rep.max()) + 1 if len(s.rep) else 1
    key = s.unit * rep_base + s.rep
    ka_i = np.flatnonzero((s.cond == code_a) & s.answered)
    kb_i = np.flatnonzero((s.cond == code_b) & s.answered)
    _, ia, ib = np.intersect1d(key[ka_i], key[kb_i], assume_unique=False, return_indices=True)
    if len(ia):
        ra, rb = ka_i[ia], kb_i[ib]
        flip = _wmean((s.code[ra] != s.code[rb]).astype(float), s.w[ra])
    else:
        flip = float("nan")
    # Retest: within each (persona, condition), pairs of replicates that disagree, counted from
    # the code counts: disagreeing pairs = (m² − Σ n_c²) / 2 of m(m − 1) / 2 pairs.
    r = np.concatenate([ka_i, kb_i])
    if len(r) == 0:
        return flip, float("nan")
    g = _group_ids(s.unit[r], s.cond[r])
    n_g = int(g.max()) + 1
    m = np.bincount(g, minlength=n_g).astype(np.float64)
    cell = _group_ids(g, s.code[r])
    n_c = np.bincount(cell).astype(np.float64)
    g_of_cell = np.zeros(len(n_c), dtype=np.int64)
    g_of_cell[cell] = g
    sq = np.bincount(g_of_cell, weights=n_c**2, minlength=n_g)
    wg = np.zeros(n_g)
    wg[g] = s.w[r]
    pairs = m * (m - 1) / 2
    if pairs.sum() == 0:
        return flip, float("nan")
    return flip, float((wg * (m**2 - sq) / 2).sum() / (wg * pairs).sum())


def _question_row(s: _Subset, sel: np.ndarray, label: str) -> dict:
    m = sel[s.ok]
    primacy, recency, middle = position_contrasts(s.x[m], s.w[s.ok][m], s.rank[s.ok][m])
    n = int(m.sum())
    ux, _, unit, *_ = _units(s, m)
    # Independent units: personas, or (control) distinct prompts of deterministic copies.
    n_units = (int(_group_ids(unit).max()) + 1 if len(unit) else 0) if label == "*" else len(ux)
    nan = float("nan")
    return {"level": "question", "condition_a": label, "condition_b": label, "js_divergence": nan,
            "flip_rate": nan, "retest_flip_rate": nan, "excess_flip_rate": nan, "primacy": primacy,
            "recency": recency, "p_value": nan, "p_adjusted": nan, "permutation": "none",
            "n_a": n, "n_b": n, "n_units_a": n_units, "n_units_b": n_units,
            "note": None if middle or not np.isfinite(primacy) else
            "no option shown both in a middle position and first or last: primacy is first vs last, "
            "recency not identified"}
