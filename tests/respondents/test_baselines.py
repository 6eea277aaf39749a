"""Baseline respondents on hand-made reference frames."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simsurvey.errors import UserError
from simsurvey.instruments.models import Option, Question
from simsurvey.respondents.base import Backend
from simsurvey.respondents.baselines import MajorityBackend, ReferenceBackend, UniformBackend
from simsurvey.respondents.config import ModelConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.prompts import render_request
from simsurvey.reference.builtin import us_variables

Q = Question(
    id="pid3", text="Generally speaking, do you think of yourself as a...", kind="single_choice",
    options=(Option(code="dem", label="Democrat"), Option(code="rep", label="Republican"),
             Option(code="ind", label="Independent"), Option(code="dk", label="Don't know", non_substantive=True)),
)
MULTI = Question(
    id="news", text="Where do you get news?", kind="multi_select",
    options=(Option(code="tv", label="Television"), Option(code="web", label="Websites"), Option(code="radio", label="Radio")),
)


def cfg(backend: str, elicitation: str = "logprobs", **params) -> ModelConfig:
    return ModelConfig(backend=backend, name=backend, elicitation=elicitation, params=params)


def req(order=Q.codes, q=Q, persona=None, seed=0, elicitation="logprobs", style="letters"):
    return render_request(cue="x", question=q, option_order=order, label_style=style, prompt=PromptConfig(),
                          model=cfg("baseline/uniform", elicitation), seed=seed, prefix_key=None,
                          context={"persona": persona})


def run(backend, requests):
    return asyncio.run(backend.generate(requests))


def rows(spec):
    """spec: list of (answer_code, weight, demographics dict)."""
    return pd.DataFrame([
        {"source": "test", "respondent_id": str(i), "weight": w, "question_id": "pid3", "answer_code": a, **d}
        for i, (a, w, d) in enumerate(spec)
    ])


# ---- uniform ---------------------------------------------------------------------------------
def test_uniform_probs_over_substantive_displayed_options_in_display_order():
    b = UniformBackend(cfg("baseline/uniform"), seed=1)
    assert isinstance(b, Backend) and b.deterministic
    (r,) = run(b, [req(order=("dk", "ind", "rep", "dem"))])
    assert r.label_probs == (0.0, 1 / 3, 1 / 3, 1 / 3) and r.missing_mass == 0.0 and r.text is None
    (r2,) = run(b, [req(order=("ind", "rep"))])
    assert r2.label_probs == (0.5, 0.5)


def test_uniform_draws_are_seeded_per_request_and_uniform():
    b = UniformBackend(cfg("baseline/uniform", "sample"), seed=7)
    assert not b.deterministic
    reqs = [req(seed=s, elicitation="sample") for s in range(3000)]
    a = [r.text for r in run(b, reqs)]
    assert a[:50] == [r.text for r in run(b, list(reversed(reqs[:50])))][::-1]
    assert a != [r.text for r in run(UniformBackend(cfg("baseline/uniform", "sample"), seed=8), reqs)]
    counts = pd.Series(a).value_counts()
    assert set(counts.index) == {"A", "B", "C"}  # D = Don't know is never drawn
    assert stats.chisquare(counts.to_numpy()).pvalue > 1e-3


def test_uniform_multi_select_draws_non_empty_sets():
    b = UniformBackend(cfg("baseline/uniform", "sample"), seed=1)
    texts = [r.text for r in run(b, [req(q=MULTI, order=MULTI.codes, seed=s, elicitation="sample") for s in range(200)])]
    assert all(t for t in texts) and len(set(texts)) == 7  # all 2^3 - 1 non-empty subsets occur


# ---- majority --------------------------------------------------------------------------------
REF = rows([
    # unweighted mode is dem (3 rows), weighted mode is rep (weight 4.0 vs 3.0)
    ("dem", 1.0, {}), ("dem", 1.0, {}), ("dem", 1.0, {}), ("rep", 4.0, {}), ("ind", 1.5, {}), ("dk", 0.5, {}),
])


def test_majority_is_the_weighted_mode_in_display_order():
    b = MajorityBackend(cfg("baseline/majority", "both"), reference=REF, seed=0)
    r1, r2 = run(b, [req(elicitation="both"), req(order=("ind", "rep", "dem"), elicitation="both", style="text")])
    assert r1.label_probs == (0.0, 1.0, 0.0, 0.0) and r1.text == "B" and r1.missing_mass == 0.0
    assert r2.label_probs == (0.0, 1.0, 0.0) and r2.text == "Republican"
    assert r2.missing_mass == pytest.approx(0.5 / 9.0)  # Don't know (weight 0.5 of 9) not displayed


def test_majority_ties_do_not_depend_on_display_order():
    ref = rows([("rep", 2.0, {}), ("dem", 2.0, {})])
    b = MajorityBackend(cfg("baseline/majority", "sample"), reference=ref, seed=0)
    r1, r2 = run(b, [req(elicitation="sample", style="text"), req(order=("rep", "dem"), elicitation="sample", style="text")])
    assert r1.text == r2.text == "Democrat"


def test_majority_unknown_question_is_an_error_row():
    (r,) = run(MajorityBackend(cfg("baseline/majority"), reference=REF, seed=0), [req(q=MULTI, order=MULTI.codes)])
    assert r.error and "news" in r.error


def test_reference_frame_must_have_the_contract_columns():
    with pytest.raises(UserError, match="lacks column 'answer_code'"):
        MajorityBackend(cfg("baseline/majority"), reference=REF.drop(columns="answer_code"), seed=0)


# ---- reference -------------------------------------------------------------------------------
US = us_variables()  # the US spec's ladder: race, education, age, sex, region, income; college before sex
W, B = {"race_ethnicity": "white_nh"}, {"race_ethnicity": "black_nh"}
CELL = [
    # white, male, bachelors, 45-64, south: 6 respondents, weighted dem 1+2=3, rep 1+1+3=5, ind 2
    ("dem", 1.0, {**W, "sex": "male", "education": "bachelors", "age": "45-64", "region": "south"}),
    ("dem", 2.0, {**W, "sex": "male", "education": "bachelors", "age": "45-64", "region": "south"}),
    ("rep", 1.0, {**W, "sex": "male", "education": "bachelors", "age": "45-64", "region": "south"}),
    ("rep", 1.0, {**W, "sex": "male", "education": "bachelors", "age": "45-64", "region": "south"}),
    ("rep", 3.0, {**W, "sex": "male", "education": "bachelors", "age": "45-64", "region": "south"}),
    ("ind", 2.0, {**W, "sex": "male", "education": "bachelors", "age": "45-64", "region": "south"}),
    # white, male, graduate degree, 45-64, west: 5 respondents -> merges with the above at "college"
    *[("ind", 1.0, {**W, "sex": "male", "education": "graduate_or_professional", "age": "45-64", "region": "west"})] * 5,
    # black respondents of every kind
    *[("dem", 1.0, {**B, "sex": s, "education": "high_school_graduate", "age": "18-29", "region": "south"})
      for s in ("male", "female") for _ in range(3)],
    ("dk", 1.0, {**B, "sex": "female", "education": "high_school_graduate", "age": "18-29", "region": "south"}),
]
PERSONA = {"sex": "male", "age": "45-64", "race_ethnicity": "white_nh", "education": "bachelors",
           "region": "south", "household_income": "50k_100k"}


def ref_backend(elicitation="logprobs", **params):
    return ReferenceBackend(cfg("baseline/reference", elicitation, **params), reference=rows(CELL), seed=3,
                            variables=US)


def test_reference_full_cell_is_its_weighted_distribution():
    (r,) = run(ref_backend(), [req(persona=PERSONA)])
    # household_income is not in the reference data, so it is not matched on.
    assert r.extra == {"match_vars": ["race_ethnicity", "education", "age", "sex", "region"], "cell_n": 6}
    np.testing.assert_allclose(r.label_probs, [3 / 10, 5 / 10, 2 / 10, 0.0])
    assert r.missing_mass == 0.0


def test_reference_backs_off_in_the_documented_order():
    # 45-64 white man with a bachelor's in the west: no such cell; dropping region leaves 6
    # (>= min_cell 5) -> the bachelors cell without region.
    (r,) = run(ref_backend(), [req(persona={**PERSONA, "region": "west"})])
    assert r.extra == {"match_vars": ["race_ethnicity", "education", "age", "sex"], "cell_n": 6}
    # With min_cell 7 the bachelors cell is too small until education is coarsened to college:
    # 6 bachelors + 5 graduate = 11, weights dem 3, rep 5, ind 2 + 5.
    (r,) = run(ref_backend(min_cell=7), [req(persona=PERSONA)])
    assert r.extra == {"match_vars": ["race_ethnicity", "college", "age", "sex"], "cell_n": 11}
    np.testing.assert_allclose(r.label_probs, np.array([3, 5, 7, 0]) / 15)
    # An Asian persona matches no race cell: the whole sample.
    (r,) = run(ref_backend(), [req(persona={**PERSONA, "race_ethnicity": "asian_nh"})])
    assert r.extra == {"match_vars": [], "cell_n": len(CELL)}


def test_reference_no_persona_is_the_marginal_and_dk_hidden_is_missing_mass():
    (r,) = run(ref_backend(), [req(order=("ind", "rep", "dem"), persona=None)])
    total = sum(w for _, w, _ in CELL)
    dem = sum(w for a, w, _ in CELL if a == "dem")
    rep = sum(w for a, w, _ in CELL if a == "rep")
    ind = sum(w for a, w, _ in CELL if a == "ind")
    np.testing.assert_allclose(r.label_probs, np.array([ind, rep, dem]) / (total - 1.0))
    assert r.missing_mass == pytest.approx(1.0 / total)


def test_reference_draws_follow_the_cell_distribution():
    b = ref_backend("sample")
    res = run(b, [req(persona=PERSONA, seed=s, elicitation="sample", style="text") for s in range(4000)])
    counts = pd.Series([r.text for r in res]).value_counts().reindex(["Democrat", "Republican", "Independent"])
    assert stats.chisquare(counts.to_numpy(), 4000 * np.array([0.3, 0.5, 0.2])).pvalue > 1e-3
    assert [r.text for r in res[:20]] == [r.text for r in run(ref_backend("sample"), [req(persona=PERSONA, seed=s, elicitation="sample", style="text") for s in range(20)])]


def test_reference_multi_select_draws_human_sets():
    ref = pd.DataFrame({"source": "t", "respondent_id": ["1", "2"], "weight": [1.0, 1.0],
                        "question_id": "news", "answer_code": ["tv|radio", "tv|radio"]})
    b = ReferenceBackend(cfg("baseline/reference", "sample"), reference=ref, seed=0)
    (r,) = run(b, [req(q=MULTI, order=("radio", "web", "tv"), elicitation="sample")])
    assert r.text == "A, C" and r.label_probs is None
