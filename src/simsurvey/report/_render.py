"""``render_report``: one self-contained report.html (plus figures/) for a run directory."""

from __future__ import annotations

import logging
from pathlib import Path

from simsurvey.instruments.models import Instrument
from simsurvey.report import _html as H
from simsurvey.report._data import load_run
from simsurvey.io import write_bytes
from simsurvey.report._sections import SECTIONS, Ctx
from simsurvey.report.config import ReportConfig

log = logging.getLogger("simsurvey.report")

#: Marker of a section that raised; tests assert it never appears for well-formed runs.
SECTION_FAILED = "This section could not be drawn"


def render_report(
    run_dir: Path, *, instrument: Instrument | None = None, cfg: ReportConfig | None = None
) -> Path:
    """Write ``run_dir/report.html`` (self-contained: inline CSS and figures, no scripts).

    Every input file is optional: what is missing is said in the report. Figures are also
    written to ``run_dir/figures/``.

    Args:
        run_dir: a run directory (personas/responses/reference/metrics/order_effects parquet,
            manifest.json).
        instrument: the survey instrument, for question texts and option labels; when None it
            is loaded from the manifest's ``config.survey.instrument`` if possible, else codes
            are shown.
        cfg: report settings; defaults to ``ReportConfig()``.

    Returns:
        The path of report.html.
    """
    run_dir = Path(run_dir)
    cfg = cfg or ReportConfig()
    data = load_run(run_dir, instrument)
    ctx = Ctx(data, cfg)
    sections = []
    for anchor, title, build in SECTIONS:
        try:
            body = build(ctx)
        except Exception as err:  # noqa: BLE001 - one broken section must not cost the report
            log.exception("report section %s failed", anchor)
            body = H.note(f"{SECTION_FAILED}: {type(err).__name__}: {err}")
        if body == "":  # a section with nothing to say for this run (e.g. no survey experiments)
            continue
        sections.append((anchor, title, body))
    model = ", ".join(m for m in data.models if not m.startswith("baseline/")) or "no model"
    subtitle = f"{run_dir.name} · {model} · {data.manifest.get('started_at', 'start time unknown')}"
    html = H.page(cfg.title, subtitle, sections)
    out = run_dir / "report.html"
    write_bytes(out, html.encode("utf-8"))
    return out
