from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
import yaml

from simsurvey.errors import UserError
from simsurvey.instruments import Instrument, Option, Question, SurveyConfig
from simsurvey.reference import load_reference, reference_columns, reference_provenance
from simsurvey.reference.builtin import us_variables

US = us_variables()
REFERENCE_COLUMNS = reference_columns(US.names)

INST = Instrument(
    id="t",
    title="t",
    questions=(
        Question(
            id="pid3",
            text="?",
            kind="single_choice",
            options=(Option(code="dem", label="Democrat"), Option(code="rep", label="Republican"),
                     Option(code="ind", label="Independent")),
        ),
        Question(
            id="trust",
            text="?",
            kind="ordinal",
            options=(Option(code="low", label="Low"), Option(code="high", label="High")),
        ),
    ),
)

DATA = pd.DataFrame(
    {
        "caseid": [101, 102, 103, 104, 105],
        "wt": [0.5, 1.5, 1.0, 2.0, 1.0],
        "gender": [1, 2, 2, 1, 9],
        "agey": [22, 35, 50, 70, 17],
        "st": ["TX", "Ohio", "ca", "Maine", "NY"],
        "edu": [1, 4, 5, 2, 3],
        "q1": [1, 2, 3, 98, None],
        "q2": [1, 2, 1, 2, 1],
    }
)
MAPPING = {
    "id": "mine",
    "description": "five hand-made respondents",
    "file": "data.csv",
    "respondent_id": "caseid",
    "weight": "wt",
    "demographics": {
        "sex": {"column": "gender", "codes": {1: "male", 2: "female"}, "missing": [9]},
        "age": {"column": "agey", "years": True},
        "region": {"column": "st", "states": True},
        "education": {"column": "edu", "codes": {1: "less_than_high_school", 2: "high_school_graduate",
                                                 3: "some_college_or_associates", 4: "bachelors",
                                                 5: "graduate_or_professional"}},
    },
    "questions": {
        "pid3": {"column": "q1", "codes": {1: "dem", 2: "rep", 3: "ind"}, "missing": [98]},
        "trust": {"column": "q2", "codes": {1: "low", 2: "high"}},
    },
}


def _setup(tmp_path: Path, *, ext: str = ".csv", data: pd.DataFrame = DATA, **changes) -> Path:
    f = tmp_path / f"data{ext}"
    if ext == ".csv":
        data.to_csv(f, index=False)
    elif ext == ".parquet":
        data.to_parquet(f)
    elif ext == ".dta":
        pyreadstat.write_dta(data, str(f))
    elif ext == ".sav":
        pyreadstat.write_sav(data, str(f))
    m = {**MAPPING, "file": f.name, **changes}
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(m), encoding="utf-8")
    return p


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".dta", ".sav"])
def test_user_file_maps_by_hand(tmp_path: Path, ext: str) -> None:
    path = _setup(tmp_path, ext=ext)
    ref = load_reference(INST, SurveyConfig(reference=[str(path)]), US)
    assert tuple(ref.columns) == REFERENCE_COLUMNS
    pid = ref[ref.question_id == "pid3"].set_index("respondent_id")
    # 104 answered 98 (missing), 105 left it empty: both dropped
    assert pid["answer_code"].to_dict() == {"101": "dem", "102": "rep", "103": "ind"}
    assert pid["weight"].to_dict() == {"101": 0.5, "102": 1.5, "103": 1.0}
    trust = ref[ref.question_id == "trust"].set_index("respondent_id")
    assert len(trust) == 5
    assert trust["sex"].tolist()[:4] == ["male", "female", "female", "male"] and pd.isna(trust["sex"].iloc[4])
    assert trust["age"].tolist()[:4] == ["18-29", "30-44", "45-64", "65+"] and pd.isna(trust["age"].iloc[4])
    assert trust["region"].tolist() == ["south", "midwest", "west", "northeast", "northeast"]
    assert trust["college"].tolist() == ["no", "yes", "yes", "no", "no"]
    assert trust["race_ethnicity"].isna().all() and trust["household_income"].isna().all()
    assert set(ref["source"]) == {"mine"}


def test_provenance_of_a_user_file(tmp_path: Path) -> None:
    path = _setup(tmp_path)
    prov = reference_provenance(SurveyConfig(reference=[str(path)]), INST, US)
    assert prov["sources"]["mine"]["description"] == "five hand-made respondents"
    assert prov["questions"]["pid3"] == [{"source": "mine", "variable": "q1", "n": 3, "n_missing_dropped": 2}]


@pytest.mark.parametrize(
    ("changes", "data", "match"),
    [
        ({"questions": {"pid3": {"column": "q1", "codes": {1: "dem", 2: "rep"}, "missing": [98]}}}, None,
         r"mine.yaml: question 'pid3': column 'q1': value '3' has no option code"),
        ({"questions": {"pid3": {"column": "qq", "codes": {1: "dem"}}}}, None,
         r"mine.yaml: questions.pid3: column 'qq' is not in the data file"),
        ({"questions": {"pidx": {"column": "q1", "codes": {1: "dem"}}}}, None,
         r"mine.yaml: questions.pidx: no such question in instrument 't'"),
        ({"questions": {"pid3": {"column": "q1", "codes": {1: "green"}}}}, None,
         r"mine.yaml: questions.pid3: unknown option code 'green'"),
        ({"questions": {"pid3": {"column": "q1", "codes": {4: "dem"}, "missing": [1, 2, 3, 98]}}},
         None, r"question 'pid3': column 'q1': no respondent has a mapped answer"),
        ({"demographics": {"sex": {"column": "gender", "codes": {1: "male", 2: "female"}}}}, None,
         r"mine.yaml: demographics.sex: column 'gender' value '9' has no code"),
        ({"demographics": {"sex": {"column": "gender", "codes": {1: "man", 2: "woman", 9: "x"}}}}, None,
         r"demographics.sex: unknown code 'man'"),
        ({"demographics": {"sex": {"column": "gender", "codes": {1: "male"}}}}, DATA.assign(gender=[None] * 5),
         r"demographics.sex: column 'gender' has no mapped value"),
        ({"demographics": {"sex": {"column": "gender", "codes": {1: "male"}, "missing": [1]}}}, None,
         r"mine.yaml: demographics.sex: value '1' is both in codes and in missing"),
        ({"demographics": {"religion": {"column": "gender", "codes": {1: "x"}}}}, None,
         r"demographics.religion: not an attribute of population 'us_adults'"),
        ({"demographics": {"region": {"column": "st", "states": True}}}, DATA.assign(st=["TX"] * 4 + ["Narnia"]),
         r"demographics.region: column 'st' value 'Narnia' is not a place of the population's states file"),
        ({}, DATA.assign(wt=[1, 1, -1, 1, 1]), r"mine.yaml: weight: column 'wt' must be numbers >= 0"),
        ({}, DATA.assign(caseid=[1, 1, 2, 3, 4]), r"respondent_id: column 'caseid' repeats id '1'"),
        ({"questions": {}}, None, r"mine.yaml: questions: "),
        ({"file": "nope.csv"}, None, r"mine.yaml: file: data file not found"),
    ],
)
def test_mapping_errors_are_one_line(tmp_path: Path, changes: dict, data, match: str) -> None:
    path = _setup(tmp_path, data=DATA if data is None else data, **changes)
    with pytest.raises(UserError, match=match) as info:
        load_reference(INST, SurveyConfig(reference=[str(path)]), US)
    assert "\n" not in str(info.value)


def test_mapping_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="survey.reference: file not found"):
        load_reference(INST, SurveyConfig(reference=[str(tmp_path / "x.yaml")]), US)


def _exp_instrument(reference: dict | None = None) -> Instrument:
    from simsurvey.instruments.load import parse_instrument

    exp = {"id": "wording", "arms": [{"id": "plain", "questions": {"trust": {"text": "Trust?"}}},
                                     {"id": "framed", "questions": {"trust": {"vignette": "Times are hard."}}}]}
    if reference is not None:
        exp["reference"] = reference
    return parse_instrument({"id": "t", "title": "t", "questions": [
        {"id": "trust", "text": "?", "kind": "ordinal",
         "options": [{"code": "low", "label": "Low"}, {"code": "high", "label": "High"}]},
        {"id": "pid3", "text": "?", "kind": "single_choice", "options": [{"code": "dem", "label": "D"},
                                                                         {"code": "rep", "label": "R"}]}],
        "experiments": [exp]}, name="t.yaml")


def _arm_files(tmp_path: Path, experiments: dict | None) -> Path:
    data = pd.DataFrame({"q2": [1, 2, 1, 2, 1], "q1": [1, 2, 1, 1, 2], "form": [1, 2, 2, 9, None]})
    data.to_csv(tmp_path / "data.csv", index=False)
    mapping = {"id": "mine", "file": "data.csv",
               "questions": {"trust": {"column": "q2", "codes": {1: "low", 2: "high"}},
                             "pid3": {"column": "q1", "codes": {1: "dem", 2: "rep"}}}}
    if experiments is not None:
        mapping["experiments"] = experiments
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(mapping))
    return tmp_path / "m.yaml"


def test_user_data_carries_the_arm_through_its_mapping(tmp_path: Path) -> None:
    path = _arm_files(tmp_path, {"wording": {"column": "form", "codes": {1: "plain", 2: "framed"}, "missing": [9]}})
    ref = load_reference(_exp_instrument(), SurveyConfig(reference=[str(path)]), US)
    trust = ref[ref.question_id == "trust"].sort_values("respondent_id")
    assert trust["arm"].tolist()[:3] == ["plain", "framed", "framed"]
    assert trust["arm"].isna().tolist() == [False, False, False, True, True]  # 9 = missing, empty cell
    assert trust["experiment"].tolist()[:3] == ["wording"] * 3 and trust["experiment"].isna().sum() == 2
    assert ref[ref.question_id == "pid3"]["arm"].isna().all()  # not a question of the experiment


def test_user_data_arm_through_the_experiments_reference(tmp_path: Path) -> None:
    path = _arm_files(tmp_path, None)
    inst = _exp_instrument({"dataset": "mine", "variable": "form", "codes": {1: "plain", 2: "framed"}})
    with pytest.raises(UserError, match="value '9' has no option code"):
        load_reference(inst, SurveyConfig(reference=[str(path)]), US)


@pytest.mark.parametrize("experiments, match", [
    ({"nope": {"column": "form", "codes": {1: "plain"}}}, r"experiments.nope: no such experiment in instrument 't'"),
    ({"wording": {"column": "form", "codes": {1: "plane"}}}, r"experiments.wording: unknown arm 'plane'"),
    ({"wording": {"column": "frm", "codes": {1: "plain"}}}, r"experiments.wording: column 'frm' is not in the data file"),
    ({"wording": {"column": "form", "codes": {1: "plain", 2: "framed"}}}, r"value '9' has no option code"),
])
def test_user_data_arm_mistakes_are_one_line(tmp_path: Path, experiments: dict, match: str) -> None:
    path = _arm_files(tmp_path, experiments)
    with pytest.raises(UserError, match=match):
        load_reference(_exp_instrument(), SurveyConfig(reference=[str(path)]), US)


def test_a_numeric_question_reads_the_users_values(tmp_path: Path) -> None:
    """A user's thermometer column: the value is the answer (numeric: true), 998 maps to Don't know."""
    therm = Question.model_validate({"id": "therm", "text": "Warmth?", "kind": "numeric", "scale": {"min": 0, "max": 100},
                                     "options": [{"code": "dk", "label": "Don't know", "non_substantive": True}]})
    inst = Instrument(id="t", title="t", questions=(therm,))
    data = DATA.assign(th=[70, 998, 15.0, None, 100])
    qmap = {"therm": {"column": "th", "numeric": True, "codes": {998: "dk"}}}
    ref = load_reference(inst, SurveyConfig(reference=[str(_setup(tmp_path, data=data, questions=qmap))]), US)
    got = ref.set_index("respondent_id")
    assert got["answer_code"].to_dict() == {"101": "70-80", "102": "dk", "103": "10-20", "105": "90-100"}
    assert got["answer_value"].tolist()[0] == 70.0 and pd.isna(got.loc["102", "answer_value"])
    for qm, match in [({"therm": {"column": "th", "codes": {998: "dk"}}}, "set numeric: true"),
                      ({"therm": {"column": "th", "numeric": True}}, "value '998' is outside the scale")]:
        with pytest.raises(UserError, match=match):
            load_reference(inst, SurveyConfig(reference=[str(_setup(tmp_path, data=data, questions=qm))]), US)
    wrong = {**MAPPING["questions"], "trust": {"column": "q2", "numeric": True}}
    with pytest.raises(UserError, match="numeric: true is only for numeric questions"):
        load_reference(INST, SurveyConfig(reference=[str(_setup(tmp_path, questions=wrong))]), US)
