"""The analysis stage: silicon vs human metrics, bootstrap CIs, noise floor, order effects."""

from simsurvey.analysis.compare import AnalysisResult, analyze
from simsurvey.analysis.config import AnalysisConfig
from simsurvey.analysis.metrics import METRICS, MetricSpec
from simsurvey.analysis.order import order_effects, permutation_p_value

__all__ = ["METRICS", "AnalysisConfig", "AnalysisResult", "MetricSpec", "analyze", "order_effects",
           "permutation_p_value"]
