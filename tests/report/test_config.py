from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from simsurvey.config import PROJECT_ROOT
from simsurvey.report.config import ReportConfig


def test_defaults_and_conf_file_agree():
    data = yaml.safe_load((PROJECT_ROOT / "conf" / "report" / "default.yaml").read_text())
    cfg = ReportConfig.model_validate(data)
    assert cfg == ReportConfig()
    assert cfg.figure_format == "svg" and cfg.export_formats == ["dta", "sav"]


@pytest.mark.parametrize("bad", [{"figure_format": "gif"}, {"max_groups": 0}, {"export_formats": ["xlsx"]},
                                 {"colour": "red"}])
def test_bad_values_rejected(bad):
    with pytest.raises(ValidationError):
        ReportConfig.model_validate(bad)


def test_frozen_and_documented():
    with pytest.raises(ValidationError):
        ReportConfig().title = "x"  # type: ignore[misc]
    assert all(f.description for f in ReportConfig.model_fields.values())


def test_public_api_pinned():
    import simsurvey.report as report

    assert sorted(report.__all__) == ["ReportConfig", "export_wide", "render_report"]
    assert callable(report.render_report) and callable(report.export_wide)
