"""User mappings that express real data: tables over several columns, expressions, ranges, and
the checks against a file's value labels, weights and missing-value codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml

from simsurvey.errors import UserError
from simsurvey.instruments import Instrument, Option, Question, SurveyConfig
from simsurvey.reference import load_reference, reference_provenance
from simsurvey.reference.builtin import us_variables
from simsurvey.reference.derive import evaluate_expression
from simsurvey.reference.labels import normalize, says_missing
from simsurvey.reference.userdata import read_mapping

US = us_variables()

INST = Instrument(
    id="t",
    title="t",
    questions=(
        Question(id="pid3", text="?", kind="single_choice",
                 options=(Option(code="dem", label="Democrat"), Option(code="rep", label="Republican"),
                          Option(code="ind", label="Independent"),
                          Option(code="dk", label="Don't know", non_substantive=True))),
        Question(id="abany", text="?", kind="single_choice",
                 options=(Option(code="yes", label="Yes"), Option(code="no", label="No"))),
    ),
)

DATA = pd.DataFrame({
    "id": [1, 2, 3, 4, 5, 6],
    "wt": [1.0, 2.0, 1.0, 1.0, 0.5, 1.0],
    "sex": [1, 2, 2, 1, 2, 1],
    "race": [1, 2, 3, 1, 2, 3],
    "hisp": [0, 0, 0, 1, 9, 1],
    "birthyr": [1990, 1980, 1960, 1940, 9999, 1975],
    "inc": [10000, 49999, 50000, 120000, 99999, 0],
    "party": [1, 2, 3, 1, 8, 2],
    "ab": [1, 2, 1, 2, 1, 2],
})

SEX = {"column": "sex", "codes": {1: "male", 2: "female"}}
RACE = {"columns": ["race", "hisp"], "missing": [9], "table": [
    {"race": 1, "hisp": 0, "code": "white_nh"},
    {"race": 2, "hisp": 0, "code": "black_nh"},
    {"race": "*", "hisp": 1, "code": "hispanic"},
    {"race": [3, 4], "hisp": 0, "code": "other_multiple_nh"},
]}
AGE = {"expression": "2016 - birthyr", "years": True, "missing": [9999]}
INCOME = {"column": "inc", "ranges": {"under_50k": [0, 49999], "50k_100k": [50000, 99999], "100k_150k": [100000, 149999],
                                     "150k_plus": [150000, None]}}
QUESTIONS = {"pid3": {"column": "party", "codes": {1: "dem", 2: "rep", 3: "ind", 8: "dk"}},
             "abany": {"column": "ab", "codes": {1: "yes", 2: "no"}}}


def _files(tmp_path: Path, *, data: pd.DataFrame = DATA, ext: str = ".csv", labels: dict | None = None,
           demographics: dict | None = None, questions: dict | None = None, **changes) -> Path:
    f = tmp_path / f"data{ext}"
    if ext == ".csv":
        data.to_csv(f, index=False)
    elif ext == ".sav":
        pyreadstat.write_sav(data, str(f), variable_value_labels=labels or {})
    else:
        pyreadstat.write_dta(data, str(f), variable_value_labels=labels or {})
    mapping = {"id": "mine", "file": f.name, "respondent_id": "id", "weight": "wt",
               "demographics": {"sex": SEX, "race_ethnicity": RACE, "age": AGE} if demographics is None else demographics,
               "questions": QUESTIONS if questions is None else questions, **changes}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return path


def _load(path: Path, inst: Instrument = INST) -> pd.DataFrame:
    return load_reference(inst, SurveyConfig(reference=[str(path)]), US)


def _people(ref: pd.DataFrame) -> pd.DataFrame:
    return ref[ref.question_id == "abany"].set_index("respondent_id")


def test_a_table_combines_two_columns(tmp_path: Path) -> None:
    got = _people(_load(_files(tmp_path)))["race_ethnicity"].fillna("-")
    # by hand: (1,0) white; (2,0) black; (3,0) other; (1,1) and (3,1) hispanic whatever the race;
    # (2,9): no row matches and 9 is missing
    assert got.to_dict() == {"1": "white_nh", "2": "black_nh", "3": "other_multiple_nh", "4": "hispanic",
                             "5": "-", "6": "hispanic"}


def test_a_table_row_for_no_value_is_an_error_naming_the_values(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"mine.yaml: demographics.race_ethnicity: no table row matches race=4, hisp=1|"
                                        r"no table row matches race=5, hisp=0") as info:
        _load(_files(tmp_path, data=DATA.assign(race=[1, 2, 5, 1, 2, 3])))
    assert "race=5, hisp=0" in str(info.value) and "\n" not in str(info.value)


def test_a_table_gives_a_questions_option(tmp_path: Path) -> None:
    q = {"columns": ["ab", "party"], "table": [{"ab": 1, "party": "*", "code": "yes"},
                                             {"ab": 2, "party": [1, 2, 3], "code": "no"}], "missing": [8]}
    ref = _load(_files(tmp_path, questions={**QUESTIONS, "abany": q}))
    # respondent 5 answered party 8 (missing): '*' matches only non-missing values, so no row matches
    assert _people(ref)["answer_code"].to_dict() == {"1": "yes", "2": "no", "3": "yes", "4": "no", "6": "no"}


def test_an_expression_gives_age_in_years(tmp_path: Path) -> None:
    ref = _load(_files(tmp_path))
    # 2016 - birthyr = 26, 36, 56, 76, (9999 missing), 41
    assert _people(ref)["age"].fillna("-").to_dict() == {"1": "18-29", "2": "30-44", "3": "45-64", "4": "65+", "5": "-",
                                             "6": "30-44"}


def test_an_expression_without_its_missing_code_is_not_an_age(tmp_path: Path) -> None:
    path = _files(tmp_path, demographics={"age": {**AGE, "missing": []}})
    with pytest.raises(UserError, match=r"demographics.age: expression '2016 - birthyr' value '-7983' is not an age"
                                        r" in years \(0-120\); add it to missing"):
        _load(path)


def test_an_expression_equals_numpy(tmp_path: Path) -> None:
    """Arithmetic, comparisons, and/or and nested where() against the same formula in numpy."""
    rng = np.random.default_rng(3)
    raw = pd.DataFrame({"a": rng.integers(-5, 6, 200).astype(float), "b": rng.integers(1, 9, 200).astype(float)})
    text = "where((a > 0) and (b < 5), a * b - 1, where(a == 0, 100, (a + b) / 2)) + b ** 2 % 7 // 2"
    got, miss = evaluate_expression(raw, text, [], what="t")
    a, b = raw["a"].to_numpy(), raw["b"].to_numpy()
    want = np.where((a > 0) & (b < 5), a * b - 1, np.where(a == 0, 100, (a + b) / 2)) + b ** 2 % 7 // 2
    np.testing.assert_allclose(got.to_numpy(), want)
    assert not miss.any()


@pytest.mark.parametrize(("expression", "token"), [
    ("__import__('os').system('true')", "__import__('os').system('true')"),
    ("birthyr.__class__", "birthyr.__class__"),
    ("abs(birthyr)", "abs(birthyr)"),
    ("2016 - birthyr if birthyr else 0", "2016 - birthyr if birthyr else 0"),
    ("birthyr + 'x'", "'x'"),
    ("[birthyr][0]", "[birthyr][0]"),
])
def test_an_expression_refuses_anything_else(tmp_path: Path, expression: str, token: str) -> None:
    path = _files(tmp_path, demographics={"age": {"expression": expression, "years": True}})
    with pytest.raises(UserError) as info:
        _load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: demographics.age: expression") and f"'{token}' is not allowed" in msg
    assert "\n" not in msg


def test_an_expression_naming_an_unknown_column(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"demographics.age: column 'birthyear' is not in the data file"):
        _load(_files(tmp_path, demographics={"age": {"expression": "2016 - birthyear", "years": True}}))


def test_ranges_code_a_number_with_inclusive_bounds(tmp_path: Path) -> None:
    ref = _load(_files(tmp_path, demographics={"household_income": INCOME}))
    assert _people(ref)["household_income"].to_dict() == {
        "1": "under_50k", "2": "under_50k", "3": "50k_100k", "4": "100k_150k", "5": "50k_100k", "6": "under_50k"}


def test_a_value_in_no_range_is_an_error(tmp_path: Path) -> None:
    gap = {"column": "inc", "ranges": {**INCOME["ranges"], "under_50k": [1, 49999]}}
    with pytest.raises(UserError, match=r"demographics.household_income: column 'inc' value '0' is in no range"):
        _load(_files(tmp_path, demographics={"household_income": gap}))
    # ...unless it is missing, or a special value under codes
    for extra in ({"missing": [0]}, {"codes": {0: "under_50k"}}):
        _load(_files(tmp_path, demographics={"household_income": {**gap, **extra}}))


def test_ranges_code_a_question(tmp_path: Path) -> None:
    q = {"column": "party", "ranges": {"dem": [1, 1], "rep": [2, 2], "ind": [3, 7]}, "codes": {8: "dk"}}
    ref = _load(_files(tmp_path, questions={"pid3": q}))
    assert ref.set_index("respondent_id")["answer_code"].to_dict() == {
        "1": "dem", "2": "rep", "3": "ind", "4": "dem", "5": "dk", "6": "rep"}


@pytest.mark.parametrize(("entry", "match"), [
    ({"column": "inc", "expression": "inc"}, "give one of column, columns"),
    ({"columns": ["race"], "codes": {1: "x"}}, "columns and table go together"),
    ({**RACE, "table": [{"race": 1, "code": "white_nh"}]}, "table row 1: no value for column 'hisp'"),
    ({**RACE, "table": [{"race": 1, "hisp": 0}]}, "table row 1: needs a code"),
    ({**RACE, "table": [{"race": 1, "hisp": 0, "sex": 1, "code": "white_nh"}]}, "table row 1: 'sex' is not one of columns"),
    ({**RACE, "codes": {1: "white_nh"}}, "a table gives the codes itself"),
    ({"column": "inc", "ranges": {"a": [0, 10], "b": [10, 20]}}, "ranges.b overlaps ranges.a"),
    ({"column": "inc", "ranges": {"a": [10, 0]}}, "ranges.a: low 10 is above high 0"),
    ({"column": "inc", "ranges": {"a": [0, 10]}, "years": True}, "years and ranges cannot both be set"),
    ({"expression": "inc", "states": True}, "states: true reads a column"),
])
def test_mapping_entry_mistakes_are_one_line(tmp_path: Path, entry: dict, match: str) -> None:
    path = _files(tmp_path, demographics={"race_ethnicity": entry})
    with pytest.raises(UserError, match=match) as info:
        read_mapping(path)
    assert str(info.value).startswith(f"{path}: ") and "demographics.race_ethnicity" in str(info.value)
    assert "\n" not in str(info.value)


def test_an_unknown_code_in_a_table_or_ranges(tmp_path: Path) -> None:
    bad = {**RACE, "table": [*RACE["table"], {"race": 5, "hisp": 0, "code": "asian"}]}
    with pytest.raises(UserError, match=r"demographics.race_ethnicity: unknown code 'asian'"):
        _load(_files(tmp_path, demographics={"race_ethnicity": bad}))
    q = {"column": "party", "ranges": {"dem": [1, 1], "green": [2, 8]}}
    with pytest.raises(UserError, match=r"questions.pid3: unknown option code 'green'"):
        _load(_files(tmp_path, questions={"pid3": q}))


def test_a_weight_of_zero_for_every_respondent_of_a_question(tmp_path: Path) -> None:
    """Fails before: the question's human distribution had no weight (every share NaN), exit 0."""
    data = DATA.assign(wt=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], ab=[None] * 6)
    data.loc[[0, 1], "ab"] = [1, 2]
    data.loc[[0, 1], "wt"] = 0.0
    with pytest.raises(UserError, match=r"mine.yaml: weight: column 'wt' is 0 for all 2 respondents who answered"
                                        r" question 'abany'"):
        _load(_files(tmp_path, data=data))


def test_a_text_age_is_not_silently_dropped(tmp_path: Path) -> None:
    """Fails before: '89 or older' read as no age (null), exit 0."""
    data = DATA.assign(agey=["25", "89 or older", "40", "33", "51", "60"])
    with pytest.raises(UserError, match=r"demographics.age: column 'agey' value '89 or older' is not an age in years"):
        _load(_files(tmp_path, data=data, demographics={"age": {"column": "agey", "years": True}}))


def test_an_age_of_999_needs_missing(tmp_path: Path) -> None:
    data = DATA.assign(agey=[25, 999, 40, 33, 51, 60])
    age = {"column": "agey", "years": True}
    with pytest.raises(UserError, match=r"demographics.age: column 'agey' value '999' is not an age in years \(0-120\)"):
        _load(_files(tmp_path, data=data, demographics={"age": age}))
    got = _people(_load(_files(tmp_path, data=data, demographics={"age": {**age, "missing": [999]}})))["age"]
    assert got.isna().tolist() == [False, True, False, False, False, False]


SEX_LABELS = {"sex": {1: "Male", 2: "Female"}}


@pytest.mark.parametrize("ext", [".sav", ".dta"])
def test_swapped_codes_against_the_files_labels(tmp_path: Path, ext: str) -> None:
    """Fails before: 1 labelled Male mapped to female loaded (and ran) with exit 0."""
    swapped = {"sex": {"column": "sex", "codes": {1: "female", 2: "male"}}}
    path = _files(tmp_path, ext=ext, labels=SEX_LABELS, demographics=swapped)
    with pytest.raises(UserError) as info:
        _load(path)
    assert str(info.value) == (f"{path}: demographics.sex: column 'sex' value '1' is labelled 'Male' in the file but"
                               " mapped to 'female' (Female); the label names 'male': are the codes swapped?")
    ok = _load(_files(tmp_path, ext=ext, labels=SEX_LABELS, demographics={"sex": SEX}))
    assert _people(ok)["sex"].tolist() == ["male", "female", "female", "male", "female", "male"]


def test_swapped_question_codes_and_labels_that_are_not_contradictions(tmp_path: Path) -> None:
    labels = {"party": {1: "1. Republican", 2: "Democrat", 3: "Independent", 8: "DK"}}
    with pytest.raises(UserError, match=r"questions.pid3: column 'party' value '1' is labelled '1. Republican' in the"
                                        r" file but mapped to 'dem' \(Democrat\); the label names 'rep'"):
        _load(_files(tmp_path, ext=".sav", labels=labels))
    # labels that name no category, or the mapped one (by label or by code), are not flagged
    fine = {"party": {1: "Strong Democrat", 2: "REP", 3: "independent.", 8: "Don't know"},
            "ab": {1: "YES, should be possible", 2: "no"}}
    ref = _load(_files(tmp_path, ext=".sav", labels=fine))
    assert set(ref[ref.question_id == "pid3"]["answer_code"]) == {"dem", "rep", "ind", "dk"}


def test_a_missing_value_code_mapped_to_a_substantive_code(tmp_path: Path) -> None:
    labels = {"party": {1: "Democrat", 2: "Republican", 3: "Independent", 8: "Refused"}}
    q = {**QUESTIONS, "pid3": {"column": "party", "codes": {1: "dem", 2: "rep", 3: "ind", 8: "ind"}}}
    with pytest.raises(UserError) as info:
        _load(_files(tmp_path, ext=".sav", labels=labels, questions=q))
    assert "questions.pid3: column 'party' value '8' is labelled 'Refused' in the file, a missing-value code, but" \
           " mapped to 'ind' (Independent); add it to missing, or map it to a non-substantive option" in str(info.value)
    # mapped to the non-substantive Don't know, or listed in missing: fine
    _load(_files(tmp_path, ext=".sav", labels=labels))
    q["pid3"] = {"column": "party", "codes": {1: "dem", 2: "rep", 3: "ind"}, "missing": [8]}
    _load(_files(tmp_path, ext=".sav", labels=labels, questions=q))


def test_a_labelled_missing_age_read_as_years(tmp_path: Path) -> None:
    """Fails before: age 98 'Don't know' was read as a 98-year-old (65+), exit 0."""
    data = DATA.assign(agey=[25, 98, 40, 33, 51, 99])
    labels = {"agey": {98: "Don't know", 99: "NA, no answer"}}
    age = {"column": "agey", "years": True}
    with pytest.raises(UserError, match=r"demographics.age: column 'agey' value '98' is labelled 'Don't know' in the"
                                        r" file, a missing-value code, but read as data; add it to missing"):
        _load(_files(tmp_path, data=data, ext=".sav", labels=labels, demographics={"age": age}))
    with pytest.raises(UserError, match=r"value '99' is labelled 'NA, no answer'"):
        _load(_files(tmp_path, data=data, ext=".sav", labels=labels, demographics={"age": {**age, "missing": [98]}}))
    got = _load(_files(tmp_path, data=data, ext=".sav", labels=labels, demographics={"age": {**age, "missing": [98, 99]}}))
    assert _people(got)["age"].isna().sum() == 2


def test_a_labelled_missing_value_matched_by_a_tables_star(tmp_path: Path) -> None:
    labels = {"race": {1: "White", 2: "Black", 3: "Other", 9: "No answer"}}
    data = DATA.assign(race=[1, 2, 3, 9, 2, 3], hisp=[0, 0, 0, 1, 0, 1])
    with pytest.raises(UserError, match=r"demographics.race_ethnicity: column 'race' value '9' is labelled 'No answer'"):
        _load(_files(tmp_path, data=data, ext=".sav", labels=labels,
                     demographics={"race_ethnicity": {**RACE, "missing": []}}))
    _load(_files(tmp_path, data=data, ext=".sav", labels=labels,
                 demographics={"race_ethnicity": {**RACE, "missing": [9]}}))


def test_a_missing_value_that_never_occurs_is_a_warning(tmp_path: Path) -> None:
    q = {**QUESTIONS, "abany": {"column": "ab", "codes": {1: "yes", 2: "no"}, "missing": [8, 9]}}
    path = _files(tmp_path, questions=q)
    prov = reference_provenance(SurveyConfig(reference=[str(path)]), INST, US)
    assert prov["warnings"] == [f"{path}: questions.abany: missing value '8' never occurs in column 'ab'",
                                f"{path}: questions.abany: missing value '9' never occurs in column 'ab'"]
    # the table's 9 does occur (in hisp): no warning for it
    assert not any("race_ethnicity" in w for w in prov["warnings"])


def test_label_normalization() -> None:
    assert normalize("1. Strongly agree") == "strongly agree"
    assert normalize(".d: Don't know") == "dont know"
    assert normalize("(2) FEMALE") == "female"
    assert normalize("some_college") == "some college"
    for label in ("Don't know", "DK", "Refused", "No answer", "NA", "N/A", "Inapplicable", "IAP", "Skipped on web",
                  "Not asked", ".i: Inapplicable", "Don't know / not sure", "Prefer not to say"):
        assert says_missing(label), label
    for label in ("No", "None of these", "Not at all", "National", "Nothing", "Knowledgeable", "Never"):
        assert not says_missing(label), label


def test_an_expression_with_codes_gives_a_questions_option(tmp_path: Path) -> None:
    q = {"expression": "where(party == 8, 0, where(party == 1, 1, 2))", "codes": {1: "dem", 2: "rep"}, "missing": []}
    # 8 -> 0, which has no code: the mistake names the expression and the value
    with pytest.raises(UserError, match=r"question 'pid3': expression '.*': value '0' has no option code"):
        _load(_files(tmp_path, questions={"pid3": q}))
    ref = _load(_files(tmp_path, questions={"pid3": {**q, "missing": [8]}}))
    assert ref.set_index("respondent_id")["answer_code"].to_dict() == {
        "1": "dem", "2": "rep", "3": "rep", "4": "dem", "6": "rep"}


def test_an_expression_gives_a_numeric_questions_value(tmp_path: Path) -> None:
    therm = Question.model_validate({"id": "therm", "text": "Warmth?", "kind": "numeric", "scale": {"min": 0, "max": 100}})
    inst = Instrument(id="t", title="t", questions=(therm,))
    data = DATA.assign(dem=[80, 20, 55, 999, 0, 100], rep=[10, 90, 50, 5, 0, 100])
    q = {"therm": {"expression": "(dem - rep + 100) / 2", "numeric": True, "missing": [999]}}
    ref = _load(_files(tmp_path, data=data, questions=q), inst).set_index("respondent_id")
    assert ref["answer_value"].to_dict() == {"1": 85.0, "2": 15.0, "3": 52.5, "5": 50.0, "6": 50.0}


def test_numeric_looking_codes_in_ranges_and_quoted_booleans_in_a_table(tmp_path: Path) -> None:
    scale = Question(id="scale", text="?", kind="ordinal",
                     options=(Option(code="1", label="Low"), Option(code="2", label="High")))
    inst = Instrument(id="t", title="t", questions=(scale,))
    ref = _load(_files(tmp_path, questions={"scale": {"column": "inc", "ranges": {1: [0, 49999], 2: [50000, None]}}}), inst)
    assert sorted(ref["answer_code"]) == ["1", "1", "1", "2", "2", "2"]
    path = _files(tmp_path, demographics={"race_ethnicity": {**RACE, "table": [{"race": True, "hisp": 0, "code": "white_nh"}]}})
    with pytest.raises(UserError, match=r"demographics.race_ethnicity: table row 1: race is a YAML true/false; quote it"):
        read_mapping(path)


def test_swapped_codes_stop_the_command_line_with_exit_2(tmp_path: Path) -> None:
    """Fails before: the run went ahead with the sexes swapped, exit 0."""
    import os
    import subprocess
    import sys

    from simsurvey.config import PROJECT_ROOT

    swapped = {"sex": {"column": "sex", "codes": {1: "female", 2: "male"}}}
    path = _files(tmp_path, ext=".sav", labels=SEX_LABELS, demographics=swapped, questions={"abany": QUESTIONS["abany"]})
    inst = tmp_path / "inst.yaml"
    inst.write_text(yaml.safe_dump({"id": "t", "title": "t", "questions": [
        {"id": "abany", "text": "?", "kind": "single_choice",
         "options": [{"code": "yes", "label": "Yes"}, {"code": "no", "label": "No"}]}]}), encoding="utf-8")
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simsurvey", f"survey.instrument={inst}", f"survey.reference=[{path}]",
         "model=baseline/majority", "baselines=[]", "population.n=20", f"hydra.run.dir={run_dir}"],
        check=False, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", "SIMSURVEY_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "are the codes swapped?" in lines[0]
    assert not run_dir.exists()
