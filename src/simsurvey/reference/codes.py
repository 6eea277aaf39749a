"""The reference schema's columns, and how data values are matched against code maps.

The demographic columns are the population's (:class:`~simsurvey.population.variables.Variables`
from the spec); nothing here names an attribute, so a silicon subgroup and a human subgroup line
up by equality whatever the country.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Columns of ``reference.parquet`` before the demographic ones.
REFERENCE_ID_COLUMNS: tuple[str, ...] = ("source", "respondent_id", "weight")
#: Columns of ``reference.parquet`` after the demographic ones. ``answer_value``: a numeric
#: question's answer on the raw scale (null otherwise); ``experiment`` / ``arm``: the arm the
#: respondent was assigned in a survey experiment the data set records (null otherwise).
REFERENCE_ANSWER_COLUMNS: tuple[str, ...] = ("question_id", "answer_code", "answer_value", "experiment", "arm")


def reference_columns(demographics: Sequence[str]) -> tuple[str, ...]:
    """The columns of ``reference.parquet`` (shared contract), in order, for a population whose
    demographic variables are ``demographics``."""
    return (*REFERENCE_ID_COLUMNS, *demographics, *REFERENCE_ANSWER_COLUMNS)


def demographic_columns(reference: pd.DataFrame) -> list[str]:
    """The demographic columns of a reference-schema frame (between the ids and the answers)."""
    fixed = set(REFERENCE_ID_COLUMNS) | set(REFERENCE_ANSWER_COLUMNS)
    return [c for c in reference.columns if c not in fixed]


def value_key(value: object) -> str | None:
    """A data value as the string used in code maps: 1.0 -> '1', 'x ' -> 'x', NaN -> None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = str(value).strip()
    return text if text else None


def value_keys(values: pd.Series) -> pd.Series:
    """:func:`value_key` over a column (object dtype; None for missing)."""
    if pd.api.types.is_float_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        # Fast path for numeric columns (tens of thousands of rows per question).
        x = values.to_numpy(dtype="float64", na_value=np.nan)
        ok = ~np.isnan(x)
        whole = ok & (np.mod(x, 1.0) == 0)
        out = np.full(x.shape, None, dtype=object)
        out[whole] = x[whole].astype(np.int64).astype(str).astype(object)
        rest = ok & ~whole
        out[rest] = [repr(float(v)) for v in x[rest]]
        return pd.Series(out, index=values.index, dtype=object)
    # Other columns: the key of each distinct value, then a lookup (a string column of tens of
    # thousands of rows has a handful of distinct values).
    arr = values.to_numpy(dtype=object, na_value=None)
    inverse, uniq = pd.factorize(pd.Series(arr, dtype=object), use_na_sentinel=True)
    keys = np.array([value_key(v) for v in uniq] + [None], dtype=object)
    return pd.Series(keys[inverse], index=values.index, dtype=object)
