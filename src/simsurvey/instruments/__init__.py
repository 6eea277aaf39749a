"""Survey instruments (YAML -> validated models) and randomized designs."""

from simsurvey.instruments.config import DesignConfig, SurveyConfig
from simsurvey.instruments.load import load_instrument, parse_instrument
from simsurvey.instruments.models import Instrument, Option, Question, ReferenceMapping

__all__ = [
    "DesignConfig",
    "Instrument",
    "Option",
    "Question",
    "ReferenceMapping",
    "SurveyConfig",
    "load_instrument",
    "parse_instrument",
]
