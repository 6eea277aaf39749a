from __future__ import annotations

import itertools

import pandas as pd
import pytest
from pydantic import ValidationError

from simsurvey.config import PROJECT_ROOT
from simsurvey.errors import UserError
from simsurvey.instruments import (
    DESIGN_COLUMNS,
    DesignConfig,
    Instrument,
    Option,
    Question,
    build_design,
    load_instrument,
)

ORDINAL = Question(
    id="scale",
    text="?",
    kind="ordinal",
    options=(
        Option(code="lo", label="Low"),
        Option(code="mid", label="Neither", neutral=True),
        Option(code="hi", label="High"),
        Option(code="dk", label="Don't know", non_substantive=True),
    ),
)
NOMINAL = Question(
    id="fruit",
    text="?",
    kind="single_choice",
    options=tuple(Option(code=c, label=c.title()) for c in ("apple", "pear", "plum", "fig", "kiwi")),
)
INST = Instrument(id="t", title="t", questions=(ORDINAL, NOMINAL))
FULL = DesignConfig(
    orders=["as_is", "reversed", "shuffled"], labels=["letters", "numbers", "text"], neutral=True
)


def _personas(n: int) -> pd.DataFrame:
    return pd.DataFrame({"persona_id": range(n), "weight": 1.0})


def test_columns_and_dtypes_follow_the_contract() -> None:
    d = build_design(_personas(7), INST, DesignConfig(), seed=3)
    assert tuple(d.columns) == DESIGN_COLUMNS
    assert str(d["persona_id"].dtype) == "Int64"
    assert d["neutral_option"].dtype == bool
    assert d.loc[d["persona_id"].isna(), "cue_style"].eq("none").all()
    assert d.loc[d["persona_id"].notna(), "cue_style"].eq("attributes").all()
    assert d.loc[d["persona_id"].isna(), "condition_id"].str.startswith("no_persona|").all()


@pytest.mark.parametrize("n", [1, 10, 37, 200])
def test_between_is_balanced_within_one(n: int) -> None:
    d = build_design(_personas(n), INST, FULL.model_copy(update={"no_persona": False}), seed=11)
    # every persona gets exactly one condition per question
    assert d.groupby(["persona_id", "question_id"]).size().eq(1).all()
    for qid, sub in d.groupby("question_id"):
        counts = sub["condition_id"].value_counts()
        n_conds = 2 * 3 * 2 if qid == "scale" else 3 * 3  # ordinal: no shuffle, with neutral variant
        assert counts.sum() == n
        assert len(counts) == min(n, n_conds)
        assert counts.max() - (counts.min() if len(counts) == n_conds else 0) <= 1


def test_ordinal_questions_are_never_shuffled() -> None:
    d = build_design(_personas(50), INST, FULL.model_copy(update={"assignment": "within"}), seed=1)
    scale = d[d["question_id"] == "scale"]
    assert set(scale["order_mode"]) == {"as_is", "reversed"}
    allowed = {("lo", "hi", "dk"), ("hi", "lo", "dk"), ("lo", "mid", "hi", "dk"), ("hi", "mid", "lo", "dk")}
    assert {tuple(o) for o in scale["option_order"]} == allowed
    with pytest.raises(UserError, match="design.orders: question 'scale' is ordinal"):
        build_design(_personas(3), INST, DesignConfig(orders=["shuffled"]), seed=1)


def test_option_order_is_a_permutation_of_the_displayed_codes() -> None:
    d = build_design(_personas(40), INST, FULL.model_copy(update={"assignment": "within", "replicates": 2}), seed=5)
    for row in d.itertuples():
        q = INST.question(row.question_id)
        shown = q.displayed_codes(neutral=row.neutral_option)
        assert sorted(row.option_order) == sorted(shown)
        assert row.neutral_option == ("mid" in row.option_order)
        if row.order_mode == "as_is":
            assert tuple(row.option_order) == shown
        if row.order_mode == "reversed":
            assert tuple(row.option_order) == tuple(c for c in shown if c != "dk")[::-1] + (("dk",) if "dk" in shown else ())
        # non-substantive options stay last
        if "dk" in row.option_order:
            assert row.option_order[-1] == "dk"
    shuffled = d[d["order_mode"] == "shuffled"]["option_order"].map(tuple)
    # 5 options, hundreds of draws: drawn per trial, so many distinct orders appear
    assert shuffled.nunique() > 50


def test_within_is_the_full_cross() -> None:
    cfg = FULL.model_copy(update={"assignment": "within", "replicates": 2, "no_persona_replicates": 3})
    d = build_design(_personas(4), INST, cfg, seed=2)
    persona = d[d["persona_id"].notna()]
    expected_scale = set(
        f"{o}|{lab}" + ("|neutral" if n else "")
        for o, lab, n in itertools.product(["as_is", "reversed"], ["letters", "numbers", "text"], [False, True])
    )
    expected_fruit = {f"{o}|{lab}" for o, lab in itertools.product(["as_is", "reversed", "shuffled"], ["letters", "numbers", "text"])}
    for pid in range(4):
        rows = persona[persona["persona_id"] == pid]
        assert set(rows[rows.question_id == "scale"]["condition_id"]) == expected_scale
        assert set(rows[rows.question_id == "fruit"]["condition_id"]) == expected_fruit
    assert len(persona) == 4 * (12 + 9) * 2
    assert sorted(persona["replicate"].unique()) == [0, 1]
    control = d[d["persona_id"].isna()]
    assert len(control) == (12 + 9) * 3
    assert control.groupby(["question_id", "condition_id"]).size().eq(3).all()


def test_deterministic_and_seed_sensitive() -> None:
    cfg = FULL.model_copy(update={"replicates": 2})
    a = build_design(_personas(60), INST, cfg, seed=9)
    b = build_design(_personas(60), INST, cfg, seed=9)
    c = build_design(_personas(60), INST, cfg, seed=10)
    pd.testing.assert_frame_equal(a, b)
    assert not a["condition_id"].equals(c["condition_id"])


def test_adding_a_question_leaves_the_others_unchanged() -> None:
    cfg = DesignConfig(orders=["as_is", "shuffled"])
    one = build_design(_personas(30), Instrument(id="t", title="t", questions=(NOMINAL,)), cfg, seed=4)
    two = build_design(_personas(30), INST, cfg, seed=4)
    pd.testing.assert_frame_equal(
        one.reset_index(drop=True), two[two["question_id"] == "fruit"].reset_index(drop=True)
    )


def test_politics_default_design() -> None:
    inst = load_instrument(PROJECT_ROOT / "surveys" / "politics.yaml")
    d = build_design(_personas(500), inst, DesignConfig(), seed=20261123)
    n_q = len(inst.questions)
    assert len(d) == 500 * n_q + n_q * 4 * 10
    assert set(d["condition_id"]) >= {"as_is|letters", "reversed|numbers", "no_persona|as_is|letters"}


@pytest.mark.parametrize(
    ("update", "match"),
    [
        ({"cue": "vibes"}, "cue"),
        ({"orders": ["as_is", "as_is"]}, "'as_is' is listed twice"),
        ({"orders": []}, "orders"),
        ({"labels": ["emoji"]}, "labels"),
        ({"assignment": "mixed"}, "assignment"),
        ({"replicates": 0}, "replicates"),
    ],
)
def test_design_config_validation(update: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        DesignConfig.model_validate({**DesignConfig().model_dump(), **update})


def test_bad_personas() -> None:
    with pytest.raises(UserError, match="no persona_id"):
        build_design(pd.DataFrame({"x": [1]}), INST, DesignConfig(), seed=1)
    with pytest.raises(UserError, match="duplicate persona_id"):
        build_design(pd.DataFrame({"persona_id": [1, 1]}), INST, DesignConfig(), seed=1)
