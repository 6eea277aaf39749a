"""simsurvey: can an LLM "silicon sample" stand in for a human sample?

Every stage is a library call as well as a CLI step::

    from simsurvey import sample_personas, build_design, administer, analyze, render_report

This module only re-exports. The stage functions are resolved on first use, so importing
``simsurvey`` (or its config, on every CLI start) does not import torch, litellm or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simsurvey.config import Config, validate_config
from simsurvey.errors import ConfigError, SimsurveyError, UserError

if TYPE_CHECKING:
    from simsurvey.analysis import analyze
    from simsurvey.instruments import build_design, load_instrument
    from simsurvey.pipeline import run
    from simsurvey.population import sample_personas
    from simsurvey.reference import load_reference
    from simsurvey.report import export_wide, render_report
    from simsurvey.runner import administer

_LAZY = {
    "sample_personas": "simsurvey.population",
    "load_instrument": "simsurvey.instruments",
    "build_design": "simsurvey.instruments",
    "load_reference": "simsurvey.reference",
    "administer": "simsurvey.runner",
    "analyze": "simsurvey.analysis",
    "render_report": "simsurvey.report",
    "export_wide": "simsurvey.report",
    "run": "simsurvey.pipeline",
}

__all__ = [
    "Config", "ConfigError", "SimsurveyError", "UserError", "administer", "analyze",
    "build_design", "export_wide", "load_instrument", "load_reference", "render_report", "run",
    "sample_personas", "validate_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simsurvey' has no attribute {name!r}")
