"""The analysis stage: silicon vs human metrics, sampling nulls, calibrated CIs, order effects.

This module only re-exports, lazily: ``simsurvey.config`` imports ``simsurvey.analysis.config``
on every CLI start, which must not pay for pandas and scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simsurvey.analysis.config import AnalysisConfig

if TYPE_CHECKING:
    from simsurvey.analysis.compare import AnalysisResult, analyze
    from simsurvey.analysis.context import context_effects
    from simsurvey.analysis.metrics import METRICS, MetricSpec
    from simsurvey.analysis.order import order_effects, permutation_p_value

_LAZY = {
    "AnalysisResult": "simsurvey.analysis.compare",
    "analyze": "simsurvey.analysis.compare",
    "context_effects": "simsurvey.analysis.context",
    "METRICS": "simsurvey.analysis.metrics",
    "MetricSpec": "simsurvey.analysis.metrics",
    "order_effects": "simsurvey.analysis.order",
    "permutation_p_value": "simsurvey.analysis.order",
}

__all__ = ["METRICS", "AnalysisConfig", "AnalysisResult", "MetricSpec", "analyze", "context_effects",
           "order_effects", "permutation_p_value"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simsurvey.analysis' has no attribute {name!r}")
