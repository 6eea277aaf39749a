"""Question-order (context) effects of sequential questionnaires (``context_effects.parquet``).

Under ``design.context: sequential`` with ``question_order: randomized`` each conversation (one
persona x replicate) asks the questions in its own random order, recorded per row as
``question_position`` (0-based) and ``previous_question``. An answer that moves with what was asked
before it is a context effect (an assimilation or contrast effect in the survey literature). Per
model (``side="silicon"``) and for the human reference where it records the order (a
``question_position`` column, ``previous_question`` optional; ``side="human"``), per question, the
rows are:

- ``level="position"``: asked in the first half of the conversation (``condition_a="early"``:
  position < P / 2, P = the number of positions the conversations have) vs the second half
  (``condition_b="late"``);
- ``level="previous"``: one row per other question Q: asked right after Q (``condition_a="after:Q"``)
  vs after anything else or first (``condition_b="otherwise"``);
- ``level="none"``: the contrast cannot be made, ``note`` says why (a fixed question order: no
  randomization to compare against; a human reference without ``question_position`` — none of the
  built-in studies records it — or no sequential rows at all).

Statistics: ``js_divergence`` (base 2) between the two weighted answer distributions (valid,
non-refusal, substantive answers; one-hot, answers mode; a numeric question by its bins),
``mean_difference`` (ordinal and numeric questions: mean scale position a − b, positions 0..K−1 of
the substantive options or bins; NaN otherwise), and a
randomization ``p_value`` of the JS statistic that follows the design: the order is drawn per
conversation, so the labels are permuted across conversations, a conversation's rows of one label
moving together (its cluster: a within design asks a question several times in one conversation);
rows that are copies of one deterministic prompt (logprob elicitation, the same ``prompt_hash``) are
collapsed into one unit first, as :mod:`simsurvey.analysis.order` does. Human units are respondents.
p = (1 + #{JS_perm ≥ JS_obs}) / (1 + n_permutations); NaN with fewer than 2 units on a side.
``p_adjusted``: Holm within one side × model × question (its position row and previous rows).
Calibration (size under no effect, power under a known previous-question effect, by simulation
through the runner): VALIDATION.md, ``benchmarks/calibrate_context.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsurvey.analysis import metrics as M
from simsurvey.analysis.config import AnalysisConfig
from simsurvey.analysis.order import design_p_value, holm
from simsurvey.instruments.models import Instrument, Question

CONTEXT_COLUMNS = ["side", "model", "question_id", "level", "condition_a", "condition_b", "js_divergence",
                   "mean_difference", "p_value", "p_adjusted", "n_a", "n_b", "n_units_a", "n_units_b",
                   "permutation", "note"]
_FLOATS = ("js_divergence", "mean_difference", "p_value", "p_adjusted")
_INTS = ("n_a", "n_b", "n_units_a", "n_units_b")
_NO_HUMAN_ORDER = "the reference data records no question order (no question_position column): no human context effects"


def context_effects(responses: pd.DataFrame, reference: pd.DataFrame | None, instrument: Instrument,
                    cfg: AnalysisConfig, *, seed: int) -> pd.DataFrame:
    """Question-order effects per side, model and question (module docstring).

    Args:
        responses: rows of the ``responses.parquet`` contract (several models allowed).
        reference: rows of the ``reference.parquet`` contract, or None.
        instrument: the instrument (substantive codes, kinds).
        cfg: the ``analysis:`` config (``n_permutations``).
        seed: master seed.

    Returns:
        A DataFrame with :data:`CONTEXT_COLUMNS` (empty when no row was asked in a sequential
        conversation).
    """
    out: list[dict] = []
    if "question_position" not in responses.columns or responses["question_position"].notna().sum() == 0:
        return _frame(out)
    seq = responses[responses["question_position"].notna() & responses["persona_id"].notna()]
    questions = [q for q in instrument.questions
                 if q.kind in ("single_choice", "ordinal", "numeric") and len(q.substantive_codes) >= 2]
    for mi, (model, rows) in enumerate(sorted(seq.groupby("model", sort=True), key=lambda kv: str(kv[0]))):
        units = _silicon_units(rows)
        for qi, q in enumerate(questions):
            sub = units[units["question_id"] == q.id]
            _question(out, "silicon", str(model), q, sub, cfg, np.random.default_rng([seed, 7, mi, qi]))
    if reference is not None and len(reference):
        if "question_position" not in reference.columns or reference["question_position"].notna().sum() == 0:
            for q in questions:
                out.append(_none("human", None, q.id, _NO_HUMAN_ORDER))
        else:
            units = _human_units(reference)
            for qi, q in enumerate(questions):
                _question(out, "human", None, q, units[units["question_id"] == q.id], cfg,
                          np.random.default_rng([seed, 8, qi]))
    return _frame(out)


def _silicon_units(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per test unit: valid answers, deterministic copies (logprob rows of one prompt)
    collapsed; ``cluster`` = the conversation (persona, replicate)."""
    ok = rows["valid"].astype(bool) & ~rows["refusal"].astype(bool) & rows["answer_code"].notna()
    r = rows.loc[ok, ["persona_id", "replicate", "question_id", "question_position", "previous_question",
                      "answer_code", "elicitation", "prompt_hash"]].copy()
    r["weight"] = 1.0
    r["cluster"] = r["persona_id"].astype("int64").astype(str) + "/" + r["replicate"].astype("int64").astype(str)
    det = r["elicitation"] == "logprobs"
    # Copies of one deterministic prompt answer the same: one unit (the first of them).
    return pd.concat([r[~det], r[det].drop_duplicates("prompt_hash")]).sort_index()


def _human_units(reference: pd.DataFrame) -> pd.DataFrame:
    r = reference[reference["question_position"].notna() & reference["answer_code"].notna()].copy()
    if "previous_question" not in r.columns:
        r["previous_question"] = None
    r["weight"] = r["weight"].astype(float) if "weight" in r.columns else 1.0
    r["cluster"] = r["respondent_id"].astype(str)
    return r


def _question(out: list[dict], side: str, model: str | None, q: Question, units: pd.DataFrame,
              cfg: AnalysisConfig, rng: np.random.Generator) -> None:
    codes = list(q.substantive_codes)
    units = units[units["answer_code"].astype(str).isin(codes)]
    if units.empty:
        return
    first = len(out)
    x = np.zeros((len(units), len(codes)))
    x[np.arange(len(units)), units["answer_code"].astype(str).map({c: i for i, c in enumerate(codes)}).to_numpy()] = 1.0
    w = units["weight"].to_numpy(dtype=float)
    cluster = units["cluster"].astype(str).to_numpy()
    pos = units["question_position"].to_numpy(dtype=float)
    n_pos = _positions(units)
    if len(np.unique(pos)) < 2:
        out.append(_none(side, model, q.id, f"asked only at position {int(pos[0])}: a fixed question order has no "
                                            "randomization to compare against"))
        return
    early = pos < n_pos / 2
    out.append(_contrast(side, model, q, "position", "early", "late", early, x, w, cluster, cfg, rng))
    prev = units["previous_question"].astype("string").fillna("").to_numpy()
    for other in sorted(set(prev) - {""}):
        out.append(_contrast(side, model, q, "previous", f"after:{other}", "otherwise", prev == other, x, w,
                             cluster, cfg, rng))
    family = out[first:]
    for r, adj in zip(family, holm(np.array([r["p_value"] for r in family], dtype=float))):
        r["p_adjusted"] = float(adj)


def _positions(units: pd.DataFrame) -> int:
    # The conversations' length: the highest position any row reached + 1 (every conversation
    # of a sequential design asks the same number of questions).
    return int(units["question_position"].max()) + 1 if len(units) else 0


def _contrast(side: str, model: str | None, q: Question, level: str, ca: str, cb: str, in_a: np.ndarray,
              x: np.ndarray, w: np.ndarray, cluster: np.ndarray, cfg: AnalysisConfig,
              rng: np.random.Generator) -> dict:
    wx = w[:, None] * x
    da, db = wx[in_a].sum(0), wx[~in_a].sum(0)
    js = float(M.js_divergence(da, db)) if da.sum() > 0 and db.sum() > 0 else float("nan")
    mean_diff = float("nan")
    if q.kind in ("ordinal", "numeric") and da.sum() > 0 and db.sum() > 0:  # numeric: bins in scale order
        score = np.arange(x.shape[1], dtype=float)
        mean_diff = float(da @ score / da.sum() - db @ score / db.sum())
    # Clusters: a conversation's units of one label move together.
    key = pd.factorize(pd.Series(cluster).astype(str) + np.where(in_a, "|a", "|b"))[0]
    n_cl = int(key.max()) + 1
    single = np.zeros((n_cl, x.shape[1]))
    np.add.at(single, key, wx)
    single_is_a = np.zeros(n_cl, dtype=bool)
    single_is_a[key] = in_a
    empty = np.zeros((0, x.shape[1]))
    p = design_p_value(empty, empty, single, single_is_a, cfg.n_permutations, rng)
    n_ua, n_ub = int(single_is_a.sum()), int((~single_is_a).sum())
    return {"side": side, "model": model, "question_id": q.id, "level": level, "condition_a": ca, "condition_b": cb,
            "js_divergence": js, "mean_difference": mean_diff, "p_value": p, "p_adjusted": float("nan"),
            "n_a": int(in_a.sum()), "n_b": int((~in_a).sum()), "n_units_a": n_ua, "n_units_b": n_ub,
            "permutation": "none" if not np.isfinite(p) else "between conversations" if side == "silicon" else "between respondents",
            "note": "fewer than 2 independent units on a side: no test" if min(n_ua, n_ub) < 2 else None}


def _none(side: str, model: str | None, qid: str, note: str) -> dict:
    nan = float("nan")
    return {"side": side, "model": model, "question_id": qid, "level": "none", "condition_a": None, "condition_b": None,
            "js_divergence": nan, "mean_difference": nan, "p_value": nan, "p_adjusted": nan,
            "n_a": 0, "n_b": 0, "n_units_a": 0, "n_units_b": 0, "permutation": "none", "note": note}


def _frame(out: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(out, columns=CONTEXT_COLUMNS)
    for c in CONTEXT_COLUMNS:
        if c in _FLOATS:
            df[c] = df[c].astype("float64")
        elif c in _INTS:
            df[c] = df[c].astype("int64")
        else:
            df[c] = df[c].astype("string")
    return df
