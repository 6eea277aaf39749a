"""Numeric scales, batteries, experiments and sequential designs (issue 10)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simsurvey.errors import UserError
from simsurvey.instruments.config import DesignConfig
from simsurvey.instruments.design import DESIGN_COLUMNS, build_design, conversation_order
from simsurvey.instruments.load import parse_instrument
from simsurvey.instruments.models import NumericScale, Question

SIX = [{"code": str(i), "label": f"point {i}"} for i in range(1, 7)]
YESNO = [{"code": "a", "label": "Approve"}, {"code": "d", "label": "Disapprove"}]


def _inst(**extra):
    return parse_instrument({
        "id": "t", "title": "t",
        "questions": [
            {"id": "therm", "kind": "numeric", "text": "How warm?", "scale": {"min": 0, "max": 100}},
            {"id": "agree", "kind": "battery", "text": "How accurately does each describe you?", "options": SIX,
             "items": [{"id": "A1", "text": "Am indifferent", "reverse_keyed": True},
                       {"id": "A2", "text": "Inquire"}, {"id": "A3", "text": "Sympathize"}]},
            {"id": "q", "kind": "single_choice", "text": "Approve?", "options": YESNO},
        ],
        "experiments": [{"id": "e", "arms": [{"id": "c", "questions": {"q": {"text": "Wording one?"}}},
                                             {"id": "t", "questions": {"q": {"vignette": "Imagine.", "text": "Wording two?"}}}]}],
        **extra,
    }, name="t.yaml")


def test_numeric_bins_hand_worked() -> None:
    s = NumericScale(min=0, max=100)
    assert s.edges == tuple(float(x) for x in range(0, 101, 10))
    q = Question.model_validate({"id": "x", "text": "x", "kind": "numeric", "scale": {"min": 0, "max": 100}})
    assert q.substantive_codes[0] == "0-10" and q.substantive_codes[-1] == "90-100"
    assert [q.bin_code(v) for v in (0, 9.99, 10, 99, 100, 101, -1)] == ["0-10", "0-10", "10-20", "90-100", "90-100", None, None]
    ten = Question.model_validate({"id": "x", "text": "x", "kind": "numeric", "scale": {"min": 1, "max": 10},
                                   "options": [{"code": "dk", "label": "Don't know", "non_substantive": True}]})
    assert ten.substantive_codes == tuple(str(i) for i in range(1, 11)) and ten.codes[-1] == "dk"
    assert [ten.bin_code(v) for v in (1, 1.4, 1.5, 10)] == ["1", "1", "2", "10"]


@pytest.mark.parametrize("bad, match", [
    ({"kind": "numeric"}, "needs a scale"),
    ({"kind": "numeric", "scale": {"min": 5, "max": 1}}, r"max \(1\) must be greater than min \(5\)"),
    ({"kind": "numeric", "scale": {"min": 0, "max": 10, "bins": [0, 5, 9]}}, "run from min to max"),
    ({"kind": "numeric", "scale": {"min": 0, "max": 10}, "options": [{"code": "z", "label": "Z"}]}, "must be non_substantive"),
    ({"kind": "ordinal", "options": SIX, "scale": {"min": 0, "max": 1}}, "scale is only for numeric"),
])
def test_numeric_errors_name_the_question(bad: dict, match: str) -> None:
    with pytest.raises(UserError, match=f"t.yaml: question 'n': .*{match}"):
        parse_instrument({"id": "t", "title": "t", "questions": [{"id": "n", "text": "N?", **bad}]}, name="t.yaml")


@pytest.mark.parametrize("battery, match", [
    ({"id": "b", "kind": "battery", "text": "s", "options": SIX}, "battery 'b': no items"),
    ({"id": "b", "kind": "battery", "options": SIX, "items": [{"id": "x", "text": "y"}]}, "battery 'b': missing text"),
    ({"id": "b", "kind": "battery", "text": "s", "options": SIX, "items": [{"id": "x", "text": "y", "bogus": 1}]},
     "battery 'b': item 'x': unknown key 'bogus'"),
    ({"id": "b", "kind": "battery", "text": "s", "item_kind": "multi", "options": SIX, "items": [{"id": "x", "text": "y"}]},
     "item_kind must be"),
    ({"id": "b", "kind": "battery", "text": "s", "options": SIX, "items": [{"id": "b", "text": "y"}]}, "also a question id"),
])
def test_battery_errors(battery: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        parse_instrument({"id": "t", "title": "t", "questions": [battery]}, name="t.yaml")


@pytest.mark.parametrize("experiment, match", [
    ({"id": "e", "arms": [{"id": "c", "questions": {"zz": {"text": "W"}}}, {"id": "t"}]}, "unknown question 'zz'"),
    ({"id": "e", "arms": [{"id": "c", "questions": {"q": {"text": "W"}}}]}, "needs at least 2 arms"),
    ({"id": "e", "control": "x", "arms": [{"id": "c", "questions": {"q": {"text": "W"}}}, {"id": "t"}]}, "control 'x'"),
    ({"id": "e", "arms": [{"id": "c", "questions": {"q": {"text": "W"}}}, {"id": "c"}]}, "arm 'c' is listed twice"),
    ({"id": "e", "arms": [{"id": "c", "questions": {"q": {"text": "W"}}}, {"id": "t"}],
      "reference": {"dataset": "d", "variable": "v", "codes": {"1": "nope"}}}, "unknown arm 'nope'"),
])
def test_experiment_errors(experiment: dict, match: str) -> None:
    with pytest.raises(UserError, match=f"t.yaml: experiment 'e': .*{match}"):
        parse_instrument({"id": "t", "title": "t", "questions": [{"id": "q", "kind": "single_choice", "text": "Q?", "options": YESNO}],
                          "experiments": [experiment]}, name="t.yaml")


def test_battery_expands_and_experiment_rewords() -> None:
    inst = _inst()
    assert inst.batteries == {"agree": ("A1", "A2", "A3")}
    a1 = inst.question("A1")
    assert (a1.kind, a1.stem, a1.reverse_keyed, a1.codes) == ("ordinal", "How accurately does each describe you?", True, tuple("123456"))
    e = inst.experiment_of("q")
    assert e is not None and e.control_arm == "c" and inst.experiment_of("A1") is None
    assert e.apply(inst.question("q"), "t").text == "Imagine.\n\nWording two?"
    assert e.apply(inst.question("q"), "c").text == "Wording one?"


def test_arms_balanced_and_crossed_with_conditions() -> None:
    inst = _inst()
    d = build_design(pd.DataFrame({"persona_id": range(103)}), inst, DesignConfig(no_persona=False), seed=7)
    assert tuple(d.columns) == DESIGN_COLUMNS
    q = d[d.question_id == "q"]
    counts = q.groupby("arm").size()
    assert counts.max() - counts.min() <= 1
    cross = q.groupby(["arm", "order_mode", "label_style"]).size()
    assert len(cross) == 8 and cross.max() - cross.min() <= 1
    assert all(c.endswith(f"|arm:{a}") for c, a in zip(q.condition_id, q.arm))
    assert d.loc[d.question_id != "q", "arm"].isna().all() and (q.experiment == "e").all()
    # Independent context: no positions.
    assert d[["question_position", "previous_question", "item_position"]].isna().all().all()
    # A battery is one grid: one condition per persona for all its items.
    grid = d[d.question_id.isin(["A1", "A2", "A3"])].groupby("persona_id").condition_id.nunique()
    assert (grid == 1).all()


def test_no_persona_asks_every_arm() -> None:
    d = build_design(pd.DataFrame({"persona_id": [1]}), _inst(), DesignConfig(no_persona_replicates=2), seed=1)
    ctl = d[d.persona_id.isna() & (d.question_id == "q")]
    assert sorted(ctl.arm.unique()) == ["c", "t"] and len(ctl) == 2 * 4 * 2
    assert not d[["persona_id", "question_id", "condition_id", "replicate"]].duplicated().any()


def test_sequential_positions() -> None:
    inst = _inst()
    cfg = DesignConfig(context="sequential", question_order="randomized", replicates=2, no_persona=False)
    d = build_design(pd.DataFrame({"persona_id": range(40)}), inst, cfg, seed=3)
    firsts = set()
    for (pid, rep), conv in d.groupby(["persona_id", "replicate"], sort=False):
        assert conv.question_position.tolist() == list(range(5))  # sorted by position
        assert conv.question_id.tolist() == conversation_order(inst, cfg, seed=3, persona_id=pid, replicate=rep)
        assert pd.isna(conv.previous_question.iloc[0])
        assert conv.previous_question.iloc[1:].tolist() == conv.question_id.iloc[:-1].tolist()
        items = conv[conv.question_id.isin(["A1", "A2", "A3"])]
        assert np.diff(items.question_position.to_numpy()).tolist() == [1, 1]  # a battery is one block
        assert items.item_position.tolist() == [0, 1, 2]
        firsts.add(conv.question_id.iloc[0])
        assert conv.loc[~conv.question_id.isin(["A1", "A2", "A3"]), "item_position"].isna().all()
    assert len(firsts) >= 3  # the block order is random (items too)
    fixed = DesignConfig(context="sequential", item_order="fixed", no_persona=False)
    d2 = build_design(pd.DataFrame({"persona_id": [1, 2]}), inst, fixed, seed=3)
    assert d2[d2.persona_id == 1].question_id.tolist() == ["therm", "A1", "A2", "A3", "q"]


def test_politics_design_unchanged_by_new_columns() -> None:
    """The columns that existed before issue 10 are byte for byte as the code before it built them
    (digest computed with the pre-issue-10 design.py): same seed, same design."""
    import hashlib

    from simsurvey.instruments.load import load_instrument

    inst = load_instrument("surveys/politics.yaml")
    d = build_design(pd.DataFrame({"persona_id": range(30)}), inst,
                     DesignConfig(orders=["as_is", "reversed", "shuffled"]), seed=20261123)
    old = ["persona_id", "question_id", "condition_id", "replicate", "order_mode", "label_style",
           "neutral_option", "cue_style", "option_order"]
    digest = hashlib.sha256(d[old].astype(str).to_csv(index=False).encode()).hexdigest()
    assert digest == "62168e23c80409e62c468af60cc6f5696eda30adb84d02eeeec87af14f38dfaf"
    assert d.experiment.isna().all() and d.question_position.isna().all()


@pytest.mark.parametrize("kw, match", [
    ({"context": "sequential", "assignment": "within"}, "cannot be combined"),
    ({"question_order": "randomized"}, "needs context 'sequential'"),
])
def test_design_config_errors(kw: dict, match: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=match):
        DesignConfig(**kw)
