"""The report stage: a self-contained HTML report and wide Stata/SPSS exports of a run.

The re-exports are resolved lazily: ``simsurvey.config`` imports ``simsurvey.report.config``
on every start, which must not drag in matplotlib and scipy (nor risk an import cycle through
the instruments package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simsurvey.report.config import ReportConfig

if TYPE_CHECKING:
    from simsurvey.report._render import render_report
    from simsurvey.report.export import export_wide

__all__ = ["ReportConfig", "export_wide", "render_report"]


def __getattr__(name: str) -> Any:
    if name == "render_report":
        from simsurvey.report._render import render_report

        return render_report
    if name == "export_wide":
        from simsurvey.report.export import export_wide

        return export_wide
    raise AttributeError(f"module 'simsurvey.report' has no attribute {name!r}")
