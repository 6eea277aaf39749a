from __future__ import annotations

import pytest
from pydantic import ValidationError

from simsurvey.instruments import Instrument, Option, Question


def _q(**kw) -> Question:
    base = dict(
        id="q",
        text="?",
        kind="ordinal",
        options=(
            Option(code="a", label="A"),
            Option(code="m", label="M", neutral=True),
            Option(code="b", label="B"),
            Option(code="dk", label="DK", non_substantive=True),
        ),
    )
    base.update(kw)
    return Question(**base)


def test_code_views() -> None:
    q = _q()
    assert q.codes == ("a", "m", "b", "dk")
    assert q.substantive_codes == ("a", "b")
    assert q.has_neutral
    assert q.displayed_codes() == ("a", "b", "dk")
    assert q.displayed_codes(neutral=True) == ("a", "m", "b", "dk")
    assert q.option("m").neutral
    with pytest.raises(KeyError):
        q.option("zz")


def test_models_are_frozen_and_reject_unknown_keys() -> None:
    q = _q()
    with pytest.raises(ValidationError):
        q.id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        Option(code="a", label="A", colour="red")  # type: ignore[call-arg]


def test_instrument_lookup_and_duplicate_ids() -> None:
    inst = Instrument(id="i", title="t", questions=(_q(), _q(id="r")))
    assert inst.question_ids == ("q", "r")
    assert inst.question("r").id == "r"
    with pytest.raises(ValidationError, match="duplicate question id 'q'"):
        Instrument(id="i", title="t", questions=(_q(), _q()))
