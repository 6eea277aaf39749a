from __future__ import annotations

import numpy as np
import pandas as pd

from simsurvey.reference.builtin import age_band, college_from_education, state_region, us_variables
from simsurvey.reference.codes import value_key, value_keys

STATE_REGION = us_variables().places["region"]


def test_age_band_edges_by_hand() -> None:
    years = pd.Series([17, 18, 29, 29.9, 30, 44, 45, 64, 65, 99, np.nan, "x"])
    got = age_band(years).tolist()
    assert got == [pd.NA, "18-29", "18-29", "18-29", "30-44", "30-44", "45-64", "45-64", "65+", "65+", pd.NA, pd.NA]


def test_census_regions_cover_50_states_and_dc() -> None:
    names = {k for k in STATE_REGION if len(k) > 2}
    abbrs = {k for k in STATE_REGION if len(k) == 2}
    assert len(names) == 51 and len(abbrs) == 51
    counts = pd.Series([STATE_REGION[a] for a in abbrs]).value_counts().to_dict()
    # Census Bureau: 9 northeast, 12 midwest, 16 states + DC south, 13 west
    assert counts == {"south": 17, "west": 13, "midwest": 12, "northeast": 9}
    assert state_region(pd.Series(["Texas", " ny", "District of Columbia", None, "Narnia"])).tolist() == [
        "south", "northeast", "south", pd.NA, pd.NA,
    ]


def test_college_from_education() -> None:
    edu = pd.Series(["bachelors", "high_school_graduate", "graduate_or_professional", None], dtype="string")
    assert college_from_education(edu).tolist() == ["yes", "no", "yes", pd.NA]


def test_value_keys_match_value_key() -> None:
    floats = pd.Series([1.0, 2.0, np.nan, 2.5, -3.0])
    assert value_keys(floats).tolist() == [value_key(v) for v in floats] == ["1", "2", None, "2.5", "-3"]
    ints = pd.Series([1, 2], dtype="Int64")
    assert value_keys(ints).tolist() == ["1", "2"]
    objs = pd.Series(["a ", "", None, 7, True], dtype=object)
    assert value_keys(objs).tolist() == ["a", None, None, "7", "1"]
