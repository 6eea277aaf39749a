"""The shared population codes, and the recodes human data sets need to reach them.

These are the codes of the shared contract (personas and reference data use the same ones), so
a silicon subgroup and a human subgroup line up by equality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Demographic columns shared by personas and the human reference, in order, with their allowed
#: codes in a meaningful order (used for validation, figure axes and labelled integer exports).
DEMOGRAPHIC_CODES: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male"),
    "age": ("18-29", "30-44", "45-64", "65+"),
    "race_ethnicity": ("white_nh", "black_nh", "hispanic", "asian_nh", "other_multiple_nh"),
    "education": (
        "less_than_high_school",
        "high_school_graduate",
        "some_college_or_associates",
        "bachelors",
        "graduate_or_professional",
    ),
    "college": ("no", "yes"),
    "region": ("northeast", "midwest", "south", "west"),
    "household_income": ("under_50k", "50k_100k", "100k_150k", "150k_plus"),
}
DEMOGRAPHICS: tuple[str, ...] = tuple(DEMOGRAPHIC_CODES)

#: Columns of ``reference.parquet`` (shared contract), in order. ``answer_value``: a numeric
#: question's answer on the raw scale (null otherwise); ``experiment`` / ``arm``: the arm the
#: respondent was assigned in a survey experiment the data set records (null otherwise).
REFERENCE_COLUMNS: tuple[str, ...] = (
    "source",
    "respondent_id",
    "weight",
    *DEMOGRAPHICS,
    "question_id",
    "answer_code",
    "answer_value",
    "experiment",
    "arm",
)

# US Census Bureau regions (https://www2.census.gov/geo/pdfs/maps-data/maps/reference/us_regdiv.pdf).
_REGION_STATES: dict[str, tuple[tuple[str, str], ...]] = {
    "northeast": (
        ("CT", "Connecticut"), ("ME", "Maine"), ("MA", "Massachusetts"), ("NH", "New Hampshire"),
        ("RI", "Rhode Island"), ("VT", "Vermont"), ("NJ", "New Jersey"), ("NY", "New York"),
        ("PA", "Pennsylvania"),
    ),
    "midwest": (
        ("IL", "Illinois"), ("IN", "Indiana"), ("MI", "Michigan"), ("OH", "Ohio"), ("WI", "Wisconsin"),
        ("IA", "Iowa"), ("KS", "Kansas"), ("MN", "Minnesota"), ("MO", "Missouri"), ("NE", "Nebraska"),
        ("ND", "North Dakota"), ("SD", "South Dakota"),
    ),
    "south": (
        ("DE", "Delaware"), ("DC", "District of Columbia"), ("FL", "Florida"), ("GA", "Georgia"),
        ("MD", "Maryland"), ("NC", "North Carolina"), ("SC", "South Carolina"), ("VA", "Virginia"),
        ("WV", "West Virginia"), ("AL", "Alabama"), ("KY", "Kentucky"), ("MS", "Mississippi"),
        ("TN", "Tennessee"), ("AR", "Arkansas"), ("LA", "Louisiana"), ("OK", "Oklahoma"), ("TX", "Texas"),
    ),
    "west": (
        ("AZ", "Arizona"), ("CO", "Colorado"), ("ID", "Idaho"), ("MT", "Montana"), ("NV", "Nevada"),
        ("NM", "New Mexico"), ("UT", "Utah"), ("WY", "Wyoming"), ("AK", "Alaska"), ("CA", "California"),
        ("HI", "Hawaii"), ("OR", "Oregon"), ("WA", "Washington"),
    ),
}

#: State (2-letter code or full name, lower case) -> Census region; 50 states + DC.
STATE_REGION: dict[str, str] = {
    key.lower(): region
    for region, states in _REGION_STATES.items()
    for abbr, name in states
    for key in (abbr, name)
}


def age_band(years: pd.Series) -> pd.Series:
    """Age in years -> shared age band; under 18, missing or non-numeric -> null.

    Bands are closed on the left: 18-29, 30-44, 45-64, 65+.
    """
    y = pd.to_numeric(years, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    out = np.full(y.shape, None, dtype=object)
    for lo, hi, code in ((18, 30, "18-29"), (30, 45, "30-44"), (45, 65, "45-64"), (65, np.inf, "65+")):
        out[(y >= lo) & (y < hi)] = code
    return pd.Series(out, index=years.index, dtype="string")


def state_region(states: pd.Series) -> pd.Series:
    """State name or 2-letter code -> Census region (null when missing; unknown -> null too)."""
    s = states.astype("string").str.strip().str.lower()
    return s.map(STATE_REGION).astype("string")


def college_from_education(education: pd.Series) -> pd.Series:
    """Shared ``college`` code derived from the shared ``education`` code."""
    out = education.map(
        {c: ("yes" if c in ("bachelors", "graduate_or_professional") else "no") for c in DEMOGRAPHIC_CODES["education"]}
    )
    return out.astype("string")


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
    return pd.Series([value_key(v) for v in values.tolist()], index=values.index, dtype=object)
