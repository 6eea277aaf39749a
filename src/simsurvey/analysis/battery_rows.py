"""Battery and multi_select rows of ``metrics.parquet``: encoded rows -> :mod:`.battery` -> rows.

Called by :func:`simsurvey.analysis.compare.analyze` once per model. Each battery item is already
scored as a question of its own there; this adds the battery-level rows (question_id = the
battery id: ``cronbach_alpha_*``, ``standardized_alpha_*``, ``inter_item_corr_mad``) and the
item-pair rows (question_id ``item1|item2``: ``inter_item_corr_silicon/human``), the scale-score
rows (question_id = the battery id, overall and per group: ``scale_*``, :mod:`.scale`), and for every
multi_select question with human answers the per-option rows (group_var ``option``:
``selection_rate_silicon/human/diff``). Definitions and calibration: :mod:`.battery`,
VALIDATION.md.

Units of a battery. Silicon: a persona's answers in one replicate (its conversation under
``design.context: sequential``) under one condition (a battery is dealt as one grid: under a
``within`` design each condition is its own administration of the battery, and averaging them
would shrink item noise and inflate alpha); only units with every item answered (valid,
substantive) enter, and the bootstrap resamples personas. Human: a respondent with
every item answered. Answers are the rows' ``answer_code`` positions (in probs mode too: a
persona's drawn or argmax answer, since alpha is a property of answers). Batteries whose items
are not ordinal or numeric (binned) are not scored: alpha needs an ordered scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simsurvey.analysis import battery as B
from simsurvey.analysis.frames import Rows
from simsurvey.analysis.numeric import numeric_block
from simsurvey.analysis.scale import SCALE_METRICS, required_items, scale_scores
from simsurvey.instruments.models import Instrument, Question

if TYPE_CHECKING:
    from simsurvey.analysis.compare import _Out
    from simsurvey.analysis.config import AnalysisConfig


def _matrix(rows: Rows, idx: np.ndarray, items: list[int], key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_units, k) mean answer positions per unit key and item (NaN where unanswered), and each
    unit's first row index."""
    keys, first, inv = np.unique(key, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    col = {qi: j for j, qi in enumerate(items)}
    j = np.array([col[q] for q in rows.q[idx]], dtype=np.int64)
    tot = np.zeros((len(keys), len(items)))
    cnt = np.zeros((len(keys), len(items)))
    np.add.at(tot, (inv, j), rows.pos[idx].astype(float))
    np.add.at(cnt, (inv, j), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / cnt, np.nan), idx[first]


def battery_metrics(out: _Out, diag: dict[str, Any], model: str, sil: Rows, persona_rows: np.ndarray,
                    hum: Rows, instrument: Instrument, cfg: AnalysisConfig, rng_of: Any) -> None:
    """Add the battery-level and item-pair rows of one model (see the module docstring)."""
    qindex = {q.id: i for i, q in enumerate(instrument.questions)}
    for bi, (bid, item_ids) in enumerate(instrument.batteries.items()):
        qs = [instrument.question(i) for i in item_ids]
        if qs[0].kind not in ("ordinal", "numeric") or len(qs) < 2:
            diag["notes"].append(f"battery '{bid}': {len(qs)} {qs[0].kind} items: internal consistency not scored")
            continue
        k_levels = len(qs[0].substantive_codes)
        items = [qindex[i] for i in item_ids]
        rev = [q.reverse_keyed for q in qs]
        s_idx = np.flatnonzero(persona_rows & np.isin(sil.q, items) & sil.valid & ~sil.refusal & (sil.pos >= 0))
        h_idx = np.flatnonzero(np.isin(hum.q, items) & (hum.pos >= 0) & (hum.w > 0))
        if len(s_idx) == 0 or len(h_idx) == 0:
            diag["notes"].append(f"model '{model}' battery '{bid}': no {'silicon' if len(s_idx) == 0 else 'human'} "
                                 "answers: internal consistency not scored")
            continue
        xs, fs = _matrix(sil, s_idx, items, _unit_key(sil, s_idx))
        xh, fh = _matrix(hum, h_idx, items, hum.unit[h_idx])
        ok_s, ok_h = np.isfinite(xs).all(1), np.isfinite(xh).all(1)
        if ok_s.sum() < 3 or ok_h.sum() < 3:
            diag["notes"].append(f"model '{model}' battery '{bid}': {int(ok_s.sum())} silicon and {int(ok_h.sum())} "
                                 "human complete batteries (need 3 each): not scored")
            continue
        c = B.compare_battery(B.reflect(xs[ok_s], rev, k_levels), B.reflect(xh[ok_h], rev, k_levels),
                              ws=sil.w[fs][ok_s], wh=hum.w[fh][ok_h], cs=sil.unit[fs][ok_s], ch=None,
                              b=cfg.bootstrap, rng=rng_of(bi))
        ns, nh = np.array([c.silicon.n_units]), np.array([c.human.n_units])
        neff = (np.array([float(c.silicon.n_clusters)]), np.array([float(c.human.n_clusters)]))
        for name, est in (("cronbach_alpha_silicon", c.alpha_silicon), ("cronbach_alpha_human", c.alpha_human),
                          ("cronbach_alpha_diff", c.alpha_diff), ("standardized_alpha_silicon", c.alpha_std_silicon),
                          ("standardized_alpha_human", c.alpha_std_human),
                          ("standardized_alpha_diff", c.alpha_std_diff), ("inter_item_corr_mad", c.corr_mad)):
            out.add(model, bid, "all", ["all"], name, np.atleast_1d(est.point), est.reps.reshape(-1, 1), ns, nh,
                    null=None if est.null is None else est.null.reshape(-1, 1), neff=neff)
        iu = np.triu_indices(len(items), 1)
        pairs = [f"{item_ids[i]}|{item_ids[j]}" for i, j in zip(*iu)]
        for name, side in (("inter_item_corr_silicon", c.silicon), ("inter_item_corr_human", c.human)):
            for p, (i, j) in zip(pairs, zip(*iu)):
                out.add(model, p, "all", ["all"], name, np.array([side.corr[i, j]]), side.corr_b[:, i, j][:, None],
                        ns, nh, neff=neff)


def _unit_key(sil: Rows, idx: np.ndarray) -> np.ndarray:
    """A silicon battery unit per row: persona × replicate × condition (a battery is dealt as one grid)."""
    parts = [sil.unit[idx]]
    for a in (sil.replicate, sil.condition):
        parts.append(a[idx] if a is not None else np.zeros(len(idx), np.int64))
    return np.unique(np.stack(parts, 1), axis=0, return_inverse=True)[1].reshape(-1)


def scale_metrics(out: _Out, diag: dict[str, Any], model: str, sil: Rows, persona_rows: np.ndarray, hum: Rows,
                  instrument: Instrument, cfg: AnalysisConfig, gvars: list[str], cats: dict[str, list[str]],
                  scode: dict[str, np.ndarray], hcode: dict[str, np.ndarray], seed: list[int]) -> None:
    """Add the ``scale_*`` rows of one model: each ordinal battery's scale scores, silicon vs human,
    overall and per group (``gvars`` with ``all``), by :func:`simsurvey.analysis.numeric.numeric_block`.

    Units, the scoring rule and the unscored: :mod:`simsurvey.analysis.scale`. How many units of
    each side were scored is a note in the diagnostics.
    """
    qindex = {q.id: i for i, q in enumerate(instrument.questions)}
    for bi, (bid, item_ids) in enumerate(instrument.batteries.items()):
        qs = [instrument.question(i) for i in item_ids]
        if qs[0].kind != "ordinal":
            continue  # a scale score needs ordered items (the alpha note already names the battery)
        k_levels = len(qs[0].substantive_codes)
        items = [qindex[i] for i in item_ids]
        rev = [q.reverse_keyed for q in qs]
        all_s = np.flatnonzero(persona_rows & np.isin(sil.q, items))
        all_h = np.flatnonzero(np.isin(hum.q, items) & (hum.w > 0))
        if len(all_s) == 0 or len(all_h) == 0:
            continue
        ok_s = sil.valid[all_s] & ~sil.refusal[all_s] & (sil.pos[all_s] >= 0)
        # Every unit of the battery gets a row of the matrix (NaN items): the unscored are counted.
        key = _unit_key(sil, all_s)
        n_units_s = int(key.max()) + 1
        xs, fs = _unit_matrix(sil, all_s, ok_s, items, key, n_units_s)
        hkey = np.unique(hum.unit[all_h], return_inverse=True)[1].reshape(-1)
        xh, fh = _unit_matrix(hum, all_h, hum.pos[all_h] >= 0, items, hkey, int(hkey.max()) + 1)
        ss = scale_scores(xs, rev, k_levels, cfg.scale_min_share)
        sh = scale_scores(xh, rev, k_levels, cfg.scale_min_share)
        gs, gh = np.isfinite(ss), np.isfinite(sh)
        need = required_items(len(items), cfg.scale_min_share)
        diag["notes"].append(f"model '{model}' battery '{bid}': scale scores for {int(gs.sum())} of {len(ss)} silicon "
                             f"and {int(gh.sum())} of {len(sh)} human units (≥ {need} of {len(items)} items answered)")
        if gs.sum() < 2 or gh.sum() < 2:
            continue
        fs, fh = fs[gs], fh[gh]
        numeric_block(out, model, bid, 1.0, float(k_levels),
                      s_value=ss[gs], s_unit=sil.unit[fs], s_w=sil.w[fs], s_groups={v: scode[v][fs] for v in gvars},
                      h_value=sh[gh], h_unit=hum.unit[fh], h_w=hum.w[fh], h_groups={v: hcode[v][fh] for v in gvars},
                      cats={v: cats[v] for v in gvars}, min_group_n=cfg.min_group_n, bootstrap=cfg.bootstrap,
                      null_draws=cfg.null_draws, seed=[*seed, bi], names=SCALE_METRICS, neff_by="mean")


def _unit_matrix(rows: Rows, idx: np.ndarray, answered: np.ndarray, items: list[int], key: np.ndarray,
                  n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_units, k) mean answer positions per unit and item over the ``answered`` rows (NaN where
    none), and each unit's first row index (every unit of ``key`` has a row, answered or not)."""
    _, first = np.unique(key, return_index=True)
    col = {qi: j for j, qi in enumerate(items)}
    j = np.array([col[q] for q in rows.q[idx]], dtype=np.int64)
    tot = np.zeros((n_units, len(items)))
    cnt = np.zeros((n_units, len(items)))
    a = np.asarray(answered, bool)
    np.add.at(tot, (key[a], j[a]), rows.pos[idx][a].astype(float))
    np.add.at(cnt, (key[a], j[a]), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / cnt, np.nan), idx[first]


def _none_code(q: Question) -> str | None:
    for ref in q.reference:
        if ref.none is not None:
            return ref.none
    return None


def _sets(rows: Rows, idx: np.ndarray, codes: tuple[str, ...], none: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Selection indicators over ``codes`` and validity of the rows' answer sets. The question's
    'none of these' option alone is the empty set; with other options it contradicts them: invalid."""
    answers = rows.answer[idx] if rows.answer is not None else np.full(len(idx), None, object)
    parsed = []
    for a in answers:
        if a is None:
            parsed.append(None)
            continue
        parts = set(str(a).split("|"))
        if none is not None and none in parts:
            parsed.append("" if parts == {none} else "\x00contradiction")
        else:
            parsed.append(str(a))
    return B.selection_matrix(parsed, codes)


def selection_metrics(out: _Out, diag: dict[str, Any], model: str, sil: Rows, persona_rows: np.ndarray,
                      hum: Rows, instrument: Instrument, cfg: AnalysisConfig, rng_of: Any) -> None:
    """Add the per-option selection-rate rows of one model's multi_select questions."""
    for qi, q in enumerate(instrument.questions):
        if q.kind != "multi_select":
            continue
        none = _none_code(q)
        codes = tuple(c for c in q.substantive_codes if c != none)
        s_idx = np.flatnonzero(persona_rows & (sil.q == qi) & sil.valid & ~sil.refusal)
        h_idx = np.flatnonzero((hum.q == qi) & (hum.w > 0))
        if len(s_idx) == 0 or len(h_idx) == 0 or not codes:
            continue
        sel_s, ok_s = _sets(sil, s_idx, codes, none)
        sel_h, ok_h = _sets(hum, h_idx, codes, none)
        bad = int((~ok_s).sum())
        if bad:
            diag["notes"].append(f"model '{model}' question '{q.id}': {bad} valid silicon answer sets name a "
                                 "non-substantive option or contradict 'none': left out of the selection rates")
        if ok_s.sum() == 0 or ok_h.sum() == 0:
            continue
        s_rows, h_rows = s_idx[ok_s], h_idx[ok_h]
        c = B.compare_selection(sel_s[ok_s], sel_h[ok_h], ws=sil.w[s_rows], wh=hum.w[h_rows], cs=sil.unit[s_rows],
                                ch=hum.unit[h_rows], b=cfg.bootstrap, rng=rng_of(qi))
        k = len(codes)
        ns, nh = np.full(k, c.n_silicon), np.full(k, c.n_human)
        neff = (np.full(k, float(c.n_clusters_silicon)), np.full(k, float(c.n_clusters_human)))
        for name, est in (("selection_rate_silicon", c.silicon), ("selection_rate_human", c.human),
                          ("selection_rate_diff", c.diff)):
            out.add(model, q.id, "option", list(codes), name, est.point, est.reps, ns, nh, null=est.null, neff=neff)
