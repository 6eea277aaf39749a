"""Battery scale scores: one number per respondent, compared silicon vs human.

**The scoring rule.** A battery of k ordinal items shares one scale of K substantive points. A
unit's answers are its items' scale positions 1..K (the first substantive option is 1, so a
battery coded 1..K scores on its own codes, as ``psych::scoreItems`` does); a reverse-keyed item
is reflected, x → (K + 1) − x (min + max − x); the unit's **scale score** is the mean over its
answered substantive items. A unit with fewer than ``ceil(min_share · k)`` answered items (at least
one) has no score: with the default ``min_share = 1`` only complete batteries are scored. An item
is unanswered when the unit gave no valid answer, refused, or chose a non-substantive option
(Don't know); nothing is imputed. Scores lie in [1, K].

**Units.** Silicon: a persona's battery in one replicate under one condition, per model (a battery
is dealt as one grid, every item under the same condition, so under a ``within`` design a persona
answers it once per condition and each administration is a unit; a persona's units are one
bootstrap cluster). Human: a reference respondent (``respondent_id``) with its weight. Answers
are the rows' ``answer_code`` (in probs mode too: a score is a property of answers).

**The comparison** is that of a numeric question's raw values (:mod:`simsurvey.analysis.numeric`,
the same effective sizes, sampling nulls, bootstrap, subgroups and calibration) applied to the
scores on [1, K]; the rows are named :data:`SCALE_METRICS` (``scale_*`` for ``value_*``) with
question_id the battery id, as the battery's alpha rows are. Calibration: VALIDATION.md
("Battery scale scores"), ``benchmarks/calibrate_scale.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simsurvey.analysis.battery import reflect
from simsurvey.analysis.numeric import VALUE_METRICS

#: The scale-score metric names (registry entries in :data:`simsurvey.analysis.metrics.METRICS`),
#: aligned with :data:`simsurvey.analysis.numeric.VALUE_METRICS`.
SCALE_METRICS: tuple[str, ...] = tuple("scale_" + n.removeprefix("value_") for n in VALUE_METRICS)


def required_items(k: int, min_share: float) -> int:
    """Answered items a unit needs for a score: ``ceil(min_share · k)``, at least 1."""
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], not {min_share!r}")
    return max(1, math.ceil(min_share * k - 1e-9))


def scale_scores(x: np.ndarray, reverse: Sequence[bool] | np.ndarray, n_levels: int,
                 min_share: float = 1.0) -> np.ndarray:
    """Scale scores of units from their item answers (see the module docstring for the rule).

    Args:
        x: (n, k) answer positions 0..n_levels−1 of the battery's items, NaN where unanswered.
        reverse: (k,) True for a reverse-keyed item.
        n_levels: substantive scale points K.
        min_share: share of the k items a unit must have answered to get a score.

    Returns:
        (n,) scores on 1..K (the mean of the answered items' positions 1..K, reverse-keyed items
        reflected), NaN for a unit with too few answered items.
    """
    x = np.asarray(x, float)
    k = x.shape[1]
    r = reflect(x, reverse, n_levels) + 1.0
    answered = np.isfinite(r).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(answered > 0, np.nansum(r, 1) / np.maximum(answered, 1), np.nan)
    return np.where(answered >= required_items(k, min_share), mean, np.nan)


def frame_scores(rows: pd.DataFrame, items: Sequence[str], codes: Sequence[str], reverse: Sequence[bool],
                 unit: Sequence[str], min_share: float = 1.0) -> pd.DataFrame:
    """Scale scores from long answer rows (one row per unit × item): the report's path to the scores.

    Args:
        rows: columns ``question_id``, ``answer_code`` and the ``unit`` columns; only rows with a
            usable answer (valid, not refused) should be passed; codes outside ``codes``
            (non-substantive options) count as unanswered.
        items: the battery's item ids, in the order of ``reverse``.
        codes: the substantive codes of the battery's scale, in scale order.
        reverse: reverse-keyed flag per item.
        unit: the columns that identify a unit (e.g. model, persona_id, replicate, condition_id).
        min_share: as in :func:`scale_scores`.

    Returns:
        The unit columns of every unit with a score, and ``score``.
    """
    unit = list(unit)
    pos = {c: float(i) for i, c in enumerate(codes)}
    r = rows[rows["question_id"].astype(str).isin(list(items))]
    if r.empty:
        return pd.DataFrame(columns=[*unit, "score"])
    r = r.assign(_pos=r["answer_code"].map(lambda c: pos.get(str(c), np.nan) if pd.notna(c) else np.nan),
                 _item=r["question_id"].astype(str))
    wide = r.groupby([*unit, "_item"], dropna=False, sort=True)["_pos"].mean().unstack("_item")
    wide = wide.reindex(columns=list(items))
    s = scale_scores(wide.to_numpy(float), reverse, len(codes), min_share)
    out = wide.index.to_frame(index=False)
    out["score"] = s
    return out[np.isfinite(s)].reset_index(drop=True)
