"""The population package's public names and config validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import simsurvey.population as population
from simsurvey.config import format_validation_error
from simsurvey.population import PopulationConfig


def test_public_api_is_pinned() -> None:
    assert sorted(population.__all__) == [
        "CUE_STYLES", "IpfResult", "PersonaSample", "PopulationConfig", "PopulationSpec", "fit_joint",
        "integerize", "ipf", "largest_remainder", "load_population_spec", "marginals", "render_cues",
        "sample_personas",
    ]


@pytest.mark.parametrize(("field", "value"), [("n", 0), ("ipf_tol", 0.0), ("ipf_max_iter", 0), ("joint", "copula")])
def test_bad_config_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        PopulationConfig(spec="personas/us_adults.yaml", **{field: value, **({} if field == "n" else {"n": 5})})
    line = format_validation_error(info.value, prefix="population.")
    assert line.startswith(f"population.{field}: ") and "\n" not in line
