"""Grouped silicon-vs-human comparisons: :func:`analyze` and its result.

For every model in the responses, every question and every group (``all`` plus each usable
demographic variable's values) the silicon and human weighted answer tables are built once
with ``np.bincount``; point estimates, all B bootstrap replicates and all null replicates are
then scored together by the vectorized metric functions (arrays of shape (B, G, K)).

Silicon distributions pool all persona rows of a model (every condition and replicate);
``no_persona`` rows only enter the no-persona metrics and the order effects. Distributions use
valid, non-refusal answers on substantive options only. In probs mode (logprob elicitation) the
silicon distribution is the weighted mean of the personas' probability vectors — the estimand is
the distribution of an answer drawn by a random persona from its own distribution, so a
persona's token uncertainty counts as diversity; the ``*_answers`` metrics beside it report the
diversity of the drawn/argmax ``answer_code`` of the same rows.

Every row of ``metrics.parquet`` carries (see :mod:`simsurvey.analysis.inference`):

- ``value``: the estimate (plug-in distances; corrected diversity and association statistics, each
  by the formula in its registry entry, :data:`simsurvey.analysis.metrics.METRICS`);
- ``ci_low``/``ci_high``: the bootstrap percentile interval re-centred on the bias-corrected
  estimate, clipped to the metric's range (coverage in VALIDATION.md);
- for tested metrics, ``null_mean``/``null_q95``/``p_value``/``excess``: the metric's sampling null
  (both sides drawn from the pooled distribution at ``n_eff_silicon`` / ``n_eff_human``), its
  critical value, the p-value of "silicon = human" and ``value − null_mean``; for association
  metrics, ``p_value`` is the Rao–Scott χ² test of independence;
- ``n_silicon``/``n_human``: rows; ``n_eff_silicon``/``n_eff_human``: design-effective sizes
  (weights, persona clustering and elicitation mode); ``flag``: a reading note or null.

Bootstrap (:mod:`simsurvey.analysis.bootstrap`): human rows by the count-based multinomial
bootstrap; silicon answers by resampling personas whenever a persona answered a question more
than once (conditions, replicates) and always for probability vectors; the rates resample rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.population.variables import Variables, population_of
from simsurvey.analysis import metrics as M
from simsurvey.analysis.bootstrap import (answer_patterns, binomial_rates, cluster_tables, kish_n,
                                          multinomial_tables, percentile_ci, unit_tables)
from simsurvey.analysis.inference import design_n, null_summary, null_tables, shifted_percentile_ci
from simsurvey.analysis.config import AnalysisConfig
from simsurvey.analysis.frames import (MISSING, NONSUBST, Rows, answer_vectors, encode_reference,
                                       encode_responses, onehot)
from simsurvey.analysis.battery_rows import battery_metrics, scale_metrics, selection_metrics
from simsurvey.analysis.context import context_effects
from simsurvey.analysis.numeric import numeric_block
from simsurvey.analysis.order import order_effects
from simsurvey.analysis.treatment import empty_treatment_effects, treatment_effects
from simsurvey.instruments.models import Instrument, Question

METRIC_COLUMNS = ["model", "question_id", "group_var", "group_value", "metric", "value", "ci_low",
                  "ci_high", "null_mean", "null_q95", "p_value", "excess", "n_silicon", "n_human",
                  "n_eff_silicon", "n_eff_human", "flag"]
_FLOAT_COLUMNS = ("value", "ci_low", "ci_high", "null_mean", "null_q95", "p_value", "excess",
                  "n_eff_silicon", "n_eff_human")


@dataclass(frozen=True)
class AnalysisResult:
    """What the analysis stage produces.

    Attributes:
        metrics: one row per model × question × group × metric (``metrics.parquet`` contract).
        order_effects: one row per model × question × pair of conditions (``order_effects.parquet``).
        treatment_effects: survey experiments' arm effects, silicon beside human
            (:mod:`simsurvey.analysis.treatment`).
        diagnostics: JSON-able notes: distribution mode per model, skipped variables/groups, counts.
        context_effects: question-order effects of sequential questionnaires, one row per side ×
            model × question × contrast (``context_effects.parquet``; :mod:`simsurvey.analysis.context`).
    """

    metrics: pd.DataFrame
    order_effects: pd.DataFrame
    diagnostics: dict[str, Any]
    #: one row per model × experiment × question × arm × statistic (``treatment_effects.parquet``).
    treatment_effects: pd.DataFrame = field(default_factory=empty_treatment_effects)
    context_effects: pd.DataFrame | None = None


def question_kind(q: Question) -> M.Kind | None:
    """nominal for single_choice, ordinal for ordinal and numeric (its bins are in scale order),
    None for multi_select (scored per option by :mod:`simsurvey.analysis.battery_rows` instead)."""
    return {"single_choice": "nominal", "ordinal": "ordinal", "numeric": "ordinal"}.get(q.kind)  # type: ignore[return-value]


class _Out:
    """Column-wise collector of metric rows (arrays appended, concatenated once)."""

    def __init__(self, ci: float) -> None:
        self.ci = ci
        self.cols: dict[str, list[np.ndarray]] = {c: [] for c in METRIC_COLUMNS}

    def add(self, model: str, qid: str, var: str, values: np.ndarray | list[str], metric: str,
            point: np.ndarray, reps: np.ndarray, ns: np.ndarray, nh: np.ndarray, *,
            null: np.ndarray | None = None, p_value: np.ndarray | None = None,
            neff: tuple[np.ndarray, np.ndarray] | None = None, flag: str | None = None) -> None:
        """Append rows of one metric: point (G,), bootstrap replicates (B, G), optional null
        replicates (B0, G) (for the metric's registry test) or an analytic p-value."""
        point = np.atleast_1d(np.asarray(point, float))
        g = len(point)
        self.add_block(model, qid, var, values, [metric], point[None], reps.reshape(reps.shape[0], 1, g),
                       ns, nh, null=None if null is None else null.reshape(null.shape[0], 1, g),
                       p_value=None if p_value is None else np.broadcast_to(np.asarray(p_value, float), (1, g)),
                       neff=neff, flag=flag)

    def add_block(self, model: str, qid: str, var: str, values: np.ndarray | list[str], metrics: list[str],
                  point: np.ndarray, reps: np.ndarray, ns: np.ndarray, nh: np.ndarray, *,
                  null: np.ndarray | None = None, p_value: np.ndarray | None = None,
                  neff: tuple[np.ndarray, np.ndarray] | None = None, flag: str | None = None) -> None:
        """Append rows of several metrics at once: point (M, G), reps (B, M, G), null (B0, M, G)."""
        specs = [M.METRICS[name] for name in metrics]
        n_m, g = point.shape
        lo_b = np.array([sp.bounds[0] for sp in specs])[:, None]
        hi_b = np.array([sp.bounds[1] for sp in specs])[:, None]
        kind = np.array([sp.ci for sp in specs], dtype=object)[:, None]
        s_lo, s_hi = shifted_percentile_ci(point, reps, self.ci)
        s_lo, s_hi = np.clip(s_lo, lo_b, hi_b), np.clip(s_hi, lo_b, hi_b)
        p_lo, p_hi = percentile_ci(reps, self.ci)
        lo = np.where(kind == "shifted", s_lo, np.where(kind == "span", np.fmin(s_lo, p_lo), p_lo))
        hi = np.where(kind == "shifted", s_hi, np.where(kind == "span", np.fmax(s_hi, p_hi), p_hi))
        nan = np.full((n_m, g), np.nan)
        mean, crit, excess = nan, nan, nan
        p = nan if p_value is None else np.asarray(p_value, float)
        tails = [sp.test for sp in specs]
        if null is not None and any(t in ("upper", "lower", "two") for t in tails):
            mean, crit, p = null_summary(point, null, tails, self.ci)
            excess = point - mean
        es, eh = (nan[0], nan[0]) if neff is None else neff
        rep = lambda v: np.broadcast_to(np.asarray(v), (n_m, g)).ravel()  # noqa: E731
        for col, v in (("model", np.full(n_m * g, model, dtype=object)),
                       ("question_id", np.full(n_m * g, qid, dtype=object)),
                       ("group_var", np.full(n_m * g, var, dtype=object)),
                       ("group_value", rep(np.asarray(list(values), dtype=object))),
                       ("metric", np.repeat(np.asarray(metrics, dtype=object), g)),
                       ("value", point.ravel()), ("ci_low", lo.ravel()), ("ci_high", hi.ravel()),
                       ("null_mean", rep(mean)), ("null_q95", rep(crit)), ("p_value", rep(p)),
                       ("excess", rep(excess)), ("n_silicon", rep(ns)), ("n_human", rep(nh)),
                       ("n_eff_silicon", rep(es)), ("n_eff_human", rep(eh)),
                       ("flag", np.full(n_m * g, flag, dtype=object))):
            self.cols[col].append(v)

    def frame(self) -> pd.DataFrame:
        data = {c: (np.concatenate(v) if v else np.array([])) for c, v in self.cols.items()}
        df = pd.DataFrame(data)
        for c in ("model", "question_id", "group_var", "group_value", "metric", "flag"):
            df[c] = df[c].astype("string")
        for c in _FLOAT_COLUMNS:
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
            instrument: Instrument, cfg: AnalysisConfig, *, seed: int,
            variables: Variables | None = None) -> AnalysisResult:
    """Compare silicon responses with human reference answers, per model, question and group.

    Args:
        responses: rows of the ``responses.parquet`` contract (several models allowed).
        reference: rows of the ``reference.parquet`` contract.
        personas: rows of the ``personas.parquet`` contract (weights and demographics).
        instrument: the administered instrument (canonical codes, kinds, non-substantive flags).
        cfg: the ``analysis:`` config section.
        seed: master seed; every bootstrap, split and permutation derives from it.
        variables: the population's variables: ``cfg.group_vars`` null compares their
            ``compare`` list (without them: every demographic column personas and reference share).

    Returns:
        AnalysisResult with the metrics and order-effects frames and diagnostics.

    Raises:
        UserError: a frame lacks a required column, persona ids do not match, or
            ``cfg.reference_source`` is absent from the reference data.
    """
    group_vars = (list(cfg.group_vars) if cfg.group_vars is not None
                  else list(population_of(personas, reference, variables).compare))
    sil = encode_responses(responses, personas, instrument, group_vars)
    hum, sources = encode_reference(reference, instrument, group_vars, cfg.reference_source)
    diag: dict[str, Any] = {"notes": list(sil.notes), "reference_sources": sources, "models": {},
                            "skipped_groups": [], "group_vars": []}
    gvars: list[str] = []
    for var in group_vars:
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
    # Survey experiments: each arm is also a group, so an experiment question's silicon answers in
    # an arm are compared with the human answers in the same arm (like with like), beside the pooled row.
    if instrument.experiments and sil.arm is not None and hum.arm is not None and (hum.arm >= 0).any():
        cats["arm"] = sorted((set(sil.arm_names) | set(hum.arm_names)) - {"None", "<NA>"})
        scode["arm"] = _recode(sil.arm, sil.arm_names, cats["arm"], missing_ok=True)
        hcode["arm"] = _recode(hum.arm, hum.arm_names, cats["arm"], missing_ok=True)
        gvars_rows = [*gvars, "arm"]
    else:
        gvars_rows = gvars

    out = _Out(cfg.ci)
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
                if mi == 0 and q.kind != "multi_select":  # multi_select: selection rates below
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
            s_rows = s_idx[s_ok]
            persona_dists[qi] = (sil.unit[s_rows], s_x)
            side = _Side.of(sil, s_rows, s_x, use_probs)
            ans = None
            if use_probs:
                a_ok, a_x = answer_vectors(sil, s_idx, k, False)
                ans = _Side.of(sil, s_idx[a_ok], a_x, False)
            human = _Side.of(hum, h_rows, onehot(hum.pos[h_rows], k), False, units_are_rows=True)
            for vi, var in enumerate(["all", *gvars_rows]):
                rng = np.random.default_rng([seed, 1, mi, qi, vi])
                _group_block(out, diag, model, q, kind, var, cats[var], scode[var], hcode[var], sil,
                             s_idx, side, ans, human, cfg, rng)
            _no_persona(out, model, q, sil, in_model, qi, k, use_probs, side, human, hcode, cfg,
                        np.random.default_rng([seed, 3, mi, qi]))
            if q.kind == "numeric":
                _numeric(out, model, q, sil, hum, s_idx, h_idx, ["all", *gvars], cats, scode, hcode, cfg,
                         [seed, 5, mi, qi])
        if cfg.pairs:
            _pattern(out, model, instrument, persona_dists, sil, hum, cfg, np.random.default_rng([seed, 4, mi]))
        # Battery internal consistency and multi_select selection rates (simsurvey.analysis.battery_rows).
        battery_metrics(out, diag, model, sil, persona_rows, hum, instrument, cfg,
                        lambda i, mi=mi: np.random.default_rng([seed, 5, mi, i]))
        selection_metrics(out, diag, model, sil, persona_rows, hum, instrument, cfg,
                          lambda i, mi=mi: np.random.default_rng([seed, 6, mi, i]))
        # Battery scale scores compared like a numeric question's values (simsurvey.analysis.scale).
        scale_metrics(out, diag, model, sil, persona_rows, hum, instrument, cfg, ["all", *gvars], cats, scode, hcode,
                      [seed, 10, mi])
    modes = {m: d["distribution"] == "probs" for m, d in diag["models"].items()}
    oe = order_effects(sil, instrument, cfg, seed=seed, use_probs=modes)
    te = treatment_effects(sil, hum, instrument, use_probs=modes, ci=cfg.ci, n_permutations=cfg.n_permutations,
                           bootstrap=cfg.bootstrap, seed=seed)
    ce = context_effects(responses, reference, instrument, cfg, seed=seed)
    return AnalysisResult(metrics=out.frame(), order_effects=oe, diagnostics=diag, treatment_effects=te,
                          context_effects=ce)


def _numeric(out: _Out, model: str, q: Question, sil: Rows, hum: Rows, s_idx: np.ndarray, h_idx: np.ndarray,
             gvars: list[str], cats: dict[str, list[str]], scode: dict[str, np.ndarray],
             hcode: dict[str, np.ndarray], cfg: AnalysisConfig, seed: list[int]) -> None:
    """The raw-scale value_* rows of a numeric question (:mod:`simsurvey.analysis.numeric`):
    valid, non-refusal persona rows with an answer_value, and the human rows with one."""
    if sil.value is None or hum.value is None or q.scale is None:
        return
    s = s_idx[sil.valid[s_idx] & ~sil.refusal[s_idx] & np.isfinite(sil.value[s_idx])]
    h = h_idx[np.isfinite(hum.value[h_idx]) & (hum.w[h_idx] > 0)]
    numeric_block(out, model, q.id, q.scale.min, q.scale.max,
                  s_value=sil.value[s], s_unit=sil.unit[s], s_w=sil.w[s], s_groups={v: scode[v][s] for v in gvars},
                  h_value=hum.value[h], h_unit=hum.unit[h], h_w=hum.w[h], h_groups={v: hcode[v][h] for v in gvars},
                  cats={v: cats[v] for v in gvars}, min_group_n=cfg.min_group_n, bootstrap=cfg.bootstrap,
                  null_draws=cfg.null_draws, seed=seed)


def _recode(codes: np.ndarray, own: list[str], shared: list[str], missing_ok: bool = False) -> np.ndarray:
    """Codes into one side's categories -> codes into the shared categories (-1 stays -1; with
    ``missing_ok`` a category absent from ``shared`` maps to -1 too)."""
    lut = np.array([shared.index(c) if (c in shared or not missing_ok) else -1 for c in own] + [-1], dtype=np.int64)
    return lut[codes]


def _unit_sums(ul: np.ndarray, x: np.ndarray, n_units: int) -> np.ndarray:
    """(n_units, K) sums of the rows' answer vectors ``x`` per unit index ``ul``."""
    return np.stack([np.bincount(ul, weights=x[:, j], minlength=n_units) for j in range(x.shape[1])], 1)


@dataclass(frozen=True)
class _Side:
    """One side's rows of a question summed per unit (persona / respondent), built once per
    question and shared by all grouping variables."""

    rows: np.ndarray  #: row indices into the side's Rows
    x: np.ndarray  #: (n_rows, K) answer vectors of those rows
    pos: np.ndarray | None  #: substantive positions when x is one-hot (answers), else None
    first: np.ndarray  #: index into rows of each unit's first row
    ul: np.ndarray  #: unit index (0..n_units-1) of each row
    y: np.ndarray  #: (n_units, K) unweighted answer vectors summed over the unit's rows
    m: np.ndarray  #: (n_units,) rows per unit
    w: np.ndarray  #: (n_units,) unit weight
    probs: bool  #: x holds probability vectors
    clustered: bool  #: some unit has several rows (resample units, not rows)
    patterns: tuple[np.ndarray, np.ndarray] | None  #: answer_patterns(y) for clustered answers

    @staticmethod
    def of(rows: Rows, idx: np.ndarray, x: np.ndarray, probs: bool,
           units_are_rows: bool = False) -> _Side:
        if units_are_rows:
            ul, first = np.arange(len(idx)), np.arange(len(idx))
            n_u = len(idx)
        else:
            local, first, ul = np.unique(rows.unit[idx], return_index=True, return_inverse=True)
            ul = ul.reshape(-1)
            n_u = len(local)
        y = _unit_sums(ul, x, n_u)
        m = np.bincount(ul, minlength=n_u).astype(float)
        clustered = bool((m > 1).any())
        pos = None if probs else rows.pos[idx]
        pats = answer_patterns(np.rint(y).astype(np.int64)) if clustered and not probs else None
        return _Side(idx, x, pos, first, ul, y, m, rows.w[idx][first], probs, clustered, pats)

    def unit_groups(self, code: np.ndarray, kept: np.ndarray, n_groups: int) -> np.ndarray:
        """Group of each unit (a unit's group is the same on all its rows), renumbered to the
        kept groups (-1 = not kept)."""
        remap = np.full(n_groups, -1)
        remap[kept] = np.arange(len(kept))
        ug = code[self.rows][self.first]
        return np.where(ug >= 0, remap[np.maximum(ug, 0)], -1)

    def table(self, code: np.ndarray, n_groups: int) -> np.ndarray:
        """(G, K) weighted table of the rows by group."""
        return _table(code[self.rows], self.x, self.w[self.ul], n_groups, self.pos)

    def boot(self, rng: np.random.Generator, table: np.ndarray, ug: np.ndarray, b: int) -> np.ndarray:
        """(b, G, K) bootstrap tables of the kept groups: units resampled when clustered or
        probabilities, else the count-based multinomial of the rows."""
        g = table.shape[0]
        if self.probs:
            return unit_tables(rng, self.y * self.w[:, None], ug, g, b)
        if self.clustered:
            return cluster_tables(rng, np.rint(self.y).astype(np.int64), self.w, ug, g, b, self.patterns)
        m = ug >= 0
        sw = np.bincount(ug[m], weights=self.w[m], minlength=g)
        sw2 = np.bincount(ug[m], weights=self.w[m] ** 2, minlength=g)
        return multinomial_tables(rng, table, kish_n(sw, sw2), b)

    def n_eff(self, ug: np.ndarray, g: int) -> np.ndarray:
        return design_n(self.y, self.m, self.w, ug, g)[0]


def _props(t: np.ndarray) -> np.ndarray:
    s = t.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, t / np.where(s > 0, s, 1.0), np.nan)


def _compare(out: _Out, model: str, qid: str, var: str, values: list[str], kind: M.Kind,
             S: np.ndarray, S_b: np.ndarray, n_s: np.ndarray, H: np.ndarray, H_b: np.ndarray,
             n_h: np.ndarray, rows_s: np.ndarray, rows_h: np.ndarray, cfg: AnalysisConfig,
             rng: np.random.Generator, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Score point, bootstrap and null replicates of every group metric and add the rows.

    With ``suffix`` only the silicon diversity statistics and the ratios are added, under the
    suffixed names (the ``*_answers`` metrics of probs mode). Returns the (1+B, G, K) stacks.
    """
    XS, XH = np.concatenate([S[None], S_b]), np.concatenate([H[None], H_b])
    scored = M.group_metrics(XS, XH, kind, eps=cfg.kl_smoothing, n_s=n_s, n_h=n_h)
    P0, Q0 = null_tables(rng, _props(S), _props(H), n_s, n_h, cfg.null_draws)
    nulls = M.group_metrics(P0, Q0, kind, eps=cfg.kl_smoothing, n_s=n_s, n_h=n_h)
    names = [n for n in scored if not suffix or (n not in M.DISTANCES and not n.endswith("_human")
                                                 and n + suffix in M.METRICS)]
    arr = np.stack([scored[n] for n in names], 1)  # (1+B, M, G)
    out.add_block(model, qid, var, values, [n + suffix for n in names], arr[0], arr[1:], rows_s, rows_h,
                  null=np.stack([nulls[n] for n in names], 1), neff=(n_s, n_h))
    return XS, XH


def _group_block(out: _Out, diag: dict[str, Any], model: str, q: Question, kind: M.Kind, var: str,
                 cats: list[str], scode: np.ndarray, hcode: np.ndarray, sil: Rows, s_idx: np.ndarray,
                 side: _Side, ans: _Side | None, human: _Side, cfg: AnalysisConfig,
                 rng: np.random.Generator) -> None:
    n_groups, b = len(cats), cfg.bootstrap
    S, H = side.table(scode, n_groups), human.table(hcode, n_groups)
    ns = np.bincount(scode[side.rows][scode[side.rows] >= 0], minlength=n_groups)
    nh = np.bincount(hcode[human.rows][hcode[human.rows] >= 0], minlength=n_groups)
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
    ug_s, ug_h = side.unit_groups(scode, kept, n_groups), human.unit_groups(hcode, kept, n_groups)
    S_b, H_b = side.boot(rng, S, ug_s, b), human.boot(rng, H, ug_h, b)
    n_es, n_eh = side.n_eff(ug_s, len(kept)), human.n_eff(ug_h, len(kept))
    n_s, n_h = ns[kept], nh[kept]
    XS, XH = _compare(out, model, q.id, var, values, kind, S, S_b, n_es, H, H_b, n_eh, n_s, n_h, cfg, rng)
    if ans is not None:
        ug_a = ans.unit_groups(scode, kept, n_groups)
        A = ans.table(scode, n_groups)[kept]
        n_a = np.bincount(scode[ans.rows][scode[ans.rows] >= 0], minlength=n_groups)[kept]
        _compare(out, model, q.id, var, values, kind, A, ans.boot(rng, A, ug_a, b), ans.n_eff(ug_a, len(kept)),
                 H, H_b, n_eh, n_a, n_h, cfg, rng, suffix="_answers")
    if var != "all":
        for sname, X in (("silicon", XS), ("human", XH)):
            js = M.js_divergence(X, X.sum(-2, keepdims=True))
            out.add(model, q.id, var, values, f"group_vs_all_js_{sname}", js[0], js[1:], n_s, n_h,
                    neff=(n_es, n_eh))
        if len(kept) >= 2:
            for sname, X, sd, ug in (("silicon", XS, side, ug_s), ("human", XH, human, ug_h)):
                n_all = sd.n_eff(np.where(ug >= 0, 0, -1), 1)
                v = M.cramers_v_bc(X, n_all)
                out.add(model, q.id, var, ["*"], f"cramers_v_{sname}", v[:1], v[1:], n_s.sum(), n_h.sum(),
                        p_value=M.independence_p(X[0], n_all), neff=(n_all, n_all))
        if kind == "ordinal" and len(kept) >= 3:
            r = M.pearson_r(M.ordinal_mean(XS), M.ordinal_mean(XH))
            flag = f"low_information: {len(kept)} groups" if len(kept) < 5 else None
            out.add(model, q.id, var, ["*"], "subgroup_mean_corr", r[:1], r[1:], n_s.sum(), n_h.sum(), flag=flag)
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
        out.add(model, q.id, var, values, name, rate, reps, n[kept], n_h)


def _no_persona(out: _Out, model: str, q: Question, sil: Rows, in_model: np.ndarray, qi: int, k: int,
                use_probs: bool, side: _Side, human: _Side, hcode: dict[str, np.ndarray],
                cfg: AnalysisConfig, rng: np.random.Generator) -> None:
    """no_persona_js (the persona-free answer vs the persona-weighted mixture) and
    no_persona_js_human (vs the human answers), each with its sampling null.

    Units of the no-persona side: in probs mode (and for logprob elicitation) identical prompts —
    the same condition and displayed order — give identical distributions, so each distinct prompt
    is one unit (ten copies of one deterministic prompt are one observation, not ten); sampled
    answers are independent draws, one unit per row. Both
    sides' bootstraps resample units.
    """
    np_idx = np.flatnonzero(in_model & (sil.unit < 0) & (sil.q == qi))
    if len(np_idx) == 0:
        return
    ok, x = answer_vectors(sil, np_idx, k, use_probs)
    if not ok.any():
        return
    rows = np_idx[ok]
    deterministic = use_probs or (sil.deterministic is not None and bool(sil.deterministic[rows].all()))
    if deterministic:
        # The same prompt: condition and displayed order (prompt_hash also holds the row's seed).
        parts = [sil.condition[rows][:, None]]
        if sil.rank is not None:
            parts.append(sil.rank[rows].astype(np.int64))
        _, ul = np.unique(np.concatenate(parts, 1), axis=0, return_inverse=True)
        ul = ul.reshape(-1)
    else:
        ul = np.arange(len(rows))
    n_u = int(ul.max()) + 1
    y = _unit_sums(ul, x, n_u)
    m = np.bincount(ul, minlength=n_u).astype(float)
    y, m = y / m[:, None], np.ones(n_u)  # a unit is one distribution (copies averaged)
    one = np.zeros(n_u, np.int64)
    n_np = design_n(y, m, np.ones(n_u), one, 1)[0]
    N = y.sum(0)[None]
    XN = np.concatenate([N[None], unit_tables(rng, y, one, 1, cfg.bootstrap)])
    all_s = np.zeros(len(side.m), np.int64)
    Mx = (side.y * side.w[:, None]).sum(0)[None]
    XM = np.concatenate([Mx[None], side.boot(rng, Mx, all_s, cfg.bootstrap)])
    n_mix = side.n_eff(all_s, 1)
    flag = "one no-persona prompt: its prompt-to-prompt spread is not estimable" if n_u == 1 else None
    js = M.js_divergence(XN, XM)
    P0, Q0 = null_tables(rng, _props(N), _props(Mx), n_np, n_mix, cfg.null_draws)
    out.add(model, q.id, "all", ["all"], "no_persona_js", js[0], js[1:], np.array([n_u]),
            np.array([len(side.rows)]), null=M.js_divergence(P0, Q0), neff=(n_np, n_mix), flag=flag)
    all_h = np.zeros(len(human.m), np.int64)
    H = human.table(hcode["all"], 1)
    XH = np.concatenate([H[None], human.boot(rng, H, all_h, cfg.bootstrap)])
    n_h = human.n_eff(all_h, 1)
    jh = M.js_divergence(XN, XH)
    P0, Q0 = null_tables(rng, _props(N), _props(H), n_np, n_h, cfg.null_draws)
    out.add(model, q.id, "all", ["all"], "no_persona_js_human", jh[0], jh[1:], np.array([n_u]),
            np.array([len(human.rows)]), null=M.js_divergence(P0, Q0), neff=(n_np, n_h), flag=flag)


def _pattern(out: _Out, model: str, instrument: Instrument, persona_dists: dict[int, tuple[np.ndarray, np.ndarray]],
             sil: Rows, hum: Rows, cfg: AnalysisConfig, rng: np.random.Generator) -> None:
    """Pairwise bias-corrected Cramér's V between questions (silicon: same persona; human: same
    respondent). The silicon table is Σ_i w_i P_i(q1) ⊗ P_i(q2) over personas' answer
    distributions; its bootstrap resamples personas (in probs mode a multinomial around the
    probability table would add noise no respondent produced)."""
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
    vs, vh = [], []
    for i, q1 in enumerate(qs):
        for q2 in qs[i + 1:]:
            both = (P[q1].sum(1) > 0) & (P[q2].sum(1) > 0)
            hb = (hpos[q1] >= 0) & (hpos[q2] >= 0)
            if both.sum() < cfg.min_group_n or hb.sum() < cfg.min_group_n:
                continue
            k1, k2 = P[q1].shape[1], P[q2].shape[1]
            outer = (P[q1][both][:, :, None] * P[q2][both][:, None, :]).reshape(-1, k1 * k2) * pw[both, None]
            TS = outer.sum(0).reshape(k1, k2)
            TH = np.bincount(hpos[q1][hb] * k2 + hpos[q2][hb], weights=hw[hb], minlength=k1 * k2).reshape(k1, k2)
            boot_s = unit_tables(rng, outer, np.zeros(int(both.sum()), np.int64), 1, cfg.bootstrap)
            nb_h = kish_n(hw[hb].sum()[None], (hw[hb] ** 2).sum()[None])
            boot_h = multinomial_tables(rng, TH.reshape(1, -1), nb_h, cfg.bootstrap)
            qid = f"{instrument.questions[q1].id}|{instrument.questions[q2].id}"
            reps = []
            for sname, T, bt, w in (("silicon", TS, boot_s, pw[both]), ("human", TH, boot_h, hw[hb])):
                n = float(w.sum() ** 2 / (w**2).sum())
                X = np.concatenate([T[None], bt.reshape(-1, k1, k2)])
                v = M.cramers_v_bc(X, n)
                out.add(model, qid, "all", ["all"], f"pair_cramers_v_{sname}", v[:1], v[1:],
                        np.array([both.sum()]), np.array([hb.sum()]), p_value=M.independence_p(T, n),
                        neff=(np.array([n]), np.array([n])))
                reps.append(v)
            vs.append(reps[0])
            vh.append(reps[1])
    if len(vs) >= 3:
        r = M.pearson_r(np.stack(vs, -1), np.stack(vh, -1))
        # n_silicon / n_human hold the number of question pairs correlated.
        flag = f"low_information: {len(vs)} question pairs" if len(vs) < 5 else None
        out.add(model, "*", "all", ["all"], "pattern_cramers_v_corr", r[:1], r[1:],
                np.array([len(vs)]), np.array([len(vh)]), flag=flag)
