from __future__ import annotations

import keyword
import re

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from simsurvey.errors import UserError
from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.report import export_wide
from simsurvey.report.export import code_values, variable_name

READ = {".dta": pyreadstat.read_dta, ".sav": pyreadstat.read_sav}


@pytest.fixture
def exported(make_run_dir, tmp_path, instrument):
    run = make_run_dir(tmp_path)
    return run, export_wide(run, instrument)


def test_files_open_with_labels(exported, instrument):
    run, paths = exported
    assert [p.name for p in paths] == ["responses_wide.dta", "responses_wide.sav"]
    for path in paths:
        df, meta = READ[path.suffix](path)
        for q in instrument.questions:
            labels = {int(k): v for k, v in meta.variable_value_labels[q.id].items()}
            assert labels == {code_values(q)[o.code]: o.label for o in q.options}
            assert meta.column_names_to_labels[q.id] == q.text[:80]
        assert {int(k): v for k, v in meta.variable_value_labels["sex"].items()} == {1: "female", 2: "male"}
        assert all(len(c) <= 32 and c.isidentifier() and not keyword.iskeyword(c) for c in df.columns)


@pytest.mark.parametrize("suffix", [".dta", ".sav"])
def test_values_match_responses(exported, instrument, suffix):
    run, paths = exported
    path = next(p for p in paths if p.suffix == suffix)
    df, meta = READ[suffix](path)
    responses = pd.read_parquet(run / "responses.parquet")
    personas = pd.read_parquet(run / "personas.parquet").set_index("persona_id")
    persona_rows = responses[responses["persona_id"].notna()]
    assert len(df) == persona_rows.groupby(["model", "persona_id", "replicate"]).ngroups
    wide = df.set_index(["model", df["persona_id"].astype(int), df["replicate"].astype(int)])
    checked = 0
    for _, r in persona_rows.iterrows():
        row = wide.loc[(r["model"], int(r["persona_id"]), int(r["replicate"]))]
        value = row[r["question_id"]]
        if r["valid"]:
            label = meta.variable_value_labels[r["question_id"]][value]
            assert label == instrument.question(r["question_id"]).option(r["answer_code"]).label
        else:
            assert np.isnan(value)  # invalid answers and refusals are missing, not imputed
        assert row[f"{r['question_id']}_cond"] == r["condition_id"]
        assert row["weight"] == pytest.approx(personas.loc[int(r["persona_id"]), "weight"])
        sex_label = meta.variable_value_labels["sex"][row["sex"]]
        assert sex_label == personas.loc[int(r["persona_id"]), "sex"]
        checked += 1
    assert checked == len(persona_rows) > 400


def test_model_filter_and_errors(make_run_dir, tmp_path, instrument):
    run = make_run_dir(tmp_path)
    paths = export_wide(run, instrument, model="baseline/uniform", formats=["sav"])
    assert [p.name for p in paths] == ["responses_wide_baseline_uniform.sav"]
    df, _ = pyreadstat.read_sav(paths[0])
    assert set(df["model"]) == {"baseline/uniform"}
    with pytest.raises(UserError, match="model 'gpt-9' not in"):
        export_wide(run, instrument, model="gpt-9")
    with pytest.raises(UserError, match="unknown format 'xlsx'"):
        export_wide(run, instrument, formats=["xlsx"])
    with pytest.raises(UserError, match="needs responses.parquet"):
        export_wide(tmp_path / "nowhere", instrument)


def test_within_persona_conditions_become_forms(tmp_path):
    q = Question(id="q1", text="Q?", kind="ordinal", options=(Option(code="lo", label="Low"), Option(code="hi", label="High")))
    inst = Instrument(id="i", title="t", questions=(q,))
    resp = pd.DataFrame({
        "persona_id": pd.array([0, 0, 1], dtype="Int64"), "question_id": "q1",
        "condition_id": ["reversed|letters", "as_is|letters", "as_is|letters"], "replicate": 0,
        "model": "m", "answer_code": ["hi", "lo", None], "valid": [True, True, False],
    })
    run = tmp_path / "run"
    run.mkdir()
    resp.to_parquet(run / "responses.parquet")
    df, _ = pyreadstat.read_dta(export_wide(run, inst, formats=["dta"])[0])
    got = sorted(zip(df["persona_id"], df["form"], df["q1"].fillna(-1), df["q1_cond"]))
    # persona 0 saw q1 twice: form 1 = as_is (sorted by condition), form 2 = reversed
    assert got == [(0, 1, 1, "as_is|letters"), (0, 2, 2, "reversed|letters"), (1, 1, -1, "as_is|letters")]
    assert (df["weight"] == 1).all()  # no personas.parquet: unit weights


def test_code_values():
    pid = Question(id="p", text="t", kind="ordinal", options=tuple(Option(code=str(i), label=str(i)) for i in (1, 2, 7)))
    assert code_values(pid) == {"1": 1, "2": 2, "7": 7}
    mixed = Question(id="p", text="t", kind="single_choice",
                     options=(Option(code="7", label="a"), Option(code="x", label="b")))
    assert code_values(mixed) == {"7": 1, "x": 2}


def test_variable_names():
    taken: set[str] = set()
    assert variable_name("pid7", taken) == "pid7"
    assert variable_name("PID7", taken) == "PID7_2"  # Stata/SPSS names clash case-insensitively in SPSS
    assert variable_name("2nd-q", taken) == "q_2nd_q"
    assert variable_name("with", taken) == "q_with"
    long = variable_name("a" * 40, taken)
    assert len(long) == 27 and len(long + "_cond") <= 32
    again = variable_name("a" * 40, taken)
    assert again != long and len(again) == 27
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) for n in taken | {long, again})


def test_new_design_factors_exported_with_labels(tmp_path):
    """Numeric answers on the raw scale, multi_select as 0/1 per option, positions, arms (issue 10)."""
    from simsurvey.instruments.load import parse_instrument

    inst = parse_instrument({
        "id": "i", "title": "t",
        "questions": [
            {"id": "therm", "kind": "numeric", "text": "Warmth?", "scale": {"min": 0, "max": 100, "unit": "degrees"}},
            {"id": "why", "kind": "multi_select", "text": "Which?", "options": [
                {"code": "a", "label": "Alpha"}, {"code": "b", "label": "Beta"}, {"code": "c", "label": "Gamma"}]},
            {"id": "q", "kind": "single_choice", "text": "Approve?", "options": [
                {"code": "y", "label": "Approve"}, {"code": "n", "label": "Disapprove"}]},
        ],
        "experiments": [{"id": "mandate", "arms": [
            {"id": "first", "label": "Penalty first", "questions": {"q": {"text": "One?"}}},
            {"id": "second", "questions": {"q": {"text": "Two?"}}}]}],
    })
    resp = pd.DataFrame({
        "persona_id": pd.array([0, 0, 0, 1, 1, 1], dtype="Int64"),
        "question_id": ["therm", "why", "q", "therm", "why", "q"],
        "condition_id": ["as_is|letters", "as_is|letters", "as_is|letters|arm:second",
                         "as_is|letters", "as_is|letters", "as_is|letters|arm:first"],
        "replicate": 0, "model": "m",
        "answer_code": ["70-80", "a|c", "y", None, "b", "n"],
        "answer_value": [72.0, None, None, 250.0, None, None],
        "valid": [True, True, True, False, True, True],
        "arm": [None, None, "second", None, None, "first"],
        "question_position": pd.array([2, 0, 1, 0, 1, 2], dtype="Int64"),
        "item_position": pd.array([None] * 6, dtype="Int64"),
    })
    run = tmp_path / "run"
    run.mkdir()
    resp.to_parquet(run / "responses.parquet")
    path = export_wide(run, inst, formats=["dta"])[0]
    df, meta = pyreadstat.read_dta(path)
    df = df.set_index("persona_id").sort_index()
    assert df.loc[0, "therm_val"] == 72.0 and np.isnan(df.loc[1, "therm_val"])  # out of range: invalid -> missing
    assert meta.variable_value_labels["therm"][df.loc[0, "therm"]] == "70-79"  # the labelled bin
    assert [df.loc[0, f"why_{i}"] for i in (1, 2, 3)] == [1, 0, 1]
    assert [df.loc[1, f"why_{i}"] for i in (1, 2, 3)] == [0, 1, 0]
    assert meta.variable_value_labels["why_2"] == {0: "not selected", 1: "selected"}
    assert "Beta" in meta.column_names_to_labels["why_2"]
    assert df["therm_pos"].tolist() == [2, 0] and df["q_pos"].tolist() == [1, 2]
    assert "therm_ipos" not in df  # no battery items
    assert df["arm_mandate"].tolist() == [2, 1]
    assert meta.variable_value_labels["arm_mandate"] == {1: "Penalty first", 2: "second"}
    assert "therm_val" not in meta.variable_value_labels and "degrees" in meta.column_names_to_labels["therm_val"]
