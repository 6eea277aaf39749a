"""Config of the population (persona sampler) stage. Owned by population/."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PopulationConfig(BaseModel):
    """``population:`` — which population spec to sample, how many personas, and raking controls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="Path of the population spec YAML (relative to the project root or cwd).")
    n: int = Field(gt=0, description="Number of personas to draw.")
    joint: Literal["spec", "raked", "independent"] = Field(
        default="spec",
        description="Joint structure: as the spec says, raked onto its seed microdata, or independent margins.",
    )
    ipf_tol: float = Field(
        default=1e-10, gt=0, lt=1e-2, description="IPF convergence: max |fitted marginal share - target share|."
    )
    ipf_max_iter: int = Field(default=1000, gt=0, description="IPF iteration cap; not converging is an error.")
    targets: Literal["spec", "reference"] = Field(
        default="spec",
        description="Target shares: the spec's own (census) figures, or the human reference sample's weighted "
        "composition, raked onto the reference microdata itself (personas that match the human sample, so a "
        "distance measures fidelity and not composition).",
    )
    reference_source: str | None = Field(
        default=None, description="With targets: reference, the reference source to match (default: the first of survey.reference).",
    )
    faker_pool: int = Field(
        default=2000, ge=10, le=1_000_000, description="Size of each Faker pool (first names, last names, cities, jobs)."
    )
