"""Survey instruments (YAML -> validated models) and randomized designs."""

from simsurvey.instruments.config import DesignConfig, SurveyConfig
from simsurvey.instruments.design import DESIGN_COLUMNS, Condition, build_design, option_order, question_conditions
from simsurvey.instruments.load import load_instrument, parse_instrument
from simsurvey.instruments.models import Instrument, Option, Question, ReferenceMapping

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
