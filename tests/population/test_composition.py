"""Persona vs human composition and coverage, against a hand-worked example."""

from __future__ import annotations

import pandas as pd
import pytest

from simsurvey.errors import UserError
from simsurvey.population.composition import (
    check_coverage,
    composition,
    coverage,
    human_respondents,
)
from simsurvey.population.variables import Variable, Variables

VARS = Variables(name="toy", items={
    "sex": Variable("sex", "Sex", ("female", "male"), ("Female", "Male")),
    "race": Variable("race", "Race", ("a", "b", "c"), ("A", "B", "C")),
    "edu": Variable("edu", "Education", ("lo", "hi"), ("Low", "High")),
})

# 10 personas: sex 6 female / 4 male; race a 5, b 3, c 2; edu 7 lo / 3 hi.
PERSONAS = pd.DataFrame({
    "persona_id": range(10),
    "weight": 1.0,
    "sex": ["female"] * 6 + ["male"] * 4,
    "race": ["a", "a", "a", "a", "a", "b", "b", "b", "c", "c"],
    "edu": ["lo"] * 7 + ["hi"] * 3,
})


def _rows(source: str, people: list[tuple[str, float, str | None, str | None, str | None]],
          questions: tuple[str, ...] = ("q1", "q2")) -> list[dict]:
    return [{"source": source, "respondent_id": rid, "weight": w, "sex": s, "race": r, "edu": e,
             "question_id": q, "answer_code": "x"} for q in questions for rid, w, s, r, e in people]


# Source s1: 4 respondents, each answering two questions (counted once); race has no 'c';
# edu is not recorded. Source s2 records only sex, and has no 'male' respondent.
REFERENCE = pd.DataFrame(
    _rows("s1", [("r1", 1.0, "female", "a", None), ("r2", 3.0, "male", "a", None),
                 ("r3", 2.0, "female", "b", None), ("r4", 2.0, "male", None, None)])
    + _rows("s2", [("r1", 1.0, "female", None, None), ("r5", 1.0, "female", None, None)], questions=("q3",))
).astype({"sex": "string", "race": "string", "edu": "string"})


def test_unique_respondents_per_source():
    people = human_respondents(REFERENCE)
    assert list(zip(people["source"], people["respondent_id"])) == [
        ("s1", "r1"), ("s1", "r2"), ("s1", "r3"), ("s1", "r4"), ("s2", "r1"), ("s2", "r5")]


def test_hand_worked_composition():
    comp = composition(PERSONAS, REFERENCE, VARS)
    assert comp.respondents == {"s1": 4, "s2": 2}
    assert comp.not_recorded == {"s1": ["edu"], "s2": ["race", "edu"]}
    t = comp.table.set_index(["source", "variable", "code"])
    # s1 sex: weights female 1 + 2 = 3, male 3 + 2 = 5 -> 3/8, 5/8 (each respondent once, not per question)
    assert t.loc[("s1", "sex", "female"), "human_share"] == pytest.approx(3 / 8)
    assert t.loc[("s1", "sex", "male"), "human_share"] == pytest.approx(5 / 8)
    assert t.loc[("s1", "sex", "female"), "persona_share"] == pytest.approx(0.6)
    assert t.loc[("s1", "sex", "male"), ["persona_n", "human_n"]].tolist() == [4, 2]
    # s1 race among the non-null: a = 1 + 3 = 4, b = 2 of 6; r4's null is not a code
    assert t.loc[("s1", "race", "a"), "human_share"] == pytest.approx(4 / 6)
    assert t.loc[("s1", "race", "b"), "human_share"] == pytest.approx(2 / 6)
    assert t.loc[("s1", "race", "c"), ["human_share", "persona_n", "human_n", "covered"]].tolist() == [0.0, 2, 0, False]
    assert t.loc[("s1", "race", "a"), "covered"] and t.loc[("s1", "race", "b"), "covered"]
    # s2: sex female only; the 4 male personas are uncovered there
    assert not t.loc[("s2", "sex", "male"), "covered"]
    assert set(comp.uncovered["code"]) == {"c", "male"}
    # personas 8, 9 (race c, male) and 6, 7 (male): 4 personas, each counted once
    assert comp.uncovered_personas() == 4
    assert comp.uncovered_personas(["race"]) == 2
    # total variation of s1 sex: (|0.6 - 0.375| + |0.4 - 0.625|) / 2
    tv = comp.distance().set_index(["source", "variable"])["total_variation"]
    assert tv[("s1", "sex")] == pytest.approx(0.225)
    js = comp.to_json()
    assert js["personas"] == 10 and js["sources"]["s2"]["not_in_human_data"] == ["race", "edu"]
    assert js["sources"]["s1"]["variables"]["race"]["codes"][2] == {
        "code": "c", "label": "C", "persona_share": 0.2, "human_share": 0.0, "persona_n": 2, "human_n": 0,
        "covered": False}


def test_a_code_humans_have_and_personas_lack_is_covered():
    personas = PERSONAS.assign(race="a")
    comp = composition(personas, REFERENCE[REFERENCE["source"] == "s1"], VARS)
    t = comp.table.set_index(["variable", "code"])
    assert t.loc[("race", "b"), ["persona_n", "human_n", "covered"]].tolist() == [0, 1, True]
    assert comp.uncovered.empty and comp.uncovered_personas() == 0


def test_coverage_refuses_with_one_line_naming_source_attribute_codes_count_and_fixes():
    comp = composition(PERSONAS, REFERENCE, VARS)
    verdict = coverage(comp, False)
    assert not verdict.ok and verdict.refused == ("race", "sex")
    msg = verdict.message
    assert "\n" not in msg
    assert "s1 has no respondent with race c (2 of 10 personas)" in msg
    assert "s2 has no respondent with sex male (4 of 10 personas)" in msg
    assert "4 personas in all" in msg
    assert "survey.accept_uncovered=true" in msg and "population.targets=reference" in msg
    with pytest.raises(UserError, match="race c"):
        check_coverage(comp, False)


@pytest.mark.parametrize(("accept", "ok", "refused"), [
    (True, True, ()),
    (["race", "sex"], True, ()),
    (["race"], False, ("sex",)),
    ([], False, ("race", "sex")),
])
def test_accept_uncovered_true_or_a_list(accept, ok, refused):
    comp = composition(PERSONAS, REFERENCE, VARS)
    verdict = coverage(comp, accept)
    assert verdict.ok == ok and verdict.refused == refused
    assert verdict.uncovered_personas == 4
    assert ("race c" in verdict.message) == ("race" in refused)


def test_nothing_uncovered_is_ok():
    ref = REFERENCE[REFERENCE["source"] == "s1"]
    comp = composition(PERSONAS[PERSONAS["race"] != "c"], ref, VARS)
    verdict = check_coverage(comp, False)
    assert verdict.ok and verdict.uncovered_personas == 0


def test_accept_uncovered_names_only_population_attributes():
    from simsurvey.population.composition import check_accept

    check_accept(True, VARS)
    check_accept(["race"], VARS)
    with pytest.raises(UserError, match=r"survey.accept_uncovered: unknown attribute 'racee' .*sex, race, edu"):
        check_accept(["racee"], VARS)
