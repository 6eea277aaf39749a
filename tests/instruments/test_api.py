from __future__ import annotations

import simsurvey.instruments as instruments
import simsurvey.reference as reference


def test_public_api_is_pinned() -> None:
    assert sorted(instruments.__all__) == sorted([
        "DESIGN_COLUMNS", "Condition", "DesignConfig", "Instrument", "Option", "Question",
        "ReferenceMapping", "SurveyConfig", "build_design", "load_instrument", "option_order",
        "parse_instrument", "question_conditions",
    ])
    assert sorted(reference.__all__) == sorted([
        "BUILTIN", "empty_reference", "reference_columns",
        "load_reference", "reference_provenance",
    ])
    for mod in (instruments, reference):
        for name in mod.__all__:
            assert hasattr(mod, name), name
