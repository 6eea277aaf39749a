"""Grouped silicon-vs-human comparisons: :func:`analyze` and its result.

For every model in the responses, every question and every group (``all`` plus each usable
demographic variable's values) the silicon and human weighted answer tables are built once
with ``np.bincount``; point estimates and all B bootstrap replicates are then scored together by
the vectorized metric functions (arrays of shape (1+B, G, K)).

Silicon distributions pool all persona rows of a model (every condition and replicate);
``no_persona`` rows only enter ``no_persona_js`` and the order effects. Distributions use valid,
non-refusal answers on substantive options only.

Bootstrap (see :mod:`simsurvey.analysis.bootstrap`): human rows and single-row-per-persona
silicon answers by the count-based multinomial bootstrap; silicon answers of personas that
answered a question several times (conditions, replicates), and all logprob distributions, by
resampling personas (cluster bootstrap). The rates (invalid, refusal, nonsubstantive) and
``no_persona_js`` resample rows (for logprob distributions: the rows' probability vectors, not
multinomial counts around their pooled mass).

Noise floor (``noise_floor`` column of the distance metrics): the same metric between two random
halves of the *human* rows of the same group, averaged over ``noise_floor_splits`` seeded splits.
It is the distance two human samples of half the size already show: a silicon distance near it
is as good as the human data can tell. The subgroup-vs-whole human reading aid is the separate
metric ``group_vs_all_js_human``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.analysis import metrics as M
from simsurvey.analysis.bootstrap import (answer_patterns, binomial_rates, cluster_tables, kish_n,
                                          multinomial_tables, percentile_ci, split_half_tables,
                                          unit_tables)
from simsurvey.analysis.config import AnalysisConfig
from simsurvey.analysis.frames import (MISSING, NONSUBST, Rows, answer_vectors, encode_reference,
                                       encode_responses, onehot)
from simsurvey.analysis.order import order_effects
from simsurvey.instruments.models import Instrument, Question

METRIC_COLUMNS = ["model", "question_id", "group_var", "group_value", "metric", "value", "ci_low",
                  "ci_high", "noise_floor", "n_silicon", "n_human"]


@dataclass(frozen=True)
class AnalysisResult:
    """What the analysis stage produces.

    Attributes:
        metrics: one row per model × question × group × metric (``metrics.parquet`` contract).
        order_effects: one row per model × question × pair of conditions (``order_effects.parquet``).
        diagnostics: JSON-able notes: distribution mode per model, skipped variables/groups, counts.
    """

    metrics: pd.DataFrame
    order_effects: pd.DataFrame
    diagnostics: dict[str, Any]


def question_kind(q: Question) -> M.Kind | None:
    """nominal for single_choice, ordinal for ordinal, None (not scored) for multi_select."""
    return {"single_choice": "nominal", "ordinal": "ordinal"}.get(q.kind)  # type: ignore[return-value]


class _Out:
    """Column-wise collector of metric rows (arrays appended, concatenated once)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {c: [] for c in METRIC_COLUMNS}

    def add(self, model: str, qid: str, var: str, values: np.ndarray | list[str], metric: str,
            point: np.ndarray, reps: np.ndarray, ci: float, floor: np.ndarray | None,
            ns: np.ndarray, nh: np.ndarray) -> None:
        point = np.atleast_1d(np.asarray(point, float))
        m = len(point)
        lo, hi = percentile_ci(reps.reshape(reps.shape[0], m), ci)
        for col, v in (("model", [model] * m), ("question_id", [qid] * m), ("group_var", [var] * m),
                       ("group_value", list(values)), ("metric", [metric] * m), ("value", point),
                       ("ci_low", lo), ("ci_high", hi),
                       ("noise_floor", np.full(m, np.nan) if floor is None else floor),
                       ("n_silicon", np.broadcast_to(ns, m)), ("n_human", np.broadcast_to(nh, m))):
            self.cols[col].append(np.asarray(v))

    def frame(self) -> pd.DataFrame:
        data = {c: (np.concatenate(v) if v else np.array([])) for c, v in self.cols.items()}
        df = pd.DataFrame(data)
        for c in ("model", "question_id", "group_var", "group_value", "metric"):
            df[c] = df[c].astype("string")
        for c in ("value", "ci_low", "ci_high", "noise_floor"):
            df[c] = df[c].astype("float64")
        for c in ("n_silicon", "n_human"):
            df[c] = df[c].astype("int64")
        return df


def _table(g: np.ndarray, x: np.ndarray, w: np.ndarray, n_groups: int,
           pos: np.ndarray | None = None) -> np.ndarray:
    """(G, K) weighted table Σ w x by group code g (rows with g < 0 dropped).

    With ``pos`` (x is one-hot at pos) one bincount over (group, answer) cells gives the same sums
    (the skipped terms are exact zeros) in one pass instead of K.
    """
    m = g >= 0
    k = x.shape[1]
    if pos is not None:
        return np.bincount(g[m] * k + pos[m], weights=w[m], minlength=n_groups * k).reshape(n_groups, k)
    t = np.zeros((n_groups, k))
    for j in range(k):
        t[:, j] = np.bincount(g[m], weights=w[m] * x[m, j], minlength=n_groups)
    return t


def _sums(g: np.ndarray, w: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = g >= 0
    return (np.bincount(g[m], minlength=n_groups), np.bincount(g[m], weights=w[m], minlength=n_groups),
            np.bincount(g[m], weights=w[m] ** 2, minlength=n_groups))


def analyze(responses: pd.DataFrame, reference: pd.DataFrame, personas: pd.DataFrame,
            instrument: Instrument, cfg: AnalysisConfig, *, seed: int) -> AnalysisResult:
    """Compare silicon responses with human reference answers, per model, question and group.

    Args:
        responses: rows of the ``responses.parquet`` contract (several models allowed).
        reference: rows of the ``reference.parquet`` contract.
        personas: rows of the ``personas.parquet`` contract (weights and demographics).
        instrument: the administered instrument (canonical codes, kinds, non-substantive flags).
        cfg: the ``analysis:`` config section.
        seed: master seed; every bootstrap, split and permutation derives from it.

    Returns:
        AnalysisResult with the metrics and order-effects frames and diagnostics.

    Raises:
        UserError: a frame lacks a required column, persona ids do not match, or
            ``cfg.reference_source`` is absent from the reference data.
    """
    sil = encode_responses(responses, personas, instrument, list(cfg.group_vars))
    hum, sources = encode_reference(reference, instrument, list(cfg.group_vars), cfg.reference_source)
    diag: dict[str, Any] = {"notes": list(sil.notes), "reference_sources": sources, "models": {},
                            "skipped_groups": [], "group_vars": []}
    gvars: list[str] = []
    for var in cfg.group_vars:
        if var not in sil.groups or var not in hum.groups:
            side = "personas" if var not in sil.groups else "reference"
            diag["notes"].append(f"group_var '{var}': absent or all null in {side}: skipped")
        else:
            gvars.append(var)
    diag["group_vars"] = gvars
    # Shared category codes per variable so silicon and human tables line up.
    cats: dict[str, list[str]] = {"all": ["all"]}
    scode: dict[str, np.ndarray] = {"all": np.zeros(len(sil.q), np.int64)}
    hcode: dict[str, np.ndarray] = {"all": np.zeros(len(hum.q), np.int64)}
    for var in gvars:
        cats[var] = sorted(set(sil.group_cats[var]) | set(hum.group_cats[var]))
        scode[var] = _recode(sil.groups[var], sil.group_cats[var], cats[var])
        hcode[var] = _recode(hum.groups[var], hum.group_cats[var], cats[var])

    out = _Out()
    floors: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    models = sil.model_names
    h_by_q = {qi: np.flatnonzero(hum.q == qi) for qi in range(len(instrument.questions))}
    for mi, model in enumerate(models):
        in_model = sil.model == mi
        persona_rows = in_model & (sil.unit >= 0)
        probs_ok = sil.has_probs is not None and bool(sil.has_probs[persona_rows].all()) and persona_rows.any()
        use_probs = cfg.distribution == "probs" or (cfg.distribution == "auto" and probs_ok)
        if use_probs and sil.x is None:
            diag["notes"].append(f"model '{model}': distribution=probs but no probs column: using answers")
            use_probs = False
        diag["models"][model] = {"distribution": "probs" if use_probs else "answers",
                                 "rows": int(in_model.sum()), "persona_rows": int(persona_rows.sum())}
        persona_dists: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for qi, q in enumerate(instrument.questions):
            kind = question_kind(q)
            k = len(q.substantive_codes)
            if kind is None or k < 2:
                if mi == 0:
                    diag["notes"].append(f"question '{q.id}': kind {q.kind} with {k} substantive options: not scored")
                continue
            s_idx = np.flatnonzero(persona_rows & (sil.q == qi))
            h_idx = h_by_q[qi]
            if len(s_idx) == 0 or len(h_idx) == 0:
                diag["notes"].append(f"model '{model}' question '{q.id}': no "
                                     f"{'silicon' if len(s_idx) == 0 else 'human'} rows: not scored")
                continue
            s_ok, s_x = answer_vectors(sil, s_idx, k, use_probs)
            h_rows = h_idx[(hum.pos[h_idx] >= 0) & (hum.w[h_idx] > 0)]
            h_x = onehot(hum.pos[h_rows], k)
            s_rows = s_idx[s_ok]
            persona_dists[qi] = (sil.unit[s_rows], s_x)
            units = _units(sil, s_rows, s_x, k, use_probs) if cfg.bootstrap > 0 else None
            for vi, var in enumerate(["all", *gvars]):
                rng = np.random.default_rng([seed, 1, mi, qi, vi])
                key = (qi, var)
                if key not in floors:
                    floors[key] = _noise_floor(hcode[var][h_rows], hum.pos[h_rows], hum.w[h_rows],
                                               len(cats[var]), k, kind, cfg,
                                               np.random.default_rng([seed, 2, qi, vi]))
                _group_block(out, diag, model, q, kind, var, cats[var], scode[var], hcode[var], sil, hum,
                             s_idx, s_rows, s_x, h_rows, h_x, use_probs, cfg, rng, floors[key], units)
            _no_persona(out, model, q, sil, in_model, qi, k, use_probs, s_rows, s_x, cfg,
                        np.random.default_rng([seed, 3, mi, qi]))
        _pattern(out, model, instrument, persona_dists, sil, hum, cfg, np.random.default_rng([seed, 4, mi]))
    modes = {m: d["distribution"] == "probs" for m, d in diag["models"].items()}
    oe = order_effects(sil, instrument, cfg, seed=seed, use_probs=modes)
    return AnalysisResult(metrics=out.frame(), order_effects=oe, diagnostics=diag)


def _recode(codes: np.ndarray, own: list[str], shared: list[str]) -> np.ndarray:
    """Codes into one side's categories -> codes into the shared categories (-1 stays -1)."""
    lut = np.array([shared.index(c) for c in own] + [-1], dtype=np.int64)
    return lut[codes]


def _noise_floor(g: np.ndarray, pos: np.ndarray, w: np.ndarray, n_groups: int, k: int, kind: M.Kind,
                 cfg: AnalysisConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Split-half human distance per group (G,) for every distance metric of this kind."""
    m = g >= 0
    a, b = split_half_tables(rng, g[m], pos[m], w[m], n_groups, k, cfg.noise_floor_splits)
    out = {}
    for name in M.DISTANCES:
        if kind in M.METRICS[name].applies_to:
            with np.errstate(invalid="ignore"):
                vals = M.distance(name, a, b, eps=cfg.kl_smoothing)
            out[name] = np.nanmean(np.where(np.isfinite(vals), vals, np.nan), axis=0) \
                if np.isfinite(vals).any() else np.full(n_groups, np.nan)
    return out


@dataclass(frozen=True)
class _Units:
    """A question's silicon rows summed per persona, for the cluster bootstrap (built once per
    question, shared by all grouping variables)."""

    first: np.ndarray  #: index into s_rows of each persona's first row
    w: np.ndarray  #: persona weight
    mass: np.ndarray | None  #: (n_units, K) weighted probability mass (probs mode)
    counts: np.ndarray | None  #: (n_units, K) answer counts (answers mode)
    patterns: tuple[np.ndarray, np.ndarray] | None  #: answer_patterns(counts)


def _units(sil: Rows, s_rows: np.ndarray, s_x: np.ndarray, k: int, use_probs: bool) -> _Units | None:
    """Per-persona sums when personas are resampled: always with probs, and with answers when a
    persona answered the question more than once (else None: rows are the independent units)."""
    local, first, per_unit = np.unique(sil.unit[s_rows], return_index=True, return_counts=True)
    if not use_probs and not (per_unit > 1).any():
        return None
    ul = np.searchsorted(local, sil.unit[s_rows])
    if use_probs:
        mass = np.zeros((len(local), k))
        for j in range(k):
            mass[:, j] = np.bincount(ul, weights=sil.w[s_rows] * s_x[:, j], minlength=len(local))
        return _Units(first, sil.w[s_rows][first], mass, None, None)
    counts = np.bincount(ul * k + sil.pos[s_rows], minlength=len(local) * k).reshape(-1, k)
    return _Units(first, sil.w[s_rows][first], None, counts, answer_patterns(counts))


def _group_block(out: _Out, diag: dict[str, Any], model: str, q: Question, kind: M.Kind, var: str,
                 cats: list[str], scode: np.ndarray, hcode: np.ndarray, sil: Rows, hum: Rows,
                 s_idx: np.ndarray, s_rows: np.ndarray, s_x: np.ndarray, h_rows: np.ndarray,
                 h_x: np.ndarray, use_probs: bool, cfg: AnalysisConfig, rng: np.random.Generator,
                 floor: dict[str, np.ndarray], units: _Units | None) -> None:
    n_groups, b = len(cats), cfg.bootstrap
    sg, hg = scode[s_rows], hcode[h_rows]
    S = _table(sg, s_x, sil.w[s_rows], n_groups, None if use_probs else sil.pos[s_rows])
    H = _table(hg, h_x, hum.w[h_rows], n_groups, hum.pos[h_rows])
    ns, sw, sw2 = _sums(sg, sil.w[s_rows], n_groups)
    nh, hw, hw2 = _sums(hg, hum.w[h_rows], n_groups)
    # min_group_n guards subgroups; the overall comparison is always made (its n is reported).
    floor_n = 1 if var == "all" else cfg.min_group_n
    keep = (ns >= floor_n) & (nh >= floor_n)
    for j in np.flatnonzero(~keep & ((ns > 0) | (nh > 0))):
        diag["skipped_groups"].append({"model": model, "question_id": q.id, "group_var": var,
                                       "group_value": cats[j], "n_silicon": int(ns[j]), "n_human": int(nh[j])})
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        return
    values = [cats[j] for j in kept]
    S, H = S[kept], H[kept]
    if units is not None:
        # Resample personas (cluster bootstrap): a persona's rows (conditions, replicates) are
        # not independent draws, so they move together.
        remap = np.full(n_groups, -1)
        remap[kept] = np.arange(len(kept))
        ug = sg[units.first]  # a persona's group is the same on all its rows
        ug = np.where(ug >= 0, remap[np.maximum(ug, 0)], -1)
        if use_probs:
            S_b = unit_tables(rng, units.mass, ug, len(kept), b)
        else:
            S_b = cluster_tables(rng, units.counts, units.w, ug, len(kept), b, units.patterns)
    else:
        S_b = multinomial_tables(rng, S, kish_n(sw[kept], sw2[kept]), b)
    H_b = multinomial_tables(rng, H, kish_n(hw[kept], hw2[kept]), b)
    XS = np.concatenate([S[None], S_b])
    XH = np.concatenate([H[None], H_b])
    n_s, n_h = ns[kept], nh[kept]
    for name, arr in M.group_metrics(XS, XH, kind, eps=cfg.kl_smoothing).items():
        fl = floor[name][kept] if name in floor else None
        out.add(model, q.id, var, values, name, arr[0], arr[1:], cfg.ci, fl, n_s, n_h)
    if var != "all":
        for side, X in (("silicon", XS), ("human", XH)):
            js = M.js_divergence(X, X.sum(-2, keepdims=True))
            out.add(model, q.id, var, values, f"group_vs_all_js_{side}", js[0], js[1:], cfg.ci, None, n_s, n_h)
        if len(kept) >= 2:
            for side, X in (("silicon", XS), ("human", XH)):
                v = M.cramers_v(X)
                out.add(model, q.id, var, ["*"], f"cramers_v_{side}", v[:1], v[1:], cfg.ci, None,
                        n_s.sum(), n_h.sum())
        if kind == "ordinal" and len(kept) >= 3:
            r = M.pearson_r(M.ordinal_mean(XS), M.ordinal_mean(XH))
            out.add(model, q.id, var, ["*"], "subgroup_mean_corr", r[:1], r[1:], cfg.ci, None,
                    n_s.sum(), n_h.sum())
    _rates(out, model, q, var, values, kept, scode[s_idx], sil, s_idx, n_groups, cfg, rng, n_h)


def _rates(out: _Out, model: str, q: Question, var: str, values: list[str], kept: np.ndarray,
           g: np.ndarray, sil: Rows, idx: np.ndarray, n_groups: int, cfg: AnalysisConfig,
           rng: np.random.Generator, n_h: np.ndarray) -> None:
    """invalid_rate, refusal_rate (over all persona rows) and nonsubstantive_rate (over valid answers)."""
    w = sil.w[idx]
    valid, refusal, pos = sil.valid[idx], sil.refusal[idx], sil.pos[idx]
    answered = valid & ~refusal & (pos != MISSING)
    for name, num, den in (("invalid_rate", ~valid, np.ones(len(idx), bool)),
                           ("refusal_rate", refusal, np.ones(len(idx), bool)),
                           ("nonsubstantive_rate", answered & (pos == NONSUBST), answered)):
        gd = np.where(den, g, -1)
        n, sw, sw2 = _sums(gd, w, n_groups)
        top = np.bincount(gd[gd >= 0], weights=(w * num)[gd >= 0], minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(sw > 0, top / np.where(sw > 0, sw, 1), np.nan)[kept]
        reps = binomial_rates(rng, rate, kish_n(sw, sw2)[kept], cfg.bootstrap)
        out.add(model, q.id, var, values, name, rate, reps, cfg.ci, None, n[kept], n_h)


def _no_persona(out: _Out, model: str, q: Question, sil: Rows, in_model: np.ndarray, qi: int, k: int,
                use_probs: bool, s_rows: np.ndarray, s_x: np.ndarray, cfg: AnalysisConfig,
                rng: np.random.Generator) -> None:
    """no_persona_js: the persona-free answer vs the persona-weighted mixture of persona answers."""
    np_idx = np.flatnonzero(in_model & (sil.unit < 0) & (sil.q == qi))
    if len(np_idx) == 0:
        return
    ok, x = answer_vectors(sil, np_idx, k, use_probs)
    if not ok.any():
        return
    N = x.sum(0)[None]
    w = sil.w[s_rows]
    wx = w[:, None] * s_x
    Mx = wx.sum(0)[None]
    if use_probs:
        # Probability vectors are not counts: a multinomial draw around their pooled mass would
        # add sampling noise no respondent produced (and bias JS upward, putting the point
        # estimate below its own interval). Resample the rows (answer vectors) themselves.
        xo = x[ok]
        XN = np.concatenate([N[None], unit_tables(rng, xo, np.zeros(len(xo), np.int64), 1, cfg.bootstrap)])
        XM = np.concatenate([Mx[None], unit_tables(rng, wx, np.zeros(len(wx), np.int64), 1, cfg.bootstrap)])
    else:
        nb = kish_n(np.array([len(x)]), np.array([len(x)]))
        XN = np.concatenate([N[None], multinomial_tables(rng, N, nb, cfg.bootstrap)])
        XM = np.concatenate([Mx[None], multinomial_tables(rng, Mx, kish_n(w.sum()[None], (w**2).sum()[None]),
                                                           cfg.bootstrap)])
    js = M.js_divergence(XN, XM)
    out.add(model, q.id, "all", ["all"], "no_persona_js", js[0], js[1:], cfg.ci, None,
            np.array([len(x)]), np.array([0]))


def _pattern(out: _Out, model: str, instrument: Instrument, persona_dists: dict[int, tuple[np.ndarray, np.ndarray]],
             sil: Rows, hum: Rows, cfg: AnalysisConfig, rng: np.random.Generator) -> None:
    """Pairwise Cramér's V between questions (silicon: same persona; human: same respondent)."""
    n_units = int(sil.unit.max()) + 1 if len(sil.unit) else 0
    n_resp = int(hum.unit.max()) + 1 if len(hum.unit) else 0
    pw = np.zeros(n_units)
    pw[sil.unit[sil.unit >= 0]] = sil.w[sil.unit >= 0]
    P: dict[int, np.ndarray] = {}
    for qi, (units, x) in persona_dists.items():
        k = x.shape[1]
        s = np.zeros((n_units, k))
        for j in range(k):
            s[:, j] = np.bincount(units, weights=x[:, j], minlength=n_units)
        tot = s.sum(1, keepdims=True)
        P[qi] = np.divide(s, tot, out=np.zeros_like(s), where=tot > 0)  # persona-level distribution
    hpos: dict[int, np.ndarray] = {}
    hw = np.zeros(n_resp)
    hw[hum.unit] = hum.w
    for qi in P:
        m = (hum.q == qi) & (hum.pos >= 0) & (hum.w > 0)
        a = np.full(n_resp, -1)
        a[hum.unit[m]] = hum.pos[m]
        hpos[qi] = a
    qs = sorted(P)
    vs, vh, labels = [], [], []
    for i, q1 in enumerate(qs):
        for q2 in qs[i + 1:]:
            both = (P[q1].sum(1) > 0) & (P[q2].sum(1) > 0)
            hb = (hpos[q1] >= 0) & (hpos[q2] >= 0)
            if both.sum() < cfg.min_group_n or hb.sum() < cfg.min_group_n:
                continue
            k1, k2 = P[q1].shape[1], P[q2].shape[1]
            TS = (pw[both, None] * P[q1][both]).T @ P[q2][both]
            TH = np.bincount(hpos[q1][hb] * k2 + hpos[q2][hb], weights=hw[hb], minlength=k1 * k2).reshape(k1, k2)
            reps = []
            for T, w in ((TS, pw[both]), (TH, hw[hb])):
                nb = kish_n(w.sum()[None], (w**2).sum()[None])
                boot = multinomial_tables(rng, T.reshape(1, -1), nb, cfg.bootstrap).reshape(-1, k1, k2)
                reps.append(M.cramers_v(np.concatenate([T[None], boot])))
            qid = f"{instrument.questions[q1].id}|{instrument.questions[q2].id}"
            for side, v in (("silicon", reps[0]), ("human", reps[1])):
                out.add(model, qid, "all", ["all"], f"pair_cramers_v_{side}", v[:1], v[1:], cfg.ci, None,
                        np.array([both.sum()]), np.array([hb.sum()]))
            vs.append(reps[0])
            vh.append(reps[1])
            labels.append(qid)
    if len(vs) >= 3:
        r = M.pearson_r(np.stack(vs, -1), np.stack(vh, -1))
        # n_silicon / n_human hold the number of question pairs correlated.
        out.add(model, "*", "all", ["all"], "pattern_cramers_v_corr", r[:1], r[1:], cfg.ci, None,
                np.array([len(vs)]), np.array([len(vh)]))
