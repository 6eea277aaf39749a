"""The population's variables: one definition read from the spec, stored with the personas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simsurvey.config import PROJECT_ROOT
from simsurvey.errors import UserError
from simsurvey.population.config import PopulationConfig
from simsurvey.population.sample import sample_personas
from simsurvey.population.spec import load_population_spec
from simsurvey.population.variables import Variables, default_cells, population_of, read_variables, variables_metadata

US_SPEC = PROJECT_ROOT / "personas" / "us_adults.yaml"


def _spec(tmp_path: Path, **extra) -> Path:
    """A two-country-agnostic toy spec: attributes named and coded nothing like the US ones."""
    data = {
        "name": "toy",
        "locale": "no_NO",
        "attributes": {
            "year": {"label": "Survey year", "source": {"note": "design"}, "statement": "It is {label}.",
                     "categories": [{"code": "1990", "label": "1990", "share": 0.5},
                                    {"code": "2020", "label": "2020", "share": 0.5}]},
            "sex": {"label": "Kjønn", "source": {"note": "x"},
                    "categories": [{"code": "female", "label": "Female", "share": 0.5, "noun": "woman"},
                                   {"code": "male", "label": "Male", "share": 0.5, "noun": "man"}]},
            "age": {"label": "Age", "source": {"note": "x"},
                    "categories": [{"code": "young", "label": "18-49", "share": 0.6, "years": [18, 49]},
                                   {"code": "old", "label": "50+", "share": 0.4, "years": [50, 85]}]},
            "fylke": {"label": "Region", "source": {"note": "x"}, "backstory": "I live in {text}.",
                      "categories": [{"code": "oslo", "label": "Oslo", "share": 0.3},
                                     {"code": "nord", "label": "Nord-Norge", "share": 0.7}]},
            "edu": {"label": "Education", "source": {"note": "x"}, "ordered": True,
                    "categories": [{"code": "low", "label": "Up to 10 years", "share": 0.4},
                                   {"code": "mid", "label": "11-13 years", "share": 0.35},
                                   {"code": "high", "label": "14+ years", "share": 0.25}]},
        },
        "derived": {"tertiary": {"from": "edu", "label": "Tertiary", "map": {"low": "no", "mid": "no", "high": "yes"},
                                 "labels": {"no": "No", "yes": "Yes"}}},
        **extra,
    }
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return p


def test_variables_come_from_the_spec_in_order_with_derived_after_their_source(tmp_path: Path) -> None:
    v = load_population_spec(_spec(tmp_path)).variables
    assert v.names == ("year", "sex", "age", "fylke", "edu", "tertiary")
    assert v.codes("tertiary") == ("no", "yes") and v.label_of("tertiary", "yes") == "Yes"
    assert v["tertiary"].derived_from == "edu" and v["edu"].ordered and v["age"].ordered and not v["fylke"].ordered
    assert v.compare == v.names  # no compare list: every variable
    # Default ladder: drop from the end; edu is coarsened to tertiary before it goes.
    assert v.cells == (("year", "sex", "age", "fylke", "edu"), ("year", "sex", "age", "fylke", "tertiary"),
                       ("year", "sex", "age", "fylke"), ("year", "sex", "age"), ("year", "sex"), ("year",), ())
    assert Variables.from_json(v.to_json()) == v


def test_default_cells_by_hand() -> None:
    assert default_cells(["a", "b"], {"a": "a2"}) == (("a", "b"), ("a",), ("a2",), ())
    assert default_cells([], {}) == ((),)


def test_us_spec_declares_the_historical_ladder_and_compare_list() -> None:
    v = load_population_spec(US_SPEC).variables
    assert v.cells[3] == ("race_ethnicity", "college", "age", "sex") and v.cells[-1] == ()
    assert "education" not in v.compare and "college" in v.compare
    assert v.places["region"]["tx"] == "south" and v.places["region"]["district of columbia"] == "south"
    assert len({k for k in v.places["region"] if len(k) == 2}) == 51


def test_band_reads_the_spec_bands_and_flags_impossible_ages(tmp_path: Path) -> None:
    v = load_population_spec(_spec(tmp_path)).variables
    codes, outside = v.band("age", pd.Series([17, 18, 49.5, 50, 85, 101, 120, 121, 999, -1, np.nan, "x"]))
    assert codes.tolist() == [pd.NA, "young", "young", "old", "old", "old", "old", pd.NA, pd.NA, pd.NA, pd.NA, pd.NA]
    assert outside.tolist() == [False] * 7 + [True, True, True, False, False]
    with pytest.raises(KeyError):
        v.band("fylke", pd.Series([1]))


def test_derive_fills_only_what_is_missing(tmp_path: Path) -> None:
    v = load_population_spec(_spec(tmp_path)).variables
    f = pd.DataFrame({"edu": ["low", "high", None], "tertiary": [None, "no", None]}, dtype="string")
    assert v.derive(f)["tertiary"].tolist() == ["no", "no", pd.NA]  # a given value is kept
    assert v.derive(pd.DataFrame({"edu": ["high"]}))["tertiary"].tolist() == ["yes"]
    assert v.derive_one({"edu": "mid"}) == {"edu": "mid", "tertiary": "no"}


def test_spec_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"toy.yaml: compare: unknown attribute 'income'"):
        load_population_spec(_spec(tmp_path, compare=["sex", "income"]))
    with pytest.raises(UserError, match=r"baseline_cells\[1\]: unknown attribute 'x'"):
        load_population_spec(_spec(tmp_path, baseline_cells=[["sex"], ["x"]]))


def test_personas_carry_their_population_and_a_statement_leads_every_cue(tmp_path: Path) -> None:
    cfg = PopulationConfig(spec=str(_spec(tmp_path)), n=40)
    for style in ("attributes", "backstory", "name"):
        s = sample_personas(cfg, seed=3, cue_style=style)
        for year, cue in zip(s.frame["year"], s.frame["cue"]):
            assert cue.startswith(f"It is {year}."), (style, cue)
        assert "Survey year" not in s.frame["cue"].iloc[0]
    s = sample_personas(cfg, seed=3, cue_style="attributes")
    assert s.frame["cue"].iloc[0].split("\n")[1].startswith("Kjønn: ")
    assert set(s.frame.columns) >= {"year", "sex", "age", "fylke", "edu", "tertiary"}
    assert s.diagnostics["faker"]["locale"] == "no_NO"
    from simsurvey.io import write_parquet

    path = write_parquet(s.frame, tmp_path / "personas.parquet", kind="personas", metadata=variables_metadata(s.variables))
    assert read_variables(path) == s.variables


def test_population_of_reads_old_frames_without_metadata() -> None:
    personas = pd.DataFrame({"persona_id": [0, 1], "weight": 1.0, "sex": ["male", "female"], "cue": "x",
                             "name": "n", "age_years": 30})
    reference = pd.DataFrame({"respondent_id": ["a"], "sex": ["female"], "question_id": "q"})
    v = population_of(personas, reference)
    assert v.names == ("sex",) and v.codes("sex") == ("female", "male")


def test_an_unknown_locale_is_one_line(tmp_path: Path) -> None:
    cfg = PopulationConfig(spec=str(_spec(tmp_path, locale="xx_YY")), n=4)
    with pytest.raises(UserError, match=r"locale: 'xx_YY' is not a Faker locale"):
        sample_personas(cfg, seed=1, cue_style="attributes")


def test_a_country_is_named_in_every_cue_style_without_a_states_file(tmp_path: Path) -> None:
    cues = {style: sample_personas(PopulationConfig(spec=str(_spec(tmp_path, country="Norway")), n=4), seed=1,
                                   cue_style=style).frame["cue"].iloc[0] for style in ("attributes", "backstory", "name")}
    assert "\nCountry: Norway\n" in cues["attributes"]
    assert " living in Norway." in cues["backstory"]
    assert cues["name"].endswith(" and you live in Norway.")
    plain = sample_personas(PopulationConfig(spec=str(_spec(tmp_path)), n=4), seed=1, cue_style="name").frame["cue"]
    assert plain.iloc[0].endswith(".") and "live in" not in plain.iloc[0]
