from __future__ import annotations

import pandas as pd
import pytest
import yaml

from simsurvey.config import PROJECT_ROOT
from simsurvey.errors import UserError
from simsurvey.instruments import Instrument, SurveyConfig, load_instrument
from simsurvey.reference import load_reference, reference_columns, reference_provenance
from simsurvey.reference.builtin import BUILTIN
from simsurvey.reference.builtin import us_variables

US = us_variables()
DEMOGRAPHICS = US.names
REFERENCE_COLUMNS = reference_columns(DEMOGRAPHICS)
from simsurvey.reference.load import map_answers

POLITICS = load_instrument(PROJECT_ROOT / "surveys" / "politics.yaml")


@pytest.fixture(scope="module")
def ref() -> pd.DataFrame:
    return load_reference(POLITICS, SurveyConfig())


def test_schema_and_valid_codes(ref: pd.DataFrame) -> None:
    assert tuple(ref.columns) == REFERENCE_COLUMNS
    assert ref["weight"].dtype == "float64"
    assert set(ref["question_id"]) == set(POLITICS.question_ids)
    for qid, sub in ref.groupby("question_id"):
        assert set(sub["answer_code"]) <= set(POLITICS.question(qid).substantive_codes), qid
        assert sub["respondent_id"].is_unique, qid
        assert sub["source"].nunique() == 1
    for col in DEMOGRAPHICS:
        assert set(ref[col].dropna()) <= set(US.codes(col)), col
    # combine=first: pid7 is in both data sets, CCES is listed first
    assert set(ref.loc[ref.question_id == "pid7", "source"]) == {"cces2016"}


def test_codes_roundtrip_to_the_raw_values(ref: pd.DataFrame) -> None:
    # Independent check: invert each mapping and compare with the committed raw column.
    for ds in ("cces2016", "anes1996"):
        raw = pd.read_parquet(BUILTIN[ds].path).set_index("respondent_id")
        for q in POLITICS.questions:
            m = q.reference_for(ds)
            sub = ref[(ref.question_id == q.id) & (ref.source == ds)]
            if m is None or sub.empty:
                continue
            inverse = {code: float(value) for value, code in m.codes.items()}
            back = sub["answer_code"].map(inverse).to_numpy(dtype=float)
            assert (back == raw.loc[sub["respondent_id"], m.variable].to_numpy()).all(), q.id
            # every non-missing raw answer is there, none invented
            assert len(sub) == raw[m.variable].notna().sum(), q.id


def test_hand_computed_shares(ref: pd.DataFrame) -> None:
    raw = pd.read_parquet(BUILTIN["cces2016"].path)
    trump = ref[ref.question_id == "vote2016"]["answer_code"].eq("donald_trump").mean()
    assert trump == pytest.approx(raw["votetrump"].dropna().mean())
    # racerare is reverse-coded in TV16: 5 = strongly agree
    agree = ref[ref.question_id == "racism_rare"]["answer_code"].eq("strongly_agree").sum()
    assert agree == (raw["racerare"] == 5).sum()


def test_combine_all_keeps_both_sources() -> None:
    inst = Instrument(id="p", title="p", questions=(POLITICS.question("pid7"),))
    ref = load_reference(inst, SurveyConfig(combine="all"))
    assert ref.groupby("source").size().to_dict() == {"anes1996": 944, "cces2016": 62479}
    only_anes = load_reference(inst, SurveyConfig(reference=["anes1996", "cces2016"]))
    assert set(only_anes["source"]) == {"anes1996"}


def test_provenance_counts_dropped_missing() -> None:
    prov = reference_provenance(SurveyConfig(), POLITICS)
    assert set(prov["sources"]) == {"cces2016", "anes1996"}
    assert "unweighted" in prov["sources"]["anes1996"]["weights"]
    vote = prov["questions"]["vote2016"][0]
    assert vote["n"] + vote["n_missing_dropped"] == 64_600
    assert vote["n_missing_dropped"] == 19_668
    assert prov["no_reference"] == []


def test_map_answers_by_hand() -> None:
    vals = pd.Series([1.0, 2.0, None, 9.0, 1.0])
    codes, keep = map_answers(vals, {"1": "a", "2": "b"}, ["9"], what="x")
    assert keep.tolist() == [True, True, False, False, True]
    assert codes[keep].tolist() == ["a", "b", "a"]
    with pytest.raises(UserError, match="^x: value '9' has no option code; add it to codes, or to missing$"):
        map_answers(vals, {"1": "a", "2": "b"}, [], what="x")


def test_errors_name_the_variable() -> None:
    with pytest.raises(UserError, match="survey.reference: unknown data set 'gss'"):
        load_reference(POLITICS, SurveyConfig(reference=["gss"]))
    q = POLITICS.question("ideo5")
    bad_var = q.model_copy(update={"reference": (q.reference[0].model_copy(update={"variable": "ideology"}),)})
    with pytest.raises(UserError, match=r"question 'ideo5': cces2016.ideology: no such variable"):
        load_reference(Instrument(id="x", title="x", questions=(bad_var,)), SurveyConfig())
    short = q.model_copy(update={"reference": (q.reference[0].model_copy(update={"codes": {"1": "very_liberal"}}),)})
    with pytest.raises(UserError, match=r"question 'ideo5': cces2016.ideo: value '2' has no option code \(and 3 more\)"):
        load_reference(Instrument(id="x", title="x", questions=(short,)), SurveyConfig())
    empty = q.model_copy(
        update={"reference": (q.reference[0].model_copy(update={"codes": {"9": "very_liberal"}, "missing": ("1", "2", "3", "4", "5")}),)}
    )
    with pytest.raises(UserError, match="no respondent has a mapped answer"):
        load_reference(Instrument(id="x", title="x", questions=(empty,)), SurveyConfig())


HEALTHCARE = load_instrument(PROJECT_ROOT / "surveys" / "healthcare.yaml")
HC_CFG = SurveyConfig(instrument="surveys/healthcare.yaml", reference=["pew2012_healthcare"])


def test_the_reference_carries_the_arm_of_the_experiment() -> None:
    ref = load_reference(HEALTHCARE, HC_CFG)
    assert tuple(ref.columns) == REFERENCE_COLUMNS
    # Independent count: the raw split-ballot table (order x response) of the committed data.
    raw = pd.read_parquet(BUILTIN["pew2012_healthcare"].path)
    expected = pd.crosstab(raw["order"], raw["response"].map({"approve": "approve", "disapprove": "disapprove",
                                                              "other": "dont_know"}))
    got = pd.crosstab(ref["arm"].astype(object), ref["answer_code"].astype(object))
    assert got.to_dict() == expected.to_dict()
    assert set(ref["experiment"]) == {"mandate_order"}
    # Each respondent keeps their own arm (row-aligned with the raw data, not shuffled).
    both = ref.merge(raw, on="respondent_id")
    assert (both["arm"] == both["order"]).all()


def test_a_question_outside_any_experiment_has_no_arm() -> None:
    ref = load_reference(POLITICS, SurveyConfig())
    assert ref["arm"].isna().all() and ref["experiment"].isna().all()


def test_an_arm_value_with_no_arm_id_is_one_line(tmp_path) -> None:
    from simsurvey.instruments.load import parse_instrument

    data = yaml.safe_load((PROJECT_ROOT / "surveys" / "healthcare.yaml").read_text())
    data["experiments"][0]["reference"]["codes"].pop("penalty_second")
    inst = parse_instrument(data, name="hc.yaml")
    with pytest.raises(UserError, match="experiment 'mandate_order': reference pew2012_healthcare.order: "
                                        "value 'penalty_second' has no option code"):
        load_reference(inst, HC_CFG)


def test_population_codes_are_checked_on_the_rows_a_mapping_keeps() -> None:
    """A population of six GSS waves against GSS 1972-2018: the waves `where` leaves out are not
    an error (they were, before: every row of the data set was checked); a kept one is."""
    from simsurvey.population.spec import load_population_spec

    variables = load_population_spec(PROJECT_ROOT / "personas" / "us_gss_waves.yaml").variables
    inst = load_instrument(PROJECT_ROOT / "surveys" / "abortion.yaml")
    ref = load_reference(inst, SurveyConfig(reference=["gss_abortion"]), variables)
    assert set(ref["year"]) == {"1977", "1985", "1994", "2000", "2010", "2018"}
    q = inst.questions[0]
    wider = q.model_copy(update={"reference": (q.reference[0].model_copy(update={"where": {"year": ("1972", "1977")}}),)})
    with pytest.raises(UserError, match=r"gss_abortion: column 'year' has code '1972', not a code of attribute year"):
        load_reference(Instrument(id="x", title="x", questions=(wider,)), SurveyConfig(reference=["gss_abortion"]), variables)
