"""Pins the public API: a change here is a change users see."""

import simsurvey


def test_public_names():
    assert sorted(simsurvey.__all__) == sorted([
        "Config", "ConfigError", "SimsurveyError", "UserError", "administer", "analyze",
        "build_design", "export_wide", "load_instrument", "load_reference", "render_report", "run",
        "sample_personas", "validate_config",
    ])


def test_every_public_name_resolves():
    for name in simsurvey.__all__:
        assert callable(getattr(simsurvey, name)) or isinstance(getattr(simsurvey, name), type), name
