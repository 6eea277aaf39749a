"""sample_personas: contract columns, exact marginals at N=100,000, determinism, joint structure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association

from simsurvey.config import PROJECT_ROOT
from simsurvey.errors import UserError
from simsurvey.io import write_parquet
from simsurvey.population import PopulationConfig, fit_joint, load_population_spec, marginals, sample_personas

SPEC = "personas/us_adults.yaml"

CONTRACT = ["persona_id", "weight", "sex", "age", "race_ethnicity", "education", "college", "region",
            "household_income", "age_years", "name", "state", "city", "occupation", "cue"]


def test_contract_columns(small_sample) -> None:
    f = small_sample.frame
    assert list(f.columns) == CONTRACT
    assert f["persona_id"].dtype == np.int64 and f["persona_id"].tolist() == list(range(300))
    assert f["weight"].dtype == np.float64 and (f["weight"] == 1.0).all()
    assert not f.isna().any().any()
    college = f["education"].isin(["bachelors", "graduate_or_professional"]).map({True: "yes", False: "no"})
    assert (f["college"] == college).all()
    json.dumps(small_sample.diagnostics)  # JSON-serializable for the manifest


def test_marginals_within_one_over_n_at_100k(big_sample) -> None:
    spec = load_population_spec(PROJECT_ROOT / SPEC)
    f, n = big_sample.frame, len(big_sample.frame)
    fitted, diag = fit_joint(spec, joint="raked", tol=1e-10, max_iter=1000)
    fitted_m = marginals(fitted)
    for (name, attr), fm in zip(spec.attributes.items(), fitted_m):
        share = f[name].value_counts().reindex(attr.codes, fill_value=0).to_numpy() / n
        assert np.all(np.abs(share - attr.shares) < 1.0 / n), name
        assert np.all(np.abs(share - fm) <= 1.0 / n + diag["ipf_max_marginal_error"]), name
    assert big_sample.diagnostics["sample_within_1_over_n"]
    assert big_sample.diagnostics["ipf_converged"]


def test_same_seed_same_bytes(tmp_path) -> None:
    cfg = PopulationConfig(spec=SPEC, n=2000)
    paths = []
    for i in range(2):
        s = sample_personas(cfg, seed=42, cue_style="name")
        paths.append(write_parquet(s.frame, tmp_path / f"p{i}.parquet", kind="personas"))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = sample_personas(cfg, seed=43, cue_style="name").frame
    assert not other.equals(pd.read_parquet(paths[0]))


def test_joint_keeps_seed_association(big_sample) -> None:
    seed = pd.read_parquet(PROJECT_ROOT / "personas" / "seed_cces2016.parquet")
    f = big_sample.frame

    def v(df: pd.DataFrame, a: str, b: str) -> float:
        return float(association(pd.crosstab(df[a], df[b]).to_numpy(), method="cramer"))

    for a, b in [("age", "college"), ("race_ethnicity", "household_income"), ("college", "household_income")]:
        assert abs(v(f, a, b) - v(seed, a, b)) < 0.06, (a, b)
        assert v(f, a, b) > 0.05
    indep = sample_personas(PopulationConfig(spec=SPEC, n=20_000, joint="independent"), seed=7,
                            cue_style="name").frame
    assert v(indep, "age", "college") < 0.03


def test_independent_spec_without_seed(tmp_path) -> None:
    text = (PROJECT_ROOT / SPEC).read_text().replace("file: seed_cces2016.parquet", "file: null")
    text = text.replace("states_file: us_states_adults_2022.csv", f"states_file: {PROJECT_ROOT / 'personas' / 'us_states_adults_2022.csv'}")
    p = tmp_path / "indep.yaml"
    p.write_text(text)
    s = sample_personas(PopulationConfig(spec=str(p), n=500), seed=1, cue_style="attributes")
    assert s.diagnostics["joint"] == "independent" and "independent" in s.diagnostics["note"]
    assert len(s.frame) == 500


def test_unknown_cue_style() -> None:
    with pytest.raises(UserError, match="design.cue: unknown cue style 'poem'"):
        sample_personas(PopulationConfig(spec=SPEC, n=10), seed=1, cue_style="poem")


def test_missing_spec_file() -> None:
    with pytest.raises(UserError, match="population.spec: file not found: nope.yaml"):
        sample_personas(PopulationConfig(spec="nope.yaml", n=10), seed=1, cue_style="name")
