"""Config of the population (persona sampler) stage. Owned by population/."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PopulationConfig(BaseModel):
    """``population:`` — which population spec to sample and how many personas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="Path of the population spec YAML (relative to the project root or cwd).")
    n: int = Field(gt=0, description="Number of personas to draw.")
