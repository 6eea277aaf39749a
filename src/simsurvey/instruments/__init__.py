"""Survey instruments (YAML -> validated models) and randomized designs.

This module only re-exports, lazily: ``simsurvey.config`` imports ``simsurvey.instruments.config``
on every CLI start, which must not pay for pandas and pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simsurvey.instruments.config import DesignConfig, SurveyConfig

if TYPE_CHECKING:
    from simsurvey.instruments.design import DESIGN_COLUMNS, Condition, build_design, option_order, question_conditions
    from simsurvey.instruments.load import load_instrument, parse_instrument
    from simsurvey.instruments.models import Instrument, Option, Question, ReferenceMapping

_LAZY = {
    "DESIGN_COLUMNS": "simsurvey.instruments.design",
    "Condition": "simsurvey.instruments.design",
    "build_design": "simsurvey.instruments.design",
    "option_order": "simsurvey.instruments.design",
    "question_conditions": "simsurvey.instruments.design",
    "load_instrument": "simsurvey.instruments.load",
    "parse_instrument": "simsurvey.instruments.load",
    "Instrument": "simsurvey.instruments.models",
    "Option": "simsurvey.instruments.models",
    "Question": "simsurvey.instruments.models",
    "ReferenceMapping": "simsurvey.instruments.models",
}

__all__ = [
    "DESIGN_COLUMNS",
    "Condition",
    "DesignConfig",
    "Instrument",
    "Option",
    "Question",
    "ReferenceMapping",
    "SurveyConfig",
    "build_design",
    "load_instrument",
    "option_order",
    "parse_instrument",
    "question_conditions",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simsurvey.instruments' has no attribute {name!r}")
