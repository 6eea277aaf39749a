"""Shared fixtures: the default spec sampled once per session (sampling is deterministic)."""

from __future__ import annotations

import pytest

from simsurvey.population import PersonaSample, PopulationConfig, sample_personas

SPEC = "personas/us_adults.yaml"


@pytest.fixture(scope="session")
def big_sample() -> PersonaSample:
    return sample_personas(PopulationConfig(spec=SPEC, n=100_000), seed=7, cue_style="attributes")


@pytest.fixture(scope="session")
def small_sample() -> PersonaSample:
    return sample_personas(PopulationConfig(spec=SPEC, n=300), seed=11, cue_style="backstory")
