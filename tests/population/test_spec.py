"""Spec validation: one line naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.errors import UserError
from simsurvey.population import load_population_spec

DEFAULT = PROJECT_ROOT / "personas" / "us_adults.yaml"


def _spec(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT.read_text()
    assert old in text, old
    p = tmp_path / "s.yaml"
    p.write_text(text.replace(old, new, 1))
    return p


def test_default_spec_is_valid_and_sourced() -> None:
    spec = load_population_spec(DEFAULT)
    assert list(spec.attributes) == ["sex", "age", "race_ethnicity", "education", "region", "household_income"]
    for name, attr in spec.attributes.items():
        assert abs(attr.shares.sum() - 1) < 1e-9
        for key in ("table", "year", "universe", "status"):
            assert key in attr.source, (name, key)
    assert "25+" in spec.attributes["education"].caveat
    # Income coarsened from the S1901 published percents (sum 100.1).
    inc = dict(zip(spec.attributes["household_income"].codes, spec.attributes["household_income"].shares))
    for code, pct in {"under_50k": 5.5 + 3.7 + 6.8 + 7.3 + 10.7, "50k_100k": 16.2 + 12.8,
                      "100k_150k": 16.9, "150k_plus": 8.7 + 11.5}.items():
        assert inc[code] == pytest.approx(pct / 100.1, abs=5e-5)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{code: female, label: Female, share: 0.5088", "{code: female, label: Female, share: -0.5088",
         r"attributes\.sex\.female\.share: must be >= 0"),
        ("{code: male, label: Male, share: 0.4912", "{code: male, label: Male, share: 0.4913",
         r"attributes\.sex: shares sum to 1\.0001, not 1"),
        ("{code: male, label: Male,", "{code: female, label: Male,", r"attributes\.sex: duplicate category code 'female'"),
        ("  expand:\n    education:", "  expand:\n    schooling:", r"seed\.expand\.schooling: not an attribute"),
        ("    from: education\n", "    from: schooling\n", r"derived\.college\.from: unknown attribute 'schooling'"),
        ("name: us_adults\n", "name: us_adults\ncolour: blue\n", r"colour: unknown key"),
        ("      - {code: \"65+\", label: \"65 or older\", share: 0.2216, years: [65, 90]}",
         "      - {code: \"65+\", label: \"65 or older\", share: 0.2216}", r"attributes\.age: every category needs years"),
    ],
)
def test_bad_spec_one_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    p = _spec(tmp_path, old, new)
    with pytest.raises(UserError, match=message) as info:
        load_population_spec(p)
    assert str(info.value).startswith(str(p)) and "\n" not in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="population spec not found"):
        load_population_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("attributes: [unclosed\n")
    with pytest.raises(UserError, match=r"bad\.yaml: YAML syntax error at line \d+"):
        load_population_spec(bad)
