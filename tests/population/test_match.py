"""population.targets=reference: personas drawn to a known human sample's weighted composition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simsurvey.errors import UserError
from simsurvey.paths import resolve_path
from simsurvey.population import PopulationConfig, sample_personas
from simsurvey.population.composition import composition, coverage
from simsurvey.population.match import match_reference
from simsurvey.population.spec import load_population_spec

SPEC = "personas/us_adults.yaml"
N = 20_000  # the joint of a sparse table is integerized to within ~0.01 at 2,000 personas, ~0.0003 here


def _known_reference(seed: int = 3, n: int = 3000) -> pd.DataFrame:
    """A human sample with a strong sex x race association, weights, no other_multiple_nh, college
    but no education, income 10% missing and no region; then a second source."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n, p=[0.55, 0.45])
    race = np.where(sex == "female", rng.choice(["white_nh", "black_nh", "hispanic", "asian_nh"], n, p=[0.4, 0.4, 0.15, 0.05]),
                    rng.choice(["white_nh", "black_nh", "hispanic", "asian_nh"], n, p=[0.8, 0.05, 0.1, 0.05]))
    age = rng.choice(["18-29", "30-44", "45-64", "65+"], n, p=[0.1, 0.2, 0.3, 0.4])
    college = np.where(age == "65+", rng.choice(["yes", "no"], n, p=[0.6, 0.4]), rng.choice(["yes", "no"], n, p=[0.2, 0.8]))
    income = rng.choice(["under_50k", "50k_100k", "100k_150k", "150k_plus"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    income[rng.random(n) < 0.1] = None
    people = pd.DataFrame({
        "source": "known", "respondent_id": [f"r{i}" for i in range(n)], "weight": rng.uniform(0.5, 2.0, n),
        "sex": sex, "age": age, "race_ethnicity": race, "education": None, "college": college, "region": None,
        "household_income": income,
    })
    # Each respondent answered two questions: the composition counts them once.
    rows = pd.concat([people.assign(question_id=q, answer_code="x") for q in ("q1", "q2")], ignore_index=True)
    other = people.head(50).assign(source="other", sex="female", question_id="q1", answer_code="x")
    return pd.concat([rows, other], ignore_index=True).astype(
        {c: "string" for c in ("sex", "age", "race_ethnicity", "education", "college", "region", "household_income")})


@pytest.fixture(scope="module")
def known() -> pd.DataFrame:
    return _known_reference()


@pytest.fixture(scope="module")
def matched(known):
    cfg = PopulationConfig(spec=SPEC, n=N, targets="reference")
    return sample_personas(cfg, seed=5, cue_style="attributes", reference=known)


def _weighted(people: pd.DataFrame, col: str) -> pd.Series:
    p = people[people[col].notna()]
    return p.groupby(col)["weight"].sum() / p["weight"].sum()


def test_each_recorded_attribute_matches_the_weighted_reference_within_1_over_n(known, matched):
    people = known[(known["source"] == "known") & (known["question_id"] == "q1")]
    personas = matched.frame
    for col in ("sex", "age", "race_ethnicity", "household_income", "college"):
        want = _weighted(people, col)
        got = personas[col].value_counts(normalize=True).reindex(want.index, fill_value=0.0)
        # college is the sum of 2-3 education codes, each within 1/n
        tol = (3 if col == "college" else 1) / N + 1e-12
        assert np.abs(got - want).max() <= tol, col
    # a code no respondent has gets no persona
    assert not (personas["race_ethnicity"] == "other_multiple_nh").any()


def test_coarse_and_unrecorded_attributes(matched):
    spec = load_population_spec(resolve_path(SPEC, key="population.spec"))
    personas = matched.frame
    # education only through college: within college yes, the split follows the spec's shares
    sh = dict(zip(spec.attributes["education"].codes, spec.attributes["education"].shares))
    yes = personas[personas["college"] == "yes"]["education"].value_counts(normalize=True)
    assert yes["bachelors"] == pytest.approx(sh["bachelors"] / (sh["bachelors"] + sh["graduate_or_professional"]), abs=0.01)
    # region is not recorded: the spec's targets, within 1/n
    region = personas["region"].value_counts(normalize=True)
    for code, share in zip(spec.attributes["region"].codes, spec.attributes["region"].shares):
        assert abs(region[code] - share) <= 1 / N + 1e-12
    d = matched.diagnostics
    assert d["targets"] == "reference" and d["reference_source"] == "known"
    assert d["attribute_handling"]["sex"] == "matched to known"
    assert d["attribute_handling"]["region"].startswith("spec targets, independent")
    assert "college" in d["attribute_handling"]["education"] and "education" in d["assumptions"]
    assert d["reference_respondents"] == 3000 and 0 < d["seed_rows"] < 3000  # income's nulls leave the seed
    assert d["sample_within_1_over_n"]


def test_joint_of_two_attributes_follows_the_reference(known, matched):
    people = known[(known["source"] == "known") & (known["question_id"] == "q1")]
    want = people.groupby(["sex", "race_ethnicity"])["weight"].sum() / people["weight"].sum()
    got = matched.frame.groupby(["sex", "race_ethnicity"]).size() / N
    got = got.reindex(want.index, fill_value=0.0)
    assert np.abs(got - want).max() < 0.003
    # the test can fail: independent margins would be far off this joint
    ms, mr = want.groupby(level=0).sum(), want.groupby(level=1).sum()
    indep = pd.Series([ms[s] * mr[r] for s, r in want.index], index=want.index)
    assert np.abs(indep - want).max() > 0.05


def test_matched_personas_are_covered_by_their_source(known, matched):
    from simsurvey.population.spec import load_population_spec

    variables = load_population_spec(resolve_path(SPEC, key="population.spec")).variables
    comp = composition(matched.frame, known[known["source"] == "known"], variables)
    assert coverage(comp).ok and comp.uncovered_personas() == 0
    tv = comp.distance().set_index("variable")["total_variation"]
    assert tv["sex"] <= 1 / N + 1e-12 and tv["race_ethnicity"] <= 2 / N + 1e-12


def test_the_source_can_be_chosen_and_an_unknown_one_is_one_line(known):
    spec = load_population_spec(resolve_path(SPEC, key="population.spec"))
    m = match_reference(spec, known, "other")
    assert m.source == "other" and m.margins[0].tolist() == [1.0, 0.0]  # that source has women only
    with pytest.raises(UserError, match=r"population.reference_source: 'nope' is not a source .*known, other"):
        match_reference(spec, known, "nope")
    with pytest.raises(UserError, match="needs the human reference"):
        sample_personas(PopulationConfig(spec=SPEC, n=10, targets="reference"), seed=1, cue_style="attributes")


def test_a_source_without_any_population_attribute_is_refused(known):
    spec = load_population_spec(resolve_path(SPEC, key="population.spec"))
    bare = known.assign(**{c: pd.array([None] * len(known), dtype="string")
                           for c in ("sex", "age", "race_ethnicity", "college", "household_income")})
    with pytest.raises(UserError, match="records none of the population's attributes"):
        match_reference(spec, bare)
