"""Survey experiments: the ``treatment_effects.parquet`` table (silicon and human effects side by side).

For every model, every experiment of the instrument, every question of the experiment and every
arm other than the control, the effect of the arm on the answers (arm − control), on the silicon
sample (personas dealt to the arms by the design) and on the human sample (where the reference
data carries the arm: ``reference.parquet`` ``arm``), with their agreement. The statistics and
their standard errors are :mod:`simsurvey.analysis.effects` (linearized, persona-clustered,
weighted; normal intervals; coverage and size in VALIDATION.md).

Columns (one row per model × experiment × question × arm × statistic [× option]):

- ``model``, ``experiment``, ``question_id``, ``arm``, ``control`` (the control arm's id);
- ``statistic``: ``share`` (one row per substantive option: the share difference, ``option`` =
  its code), ``mean`` (ordinal and numeric questions: the difference of mean scores — 0-based
  scale positions for ordinal answers, raw values for numeric answers; ``option`` null),
  ``tv`` (total variation between the arm's and the control's distributions, with a
  randomization p-value; no SE or CI), and per model one ``effect_corr`` row (experiment,
  question and arm ``*``): the correlation of silicon with human effects across every
  experiment × question × arm — the mean effect where the question has one, else the share
  effects of its first K − 1 options (the last is implied) — with ``n_silicon_arm`` = the
  number of effects;
- ``silicon``, ``silicon_se``, ``silicon_low``, ``silicon_high``, ``silicon_p``: the silicon effect,
  its standard error, CI and the p-value of "no effect" (tv: randomization p; effect_corr: r and
  its CI); ``silicon_null`` (tv only: the randomization mean of TV at these sizes);
- ``human``, ``human_se``, ``human_low``, ``human_high``, ``human_p``, ``human_null``: the same for
  the human sample (NaN when the reference has no arm data for the question);
- ``diff``, ``diff_low``, ``diff_high``, ``diff_p``: silicon − human effect, CI and the p-value of
  "the same effect" (share and mean rows);
- ``sign_agree``: 1 same sign, 0 opposite, NaN when either is 0 or missing;
- ``ratio``, ``ratio_low``, ``ratio_high``: silicon / human effect with Fieller's interval
  (±inf: unbounded, because the human effect is not significant at the CI level);
- ``n_silicon_arm``, ``n_silicon_control``, ``n_human_arm``, ``n_human_control``: units (personas,
  respondents) per arm; ``flag``: a reading note or null.

Silicon rows: the model's persona rows (``no_persona`` control rows have no arm) that enter its
distribution (valid, substantive; in probs mode the probability vectors, as in
:mod:`simsurvey.analysis.compare`), pooled over the order/label conditions — the arm is crossed
with them, so each arm's distribution averages over the same mix of presentations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simsurvey.analysis.effects import (
    ArmData,
    Effects,
    arm_effects,
    compare_effects,
    effect_correlation,
    normal_summary,
)
from simsurvey.analysis.frames import Rows, answer_vectors, onehot
from simsurvey.instruments.models import Instrument, Question

_SIDE = ("", "_se", "_low", "_high", "_p", "_null")
TREATMENT_COLUMNS = [
    "model", "experiment", "question_id", "arm", "control", "statistic", "option",
    *(f"silicon{s}" for s in _SIDE), *(f"human{s}" for s in _SIDE),
    "diff", "diff_low", "diff_high", "diff_p", "sign_agree", "ratio", "ratio_low", "ratio_high",
    "n_silicon_arm", "n_silicon_control", "n_human_arm", "n_human_control", "flag",
]
_STRINGS = ("model", "experiment", "question_id", "arm", "control", "statistic", "option", "flag")
_INTS = ("n_silicon_arm", "n_silicon_control", "n_human_arm", "n_human_control")


def empty_treatment_effects() -> pd.DataFrame:
    """A treatment-effects frame with no rows (right columns and dtypes)."""
    return _typed(pd.DataFrame(columns=TREATMENT_COLUMNS))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    for c in TREATMENT_COLUMNS:
        if c in _STRINGS:
            df[c] = df[c].astype("string")
        elif c in _INTS:
            df[c] = df[c].fillna(0).astype("int64")
        else:
            df[c] = df[c].astype("float64")
    return df[TREATMENT_COLUMNS]


def _scores(q: Question, rows: Rows, idx: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Per-row answer score for the mean effect, or None (nominal question, or no raw values)."""
    if q.kind == "ordinal":
        return x @ np.arange(x.shape[1], dtype=float)
    if q.kind == "numeric" and rows.value is not None:
        v = rows.value[idx]
        return v if np.isfinite(v).all() else None
    return None


def _side(rows: Rows, idx: np.ndarray, q: Question, arm_ids: list[str], use_probs: bool,
          units_are_rows: bool) -> tuple[ArmData | None, bool]:
    """The side's rows of the question with an arm of the experiment -> ArmData (None if empty)."""
    if rows.arm is None or len(idx) == 0:
        return None, False
    lut = np.array([arm_ids.index(a) if a in arm_ids else -1 for a in rows.arm_names] + [-1], dtype=np.int64)
    arm = lut[rows.arm[idx]]
    idx = idx[arm >= 0]
    k = len(q.substantive_codes)
    if use_probs:
        ok, x = answer_vectors(rows, idx, k, True)
    else:
        pos = rows.pos[idx]
        ok = rows.valid[idx] & ~rows.refusal[idx] & (pos >= 0) & (rows.w[idx] > 0)
        x = onehot(pos[ok], k)
    idx = idx[ok]
    if len(idx) == 0:
        return None, False
    a = lut[rows.arm[idx]]
    unit = np.arange(len(idx)) if units_are_rows else rows.unit[idx]
    score = _scores(q, rows, idx, x)
    return ArmData.from_rows(x, a, unit, rows.w[idx], score=score), score is not None


def treatment_effects(sil: Rows, hum: Rows, instrument: Instrument, *, use_probs: dict[str, bool], ci: float,
                      n_permutations: int, bootstrap: int, seed: int) -> pd.DataFrame:
    """The ``treatment_effects.parquet`` table (module docstring).

    Args:
        sil: encoded responses (with ``arm``). hum: encoded reference (with ``arm``).
        instrument: its ``experiments`` say which questions and arms to compare.
        use_probs: model -> score probability vectors (probs mode), as the analysis decided.
        ci: confidence level. n_permutations: re-deals of the TV randomization test.
        bootstrap: parametric replicates of the effect correlation's interval.
        seed: master seed.
    """
    experiments = getattr(instrument, "experiments", ()) or ()
    if not experiments or sil.model is None:
        return empty_treatment_effects()
    qindex = {q.id: i for i, q in enumerate(instrument.questions)}
    out: list[dict[str, Any]] = []
    for mi, model in enumerate(sil.model_names):
        corr_s: list[tuple[float, float]] = []
        corr_h: list[tuple[float, float]] = []
        for ei, exp in enumerate(experiments):
            arm_ids = [a.id for a in exp.arms]
            c = arm_ids.index(exp.control_arm)
            for qid in exp.question_ids:
                qi = qindex.get(qid)
                if qi is None:
                    continue
                q = instrument.questions[qi]
                if len(q.substantive_codes) < 2:
                    continue
                rng = np.random.default_rng([seed, 8, mi, ei, qi])
                s_idx = np.flatnonzero((sil.model == mi) & (sil.q == qi) & (sil.unit >= 0))
                sd, s_mean = _side(sil, s_idx, q, arm_ids, bool(use_probs.get(model, False)), False)
                hd, h_mean = _side(hum, np.flatnonzero(hum.q == qi), q, arm_ids, False, True)
                if sd is None:
                    continue
                es = arm_effects(sd, len(arm_ids), c, n_permutations=n_permutations, rng=rng)
                eh = arm_effects(hd, len(arm_ids), c, n_permutations=n_permutations, rng=rng) if hd else None
                for a, arm_id in enumerate(arm_ids):
                    if a == c:
                        continue
                    base = {"model": model, "experiment": exp.id, "question_id": q.id, "arm": arm_id,
                            "control": exp.control_arm, "n_silicon_arm": es.n_units[a], "n_silicon_control": es.n_units[c],
                            "n_human_arm": eh.n_units[a] if eh else 0, "n_human_control": eh.n_units[c] if eh else 0}
                    flag = _flag(es, eh, a, c)
                    rows = _arm_rows(base, q, es, eh, a, s_mean and (eh is None or h_mean), ci, flag)
                    out.extend(rows)
                    pick = [r for r in rows if r["statistic"] == "mean"] or \
                        [r for r in rows if r["statistic"] == "share"][:-1]
                    for r in pick:
                        if eh is not None and np.isfinite(r["human"]):
                            corr_s.append((r["silicon"], r["silicon_se"]))
                            corr_h.append((r["human"], r["human_se"]))
        if corr_s:
            (s, ss), (h, sh) = np.array(corr_s).T, np.array(corr_h).T
            r, lo, hi, flag = effect_correlation(s, ss, h, sh, ci=ci, b=max(bootstrap, 1),
                                                 rng=np.random.default_rng([seed, 9, mi]))
            out.append({"model": model, "experiment": "*", "question_id": "*", "arm": "*", "control": "*",
                        "statistic": "effect_corr", "silicon": r, "silicon_low": lo, "silicon_high": hi,
                        "n_silicon_arm": len(s), "n_human_arm": len(h), "flag": flag})
    if not out:
        return empty_treatment_effects()
    return _typed(pd.DataFrame(out).reindex(columns=TREATMENT_COLUMNS))


def _flag(es: Effects, eh: Effects | None, a: int, c: int) -> str | None:
    notes = []
    if eh is None or eh.n_units[a] == 0 or eh.n_units[c] == 0:
        notes.append("no human arm data: the reference does not record this arm")
    if min(es.n_units[a], es.n_units[c]) < 30:
        notes.append(f"few personas per arm ({int(min(es.n_units[a], es.n_units[c]))})")
    return "; ".join(notes) or None


def _arm_rows(base: dict[str, Any], q: Question, es: Effects, eh: Effects | None, a: int, with_mean: bool,
              ci: float, flag: str | None) -> list[dict[str, Any]]:
    """The share (per option), mean and tv rows of one arm."""
    k = len(q.substantive_codes)
    nan = np.full(k + 1, np.nan)
    s_est = np.append(es.share_effect[a], es.mean_effect[a])
    s_se = np.append(es.share_se[a], es.mean_se[a])
    h_est = np.append(eh.share_effect[a], eh.mean_effect[a]) if eh is not None else nan
    h_se = np.append(eh.share_se[a], eh.mean_se[a]) if eh is not None else nan
    s_lo, s_hi, s_p = normal_summary(s_est, s_se, ci)
    h_lo, h_hi, h_p = normal_summary(h_est, h_se, ci)
    ag = compare_effects(s_est, s_se, h_est, h_se, ci)
    out = []
    for j in range(k + 1):
        if j == k and not with_mean:
            continue
        out.append({**base, "statistic": "share" if j < k else "mean",
                    "option": q.substantive_codes[j] if j < k else None,
                    "silicon": s_est[j], "silicon_se": s_se[j], "silicon_low": s_lo[j], "silicon_high": s_hi[j],
                    "silicon_p": s_p[j], "human": h_est[j], "human_se": h_se[j], "human_low": h_lo[j],
                    "human_high": h_hi[j], "human_p": h_p[j], "diff": ag.diff[j], "diff_low": ag.diff_low[j],
                    "diff_high": ag.diff_high[j], "diff_p": ag.diff_p[j], "sign_agree": ag.sign_agree[j],
                    "ratio": ag.ratio[j], "ratio_low": ag.ratio_low[j], "ratio_high": ag.ratio_high[j],
                    "flag": flag})
    out.append({**base, "statistic": "tv", "silicon": es.tv[a], "silicon_p": es.tv_p[a],
                "silicon_null": es.tv_null_mean[a],
                "human": eh.tv[a] if eh is not None else np.nan, "human_p": eh.tv_p[a] if eh is not None else np.nan,
                "human_null": eh.tv_null_mean[a] if eh is not None else np.nan, "flag": flag})
    return out


def _ci(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "–"
    return f"{v:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) and np.isfinite(hi) else "")


def sign_phrase(r: Any, alpha: float = 0.05) -> str:
    """Sign agreement of one effect row in words; a sign read from an effect that is not
    distinguishable from 0 (its p above ``alpha``) is said to be only the point estimates'."""
    agree = r["sign_agree"]
    if agree is None or not np.isfinite(agree):
        return "sign undefined"
    phrase = "same sign" if agree == 1.0 else "opposite sign"
    weak = [f"the {side} effect (p={r[f'{side}_p']:.3f})" for side in ("silicon", "human")
            if np.isfinite(r[f"{side}_p"]) and r[f"{side}_p"] > alpha]
    if weak:
        phrase += f" of the point estimates only: {' and '.join(weak)} is not distinguishable from 0"
    return phrase


def headlines(te: pd.DataFrame) -> list[str]:
    """One line per model × experiment × question × arm: the headline effect (the mean where the
    question has one, else the share of its first option), silicon beside human, and their agreement.
    Used by the terminal summary."""
    out: list[str] = []
    if te is None or te.empty:
        return out
    eff = te[te["statistic"].isin(["share", "mean"])]
    for (model, exp, qid, arm), g in eff.groupby(["model", "experiment", "question_id", "arm"], sort=False):
        r = g[g["statistic"] == "mean"].iloc[0] if (g["statistic"] == "mean").any() else g.iloc[0]
        what = "mean" if r["statistic"] == "mean" else f"share {r['option']}"
        line = (f"{model} · {exp} · {qid}: {arm} vs {r['control']} ({what}): silicon "
                f"{_ci(r['silicon'], r['silicon_low'], r['silicon_high'])}")
        if np.isfinite(r["human"]):
            sign = sign_phrase(r)
            line += (f" vs human {_ci(r['human'], r['human_low'], r['human_high'])}; {sign}; silicon − human "
                     f"{_ci(r['diff'], r['diff_low'], r['diff_high'])} (p={r['diff_p']:.3f})")
        else:
            line += "; no human effect (the reference does not record the arm)"
        out.append(line)
    for _, r in te[te["statistic"] == "effect_corr"].iterrows():
        flag = f" ({r['flag']})" if isinstance(r["flag"], str) else ""
        out.append(f"{r['model']}: correlation of silicon with human effects over {int(r['n_silicon_arm'])} "
                   f"effects: {_ci(r['silicon'], r['silicon_low'], r['silicon_high'])}{flag}")
    return out
