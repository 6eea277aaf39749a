"""Config of the survey instrument and the randomized design. Owned by instruments/."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SurveyConfig(BaseModel):
    """``survey:`` — which instrument to administer and which human reference data to compare with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instrument: str = Field(description="Path of the instrument YAML.")


class DesignConfig(BaseModel):
    """``design:`` — the randomized design (conditions, assignment, replicates, cue style)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cue: str = Field(default="attributes", description="Persona cue style: attributes, backstory or name.")
