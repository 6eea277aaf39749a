"""Config of the report stage. Owned by report/."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReportConfig(BaseModel):
    """``report:`` — the HTML report and exports."""

    model_config = ConfigDict(extra="forbid", frozen=True)
