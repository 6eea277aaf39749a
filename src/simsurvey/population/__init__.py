"""The population stage: population specs, raking (IPF), exact-count sampling, persona cues."""

from simsurvey.population.config import PopulationConfig
from simsurvey.population.cues import CUE_STYLES, render_cues
from simsurvey.population.integerize import integerize, largest_remainder
from simsurvey.population.ipf import IpfResult, ipf, marginals
from simsurvey.population.sample import PersonaSample, fit_joint, sample_personas
from simsurvey.population.spec import PopulationSpec, load_population_spec

__all__ = [
    "CUE_STYLES",
    "IpfResult",
    "PersonaSample",
    "PopulationConfig",
    "PopulationSpec",
    "fit_joint",
    "integerize",
    "ipf",
    "largest_remainder",
    "load_population_spec",
    "marginals",
    "render_cues",
    "sample_personas",
]
