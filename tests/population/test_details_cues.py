"""Faker details (sex-consistent names, ages in band, state in region) and the three cue styles."""

from __future__ import annotations

import pandas as pd
import pytest
from faker.providers.person.en_US import Provider as Person

from simsurvey.config import PROJECT_ROOT
from simsurvey.population import PopulationConfig, load_population_spec, sample_personas

SPEC = "personas/us_adults.yaml"
STATES = pd.read_csv(PROJECT_ROOT / "personas" / "us_states_adults_2022.csv", comment="#")


def test_names_match_sex(big_sample) -> None:
    f = big_sample.frame
    first = f["name"].str.split(" ").str[0]
    fem, male = set(Person.first_names_female), set(Person.first_names_male)
    assert first[f["sex"] == "female"].isin(fem).all()
    assert first[f["sex"] == "male"].isin(male).all()
    assert first.nunique() > 200  # pools, not one name


def test_ages_in_band_and_states_in_region(big_sample) -> None:
    f = big_sample.frame
    spec = load_population_spec(PROJECT_ROOT / SPEC)
    for cat in spec.attributes["age"].categories:
        ages = f.loc[f["age"] == cat.code, "age_years"]
        assert ages.between(*cat.years).all() and ages.nunique() > 5
    region_of = dict(zip(STATES["state_code"], STATES["region"]))
    assert (f["state"].map(region_of) == f["region"]).all()
    # Within the South, Texas (22.6M adults) is drawn about 22.6/100.1 of the time.
    south = f[f["region"] == "south"]
    tx = STATES.set_index("state_code").loc["TX", "adults_18plus"] / STATES.loc[STATES.region == "south", "adults_18plus"].sum()
    assert (south["state"] == "TX").mean() == pytest.approx(tx, abs=0.01)


def _expected(row: pd.Series, spec, style: str) -> str:
    # Per-row Python, independent of the vectorized implementation.
    state = STATES.set_index("state_code").loc[row["state"], "state"]
    a = spec.attributes
    lab = {k: {c.code: c for c in v.categories} for k, v in a.items()}
    if style == "name":
        return f"Your name is {row['name']} and you live in {row['city']}, {state}."
    if style == "attributes":
        return "\n".join([
            f"Sex: {lab['sex'][row['sex']].label}", f"Age: {row['age_years']}",
            f"Race/ethnicity: {lab['race_ethnicity'][row['race_ethnicity']].label}",
            f"Education: {lab['education'][row['education']].label}",
            f"Region: {lab['region'][row['region']].label} ({state})",
            f"Household income: {lab['household_income'][row['household_income']].label}",
        ])
    return (f"I am a {row['age_years']}-year-old {lab['sex'][row['sex']].noun} living in {state}. "
            f"Racially, I am {lab['race_ethnicity'][row['race_ethnicity']].text}. "
            f"{lab['education'][row['education']].text} {lab['household_income'][row['household_income']].text}")


@pytest.mark.parametrize("style", ["attributes", "backstory", "name"])
def test_cue_styles(style: str) -> None:
    spec = load_population_spec(PROJECT_ROOT / SPEC)
    f = sample_personas(PopulationConfig(spec=SPEC, n=200), seed=3, cue_style=style).frame
    for _, row in f.head(60).iterrows():
        assert row["cue"] == _expected(row, spec, style)


def test_cue_style_does_not_change_personas() -> None:
    cfg = PopulationConfig(spec=SPEC, n=300)
    a = sample_personas(cfg, seed=5, cue_style="name").frame.drop(columns="cue")
    b = sample_personas(cfg, seed=5, cue_style="backstory").frame.drop(columns="cue")
    pd.testing.assert_frame_equal(a, b)
