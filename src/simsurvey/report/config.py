"""Config of the report stage. Owned by report/."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReportConfig(BaseModel):
    """``report:`` — the HTML report and exports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(
        default="simsurvey report",
        min_length=1,
        description="Title shown at the top of report.html and in the browser tab.",
    )
    figure_format: Literal["svg", "png"] = Field(
        default="svg",
        description="Figure format: svg (inline, sharp, searchable text) or png (base64, smaller for huge figures).",
    )
    max_groups: int = Field(
        default=12,
        ge=1,
        le=200,
        description="Most subgroups (demographic values) drawn per figure; the largest groups by human n are kept.",
    )
    export_formats: list[Literal["dta", "sav"]] = Field(
        default_factory=lambda: ["dta", "sav"],
        description="Wide-format response exports to write: dta (Stata) and/or sav (SPSS); [] for none.",
    )
    png_dpi: int = Field(
        default=110, ge=50, le=400, description="Resolution of PNG figures (ignored for svg)."
    )
