from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from simsurvey.analysis.frames import option_mass
from simsurvey.report._data import (
    RunData,
    answer_matrix,
    load_run,
    mean_distribution,
    null_band,
    option_codes,
    silicon_answers,
    weighted_distribution,
    weighted_mean,
)


def test_weighted_distribution_hand_worked():
    codes = np.array(["a", "b", "a", "c", "zzz"], dtype=object)
    w = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    # a: 4, b: 2, c: 4 of 10; "zzz" is not an option and is ignored.
    np.testing.assert_allclose(weighted_distribution(codes, w, ["a", "b", "c", "d"]), [0.4, 0.2, 0.4, 0.0])
    assert np.isnan(weighted_distribution(codes[:0], w[:0], ["a"])).all()


def test_weighted_distribution_matches_pandas():
    rng = np.random.default_rng(1)
    codes = rng.choice(list("wxyz"), 500).astype(object)
    w = rng.uniform(0, 3, 500)
    expected = pd.Series(w).groupby(codes).sum().reindex(list("zyxw")) / w.sum()
    np.testing.assert_allclose(weighted_distribution(codes, w, list("zyxw")), expected.to_numpy())


def test_weighted_mean_matches_numpy():
    v = np.array([0.0, 0.5, np.nan, 1.0])
    w = np.array([1.0, 2.0, 5.0, 3.0])
    assert weighted_mean(v, w) == pytest.approx(np.average([0, 0.5, 1], weights=[1, 2, 3]))
    assert np.isnan(weighted_mean(np.array([np.nan]), np.array([1.0])))


def test_null_band_matches_the_two_sample_binomial_formula():
    # A perfect silicon share minus the human share, both sampled from p: sd =
    # sqrt(p(1-p)(1/n_s + 1/n_h)); the band is q̂ ± 1.96 sd.
    n = 2000
    codes = np.array(["a"] * 600 + ["b"] * 1400, dtype=object)
    lo, hi = null_band(codes, np.ones(n), ["a", "b"], 300, seed=3, draws=4000)
    p = 0.3
    sd = np.sqrt(p * (1 - p) * (1 / 300 + 1 / n))
    assert hi[0] - lo[0] == pytest.approx(2 * 1.96 * sd, rel=0.1)
    assert lo[0] < p < hi[0]
    np.testing.assert_allclose(lo + hi[::-1], 1.0, atol=0.01)  # the two shares mirror each other


def test_null_band_degenerate_and_seeded():
    codes = np.array(["a"] * 10, dtype=object)
    lo, hi = null_band(codes, np.ones(10), ["a", "b"], 50, seed=0)
    np.testing.assert_allclose([lo, hi], [[1, 0], [1, 0]])
    assert np.isnan(null_band(codes[:1], np.ones(1), ["a"], 50, seed=0)[0]).all()
    assert np.isnan(null_band(codes, np.ones(10), ["a"], float("nan"), seed=0)[0]).all()
    rng = np.random.default_rng(5)
    c = rng.choice(["a", "b", "c"], 100).astype(object)
    a1 = null_band(c, np.ones(100), ["a", "b", "c"], 80, seed=9)
    a2 = null_band(c, np.ones(100), ["a", "b", "c"], 80, seed=9)
    np.testing.assert_array_equal(a1[0], a2[0])


def test_load_run_tolerates_empty_dir(tmp_path):
    data = load_run(tmp_path)
    assert data.responses is None and data.metrics is None and data.models == []
    assert any("manifest.json is missing" in n for n in data.notes)
    assert any("responses.parquet is missing" in n for n in data.notes)


def test_option_codes_without_instrument_sorted_naturally(tmp_path):
    resp = pd.DataFrame({"question_id": ["q"] * 4, "answer_code": ["10", "2", "1", None], "model": "m"})
    data = RunData(tmp_path, {}, None, resp, None, None, None, None)
    assert option_codes(data, "q") == ["1", "2", "10"]


def test_silicon_answers_keep_persona_rows_with_weights(make_run_dir, tmp_path, instrument):
    data = load_run(make_run_dir(tmp_path), instrument)
    s = silicon_answers(data)
    r = data.responses
    assert len(s) == r["persona_id"].notna().sum()  # invalid rows kept: answer_matrix decides
    assert not s["condition_id"].str.startswith("no_persona").any()
    w = data.personas.set_index("persona_id")["weight"]
    np.testing.assert_allclose(s["weight"].to_numpy(), w.loc[s["persona_id"]].to_numpy())


def _arrow_maps(cells: list) -> pd.Series:
    """``cells`` as an arrow-backed map column, as simsurvey.io.read_responses gives ``probs``."""
    typ = pa.map_(pa.string(), pa.float64())
    return pd.Series(pd.arrays.ArrowExtensionArray(pa.array(cells, type=typ)))


def test_option_mass_reads_dicts_pairs_and_arrow_maps_alike():
    cells = [{"a": 0.2, "c": 0.5, "zz": 0.3}, [("b", 0.4), ("a", 0.1)], None, {"a": float("nan"), "b": -1.0}]
    expected = [[0.2, 0, 0.5], [0.1, 0.4, 0], [0, 0, 0], [0, 0, 0]]  # other codes, NaN, negatives dropped
    x, has = option_mass(pd.Series(cells, dtype=object), ["a", "b", "c"])
    np.testing.assert_allclose(x, expected)
    assert has.tolist() == [True, True, False, True]
    arrow = _arrow_maps([dict(c) if c is not None else None for c in cells])
    assert isinstance(arrow.dtype, pd.ArrowDtype)
    xa, hasa = option_mass(arrow, ["a", "b", "c"])
    np.testing.assert_array_equal(xa, x)
    np.testing.assert_array_equal(hasa, has)
    # Dicts written to parquet without a schema are stored as a struct of one field per code.
    struct = pd.Series(pd.arrays.ArrowExtensionArray(pa.array([{"a": 0.2, "c": 0.5, "zz": 0.3}, {"b": 0.4, "a": 0.1},
                                                               None, {"a": float("nan"), "b": -1.0}])))
    assert pa.types.is_struct(struct.dtype.pyarrow_dtype)
    xt, hast = option_mass(struct, ["a", "b", "c"])
    np.testing.assert_array_equal(xt, x)
    np.testing.assert_array_equal(hast, has)
    # A slice of an arrow column starts mid-buffer (the report filters by model and question).
    xs, _ = option_mass(arrow.iloc[1:3], ["c", "b", "a"])
    np.testing.assert_allclose(xs, [[0, 0.4, 0.1], [0, 0, 0]])


def test_answer_matrix_arrow_probs_equal_dict_probs():
    rows = _rows()
    arrow = rows.assign(probs=_arrow_maps(list(rows["probs"])))
    for use_probs in (True, False):
        ok, x = answer_matrix(rows, ["a", "b"], use_probs=use_probs)
        oka, xa = answer_matrix(arrow, ["a", "b"], use_probs=use_probs)
        np.testing.assert_array_equal(oka, ok)
        np.testing.assert_array_equal(xa, x)


def _rows():
    return pd.DataFrame({
        "answer_code": ["a", "b", None, "dk", "a"],
        "valid": [True, True, False, True, True],
        "refusal": [False, False, True, False, False],
        "probs": [{"a": 0.6, "b": 0.2, "dk": 0.2}, {"a": 0.1, "b": 0.3}, None, {"dk": 1.0}, {"a": 0.5, "b": 0.5}],
        "weight": [1.0, 2.0, 5.0, 5.0, 1.0],
    })


def test_answer_matrix_answers_mode_hand_worked():
    ok, x = answer_matrix(_rows(), ["a", "b"], use_probs=False)
    assert ok.tolist() == [True, True, False, False, True]  # invalid and don't-know rows left out
    np.testing.assert_array_equal(x, [[1, 0], [0, 1], [1, 0]])
    # weights 1, 2, 1 -> a: 2/4, b: 2/4
    np.testing.assert_allclose(mean_distribution(_rows(), ["a", "b"], use_probs=False), [0.5, 0.5])


def test_answer_matrix_probs_mode_hand_worked():
    ok, x = answer_matrix(_rows(), ["a", "b"], use_probs=True)
    assert ok.tolist() == [True, True, False, False, True]  # no mass on a/b in rows 3 and 4
    np.testing.assert_allclose(x, [[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]])
    expected = (1 * np.array([0.75, 0.25]) + 2 * np.array([0.25, 0.75]) + 1 * np.array([0.5, 0.5])) / 4
    np.testing.assert_allclose(mean_distribution(_rows(), ["a", "b"], use_probs=True), expected)
    assert np.isnan(mean_distribution(_rows().iloc[2:4], ["a", "b"], use_probs=True)).all()
