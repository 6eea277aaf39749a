from __future__ import annotations

from pathlib import Path

import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.errors import UserError
from simsurvey.instruments import load_instrument

GOOD = """
id: t
title: Test
questions:
  - id: q1
    kind: ordinal
    text: How much?
    options:
      - {code: 1, label: Low}
      - {code: 2, label: High}
      - {code: dk, label: Don't know, non_substantive: true}
    reference:
      - {dataset: ds, variable: v1, codes: {1.0: 1, 2: 2}, missing: [9]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "inst.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_politics_instrument_loads_and_every_mapping_targets_a_substantive_option() -> None:
    inst = load_instrument(PROJECT_ROOT / "surveys" / "politics.yaml")
    assert 8 <= len(inst.questions) <= 10
    assert set(inst.datasets) == {"cces2016", "anes1996"}
    for q in inst.questions:
        assert q.source, q.id
        for ref in q.reference:
            assert set(ref.codes.values()) <= set(q.substantive_codes), q.id
    # Reversed TV16 items are mapped the other way round from the as-asked ones.
    assert inst.question("racism_rare").reference_for("cces2016").codes["5"] == "strongly_agree"
    assert inst.question("white_advantage").reference_for("cces2016").codes["5"] == "strongly_disagree"
    assert inst.question("religion_importance").reference_for("cces2016").codes["4"] == "very_important"


def test_numbers_in_yaml_become_string_codes(tmp_path: Path) -> None:
    inst = load_instrument(_write(tmp_path, GOOD))
    q = inst.question("q1")
    assert q.codes == ("1", "2", "dk")
    assert q.substantive_codes == ("1", "2")
    assert q.reference[0].codes == {"1": "1", "2": "2"}
    assert q.reference[0].missing == ("9",)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.replace("{code: 2, label: High}", "{code: 1, label: High}"),
         "inst.yaml: question 'q1': duplicate option code '1'"),
        (lambda s: s.replace("      - {code: 2, label: High}\n", "").replace(", 2: 2", ""),
         "inst.yaml: question 'q1': an ordinal question needs at least 2 substantive options (got 1)"),
        (lambda s: s.replace("kind: ordinal", "kind: likert"), "inst.yaml: question 'q1': kind: Input should be"),
        (lambda s: s.replace("2: 2}", "2: 3}"),
         "inst.yaml: question 'q1': reference ds.v1 maps value '2' to unknown option code '3'"),
        (lambda s: s + s[s.index("  - id: q1"):], "inst.yaml: duplicate question id 'q1'"),
        (lambda s: s.replace("text: How much?", "txt: How much?"), "inst.yaml: question 'q1': text: missing required key"),
        (lambda s: s.replace("missing: [9]", "missing: [2]"), "lists value '2' both in codes and in missing"),
        (lambda s: s.replace("title: Test", "title: [unclosed"), "inst.yaml: YAML syntax error at line"),
        (lambda s: "- just\n- a list\n", "inst.yaml: expected a mapping"),
    ],
)
def test_bad_instruments_give_one_line_errors(tmp_path: Path, edit, expected: str) -> None:
    path = _write(tmp_path, edit(GOOD))
    with pytest.raises(UserError) as info:
        load_instrument(path)
    msg = str(info.value)
    assert expected in msg
    assert "\n" not in msg
    assert str(path) in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.yaml: instrument file not found"):
        load_instrument(tmp_path / "nope.yaml")
