"""The population stage: population specs, raking (IPF), exact-count sampling, persona cues.

This module only re-exports, lazily: ``simsurvey.config`` imports ``simsurvey.population.config``
on every CLI start, which must not pay for numpy, pandas and Faker.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from simsurvey.population.config import PopulationConfig

if TYPE_CHECKING:
    from simsurvey.population.cues import CUE_STYLES, render_cues
    from simsurvey.population.integerize import integerize, largest_remainder
    from simsurvey.population.ipf import IpfResult, ipf, marginals
    from simsurvey.population.sample import PersonaSample, fit_joint, sample_personas
    from simsurvey.population.spec import PopulationSpec, load_population_spec

_LAZY = {
    "CUE_STYLES": "simsurvey.population.cues",
    "render_cues": "simsurvey.population.cues",
    "integerize": "simsurvey.population.integerize",
    "largest_remainder": "simsurvey.population.integerize",
    "IpfResult": "simsurvey.population.ipf",
    "ipf": "simsurvey.population.ipf",
    "marginals": "simsurvey.population.ipf",
    "PersonaSample": "simsurvey.population.sample",
    "fit_joint": "simsurvey.population.sample",
    "sample_personas": "simsurvey.population.sample",
    "PopulationSpec": "simsurvey.population.spec",
    "load_population_spec": "simsurvey.population.spec",
}

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simsurvey.population' has no attribute {name!r}")


class _Package(types.ModuleType):
    """``ipf`` and ``integerize`` name a function and also the submodule defining it. Importing
    the submodule binds the package attribute to the module, which would then shadow the
    function forever (``__getattr__`` only runs for missing names); the function wins, as it did
    when this file imported it eagerly."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
