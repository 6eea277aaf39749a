from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from simsurvey.errors import UserError
from simsurvey.instruments import Instrument, Question, SurveyConfig
from simsurvey.reference import load_reference, reference_provenance
from simsurvey.reference.builtin import BUILTIN

ITEMS = {"defect": "abdefect", "nomore": "abnomore", "health": "abhlth", "poor": "abpoor",
         "rape": "abrape", "single": "absingle", "any": "abany"}


def _question(**ref_extra: object) -> dict:
    ref = {"dataset": "gss_abortion", "where": {"year": [2018]}, "none": "none",
           "selected": {c: {"variable": v, "yes": [1], "no": [0]} for c, v in ITEMS.items()}}
    ref.update(ref_extra)
    return {"id": "abortion", "kind": "multi_select", "text": "When should abortion be legal?",
            "options": [{"code": c, "label": c} for c in ITEMS] + [{"code": "none", "label": "None of these"}],
            "reference": [ref]}


def _instrument(**ref_extra: object) -> Instrument:
    return Instrument.model_validate({"id": "t", "title": "t", "questions": [_question(**ref_extra)]})


def test_gss_2018_sets_match_the_raw_items_by_hand() -> None:
    ref = load_reference(_instrument(), SurveyConfig(reference=["gss_abortion"]))
    raw = pd.read_parquet(BUILTIN["gss_abortion"].path)
    y = raw[raw.year == 2018]
    complete = y[list(ITEMS.values())].notna().all(axis=1)
    assert len(ref) == int(complete.sum()) == 1386
    by_id = ref.set_index("respondent_id")["answer_code"]
    for _, row in y[complete].head(200).iterrows():
        want = [c for c, v in ITEMS.items() if row[v] == 1]
        assert by_id[row["respondent_id"]] == ("|".join(want) if want else "none")
    # Per-option selection rates equal the items' yes shares among complete respondents.
    for code, var in ITEMS.items():
        rate = ref["answer_code"].str.split("|").map(lambda s, c=code: c in s).mean()
        assert rate == pytest.approx(y.loc[complete, var].mean())
    prov = reference_provenance(SurveyConfig(reference=["gss_abortion"]), _instrument())
    q = prov["questions"]["abortion"][0]
    assert q["n"] == 1386 and q["n_missing_dropped"] == int((~complete).sum())
    assert q["variable"] == "+".join(ITEMS.values())


def test_where_keeps_only_the_year() -> None:
    ref = load_reference(_instrument(where={"year": [2016, 2018]}), SurveyConfig(reference=["gss_abortion"]))
    assert {r.split("-")[0] for r in ref["respondent_id"]} == {"2016", "2018"}


@pytest.mark.parametrize(("extra", "message"), [
    ({"where": {"decade": [2010]}}, "where: no such variable"),
    ({"where": {"year": [1979]}}, "keeps no respondent"),
    ({"none": None}, "selected none of the options"),
    ({"selected": {"defect": {"variable": "abdefect", "yes": [1], "no": [2]}}}, "value '0' is in neither yes nor no"),
    ({"selected": {"defect": {"variable": "abdefct", "yes": [1], "no": [0]}}}, "no such variable"),
])
def test_load_errors_are_one_line(extra: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        load_reference(_instrument(**extra), SurveyConfig(reference=["gss_abortion"]))
    assert "\n" not in str(err.value) and "abortion" in str(err.value)


@pytest.mark.parametrize(("change", "message"), [
    (lambda q: q["reference"][0]["selected"].update({"bogus": {"variable": "abany", "yes": [1], "no": [0]}}),
     "unknown option code 'bogus'"),
    (lambda q: q.update(kind="single_choice"), "selected is only for multi_select"),
    (lambda q: q["reference"][0].update(none="any"), "none must be an option code not in selected"),
    (lambda q: q["reference"][0].update(variable="abany", codes={1: "any"}), "either variable/codes or selected"),
    (lambda q: q["reference"][0]["selected"]["any"].update(no=[1]), "in both yes and no"),
])
def test_mapping_mistakes_are_rejected(change: object, message: str) -> None:
    q = _question()
    change(q)  # type: ignore[operator]
    with pytest.raises(ValidationError, match=message):
        Question.model_validate(q)


def test_a_plain_mapping_still_needs_variable_and_codes() -> None:
    with pytest.raises(ValidationError, match="variable is missing"):
        Question.model_validate({"id": "x", "kind": "ordinal", "text": "x?",
                                 "options": [{"code": "a", "label": "a"}, {"code": "b", "label": "b"}],
                                 "reference": [{"dataset": "cces2016", "codes": {1: "a"}}]})
