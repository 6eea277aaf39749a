"""Config of the analysis stage. Owned by analysis/."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AnalysisConfig(BaseModel):
    """``analysis:`` — metrics, grouping variables, bootstrap."""

    model_config = ConfigDict(extra="forbid", frozen=True)
