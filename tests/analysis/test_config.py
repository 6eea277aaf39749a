"""AnalysisConfig defaults, the YAML defaults and the public API of the package."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

import simsurvey.analysis as analysis
from simsurvey.analysis import METRICS, AnalysisConfig
from simsurvey.config import PROJECT_ROOT, format_validation_error


def test_yaml_defaults_equal_model_defaults():
    data = yaml.safe_load((PROJECT_ROOT / "conf/analysis/default.yaml").read_text())
    assert AnalysisConfig.model_validate(data) == AnalysisConfig()
    # Null: the population spec's compare list (the US spec's below).
    assert AnalysisConfig().group_vars is None
    from simsurvey.reference.builtin import us_variables

    assert us_variables().compare == ("sex", "age", "race_ethnicity", "college", "region", "household_income")


def test_bad_values_give_one_line_errors():
    with pytest.raises(ValidationError) as err:
        AnalysisConfig(ci=1.5)
    assert format_validation_error(err.value, prefix="analysis.").startswith("analysis.ci:")
    with pytest.raises(ValidationError):
        AnalysisConfig(distrib="probs")  # extra keys are forbidden
    with pytest.raises(ValidationError):
        AnalysisConfig(distribution="logits")


def test_public_api_pinned():
    assert sorted(analysis.__all__) == ["AnalysisConfig", "AnalysisResult", "METRICS", "MetricSpec", "analyze",
                                        "context_effects", "order_effects", "permutation_p_value"]
    assert "js_divergence" in METRICS and "representativeness" in METRICS
