"""Raw-scale metrics of numeric questions: against scipy / hand formulas, and the block's rows."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import stats

from simsurvey.analysis.compare import _Out
from simsurvey.analysis.numeric import (
    VALUE_METRICS,
    numeric_block,
    support,
    value_ks,
    value_mean,
    value_metrics,
    value_variance,
    value_w1,
)


def _mass(values: np.ndarray, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(x, values), weights=w, minlength=len(x))


def test_distances_match_scipy_weighted_and_unweighted() -> None:
    rng = np.random.default_rng(0)
    # Heaped thermometer answers (0, 15, 30, 40, 50, 60, 70, 85, 97) and free ones.
    heaps = np.array([0, 15, 30, 40, 50, 60, 70, 85, 97])
    a = np.where(rng.random(300) < 0.7, rng.choice(heaps, 300), rng.integers(0, 101, 300)).astype(float)
    b = np.where(rng.random(2000) < 0.8, rng.choice(heaps, 2000), rng.integers(0, 101, 2000)).astype(float)
    wa, wb = rng.integers(1, 4, 300).astype(float), rng.integers(1, 4, 2000).astype(float)
    x, _ = support(np.concatenate([a, b]), 0, 100)
    pa, pb = _mass(a, wa, x), _mass(b, wb, x)
    ones_a, ones_b = _mass(a, np.ones(300), x), _mass(b, np.ones(2000), x)
    assert value_w1(ones_a, ones_b, x) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    assert value_w1(pa, pb, x) == pytest.approx(stats.wasserstein_distance(a, b, wa, wb), rel=1e-12)
    assert value_ks(ones_a, ones_b) == pytest.approx(stats.ks_2samp(a, b).statistic, rel=1e-12)
    # Integer weights = repeated observations.
    assert value_ks(pa, pb) == pytest.approx(stats.ks_2samp(np.repeat(a, wa.astype(int)),
                                                            np.repeat(b, wb.astype(int))).statistic, rel=1e-12)
    m = value_metrics(pa, pb, x, 0, 100)
    assert m["value_wasserstein_norm"] == pytest.approx(stats.wasserstein_distance(a, b, wa, wb) / 100)
    assert m["value_mean_silicon"] == pytest.approx(np.average(a, weights=wa))
    assert m["value_mean_diff"] == pytest.approx(np.average(a, weights=wa) - np.average(b, weights=wb))


def test_moments_by_hand() -> None:
    # Values 0, 50, 100 with weights 1, 2, 1: mean 50, plug-in variance (2500+0+2500)/4 = 1250.
    x = np.array([0.0, 50.0, 100.0])
    p = np.array([1.0, 2.0, 1.0])
    assert value_mean(p, x) == 50.0
    assert value_variance(p, x) == 1250.0
    assert value_variance(p, x, 4) == pytest.approx(1250 * 4 / 3)
    # Unweighted at n = rows: the sample variance (ddof=1).
    vals = np.array([3.0, 7.0, 7.0, 10.0, 1.0])
    xs, pos = support(vals, 0, 10)
    assert value_variance(np.bincount(pos), xs, 5) == pytest.approx(np.var(vals, ddof=1))
    m = value_metrics(np.bincount(pos)[None], np.array([[1.0, 1, 1, 1]]), xs, 0, 10, n_s=5, n_h=4)
    assert m["value_sd_silicon"][0] == pytest.approx(np.std(vals, ddof=1))
    assert m["value_variance_ratio"][0] == pytest.approx(np.var(vals, ddof=1) / np.var(xs, ddof=1))
    # An empty side is NaN, never 0.
    assert np.isnan(value_mean(np.zeros(3), x)) and np.isnan(value_ks(np.zeros(3), p))


def test_support_puts_a_continuous_scale_on_a_grid() -> None:
    vals = np.random.default_rng(1).uniform(0, 1, 5000)
    x, pos = support(vals, 0, 1)
    assert len(x) == 1001 and np.abs(x[pos] - vals).max() <= 0.0005 + 1e-12


def _block(s_value, s_unit, h_value, *, s_groups=None, h_groups=None, cats=None, b=200, null=400, seed=0):
    out = _Out(0.95)
    n_s, n_h = len(s_value), len(h_value)
    numeric_block(out, "m", "therm", 0, 100, s_value=s_value, s_unit=s_unit, s_w=np.ones(n_s),
                  s_groups={"all": np.zeros(n_s, np.int64), **(s_groups or {})},
                  h_value=h_value, h_unit=np.arange(n_h), h_w=np.ones(n_h),
                  h_groups={"all": np.zeros(n_h, np.int64), **(h_groups or {})},
                  cats={"all": ["all"], **(cats or {})}, min_group_n=20, bootstrap=b, null_draws=null,
                  seed=[seed])
    return out.frame()


def test_block_rows_values_and_clustered_effective_size() -> None:
    rng = np.random.default_rng(2)
    s = rng.choice([50.0, 80.0, 90.0], 200)
    # Every persona answers twice with the same number: 100 clusters, not 200 answers.
    s_value, s_unit = np.repeat(s[:100], 2), np.repeat(np.arange(100), 2)
    h = rng.choice([0.0, 15.0, 50.0, 85.0, 97.0], 1500)
    f = _block(s_value, s_unit, h).set_index("metric")
    assert list(f.index) == list(VALUE_METRICS)
    assert f.loc["value_mean_silicon", "value"] == pytest.approx(s_value.mean())
    assert f.loc["value_mean_human", "value"] == pytest.approx(h.mean())
    assert f.loc["value_ks", "value"] == pytest.approx(stats.ks_2samp(s_value, h).statistic)
    assert f.loc["value_wasserstein_norm", "value"] == pytest.approx(stats.wasserstein_distance(s_value, h) / 100)
    assert f.loc["value_sd_human", "value"] == pytest.approx(np.std(h, ddof=1))
    assert f["n_eff_silicon"].iloc[0] == pytest.approx(100) and f["n_eff_human"].iloc[0] == pytest.approx(1500)
    assert (f["n_silicon"] == 200).all() and (f["n_human"] == 1500).all()
    # Tested metrics carry the sampling null; these two samples are far apart.
    for name in ("value_ks", "value_wasserstein_norm", "value_mean_diff", "value_variance_ratio"):
        assert np.isfinite(f.loc[name, "null_mean"]) and f.loc[name, "p_value"] < 0.01, name
    assert f.loc["value_ks", "ci_low"] <= f.loc["value_ks", "value"] <= f.loc["value_ks", "ci_high"]
    assert np.isnan(f.loc["value_mean_silicon", "p_value"])


def test_block_groups_and_the_subgroup_floor() -> None:
    rng = np.random.default_rng(3)
    s, h = rng.integers(0, 101, 300).astype(float), rng.integers(0, 101, 2000).astype(float)
    sg = np.where(np.arange(300) < 290, np.arange(300) % 2, 2)  # group "c": 10 silicon rows only
    hg = np.arange(2000) % 3
    f = _block(s, np.arange(300), h, s_groups={"sex": sg}, h_groups={"sex": hg}, cats={"sex": ["a", "b", "c"]})
    g = f[(f.group_var == "sex") & (f.metric == "value_mean_silicon")].set_index("group_value")
    assert sorted(g.index) == ["a", "b"]  # "c" is under min_group_n
    assert g.loc["a", "value"] == pytest.approx(s[sg == 0].mean())
    assert g.loc["b", "n_human"] == (hg == 1).sum()


def _calibration():
    from importlib import util

    from simsurvey.config import PROJECT_ROOT

    spec = util.spec_from_file_location("calibrate_numeric", PROJECT_ROOT / "benchmarks" / "calibrate_numeric.py")
    mod = util.module_from_spec(spec)
    sys.modules.setdefault("calibrate_numeric", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return sys.modules["calibrate_numeric"]


def test_binned_answers_get_the_distribution_metrics_through_analyze() -> None:
    cal = _calibration()
    responses, reference, personas, inst = cal.simulate(cal.Cell("answers", 200, 1000, 0.6, 2), seed=4)
    from simsurvey import analyze
    from simsurvey.analysis import AnalysisConfig

    m = analyze(responses, reference, personas, inst, AnalysisConfig(group_vars=[], bootstrap=20, null_draws=50,
                                                                     n_permutations=0, pairs=False), seed=0).metrics
    have = set(m[m.question_id == "t0"].metric)
    assert {"js_divergence", "wasserstein_norm", "representativeness", "variance_ratio"} <= have  # the bins
    assert set(VALUE_METRICS) <= have  # the raw scale
    r = responses[responses.question_id == "t0"]
    h = reference[reference.question_id == "t0"]
    row = m[(m.question_id == "t0") & (m.metric == "value_ks")].iloc[0]
    assert row.value == pytest.approx(stats.ks_2samp(r.answer_value, h.answer_value).statistic)


def test_calibration_fixed_seed_size_and_coverage() -> None:
    # A fixed-seed subset of benchmarks/calibrate_numeric.py (the whole grid: VALIDATION.md). 120
    # independent thermometer questions per cell; binomial tolerance around 5% / 95%.
    cal = _calibration()
    null = cal.run_cell(cal.Cell("cluster", 300, 5000, 0.0, 120), seed=21, bootstrap=100, null_draws=200)
    null = null.set_index("metric")
    for metric in cal.TESTED:
        assert 0.01 <= null.loc[metric, "reject"] <= 0.10, (metric, null.loc[metric, "reject"])
    for metric in ("value_mean_diff", "value_variance_ratio", "value_mean_silicon", "value_sd_silicon"):
        assert 0.89 <= null.loc[metric, "coverage"] <= 0.99, (metric, null.loc[metric, "coverage"])
    # A clustered persona (4 correlated answers) is worth more than 1 and less than 4 answers.
    assert 300 < null.loc["value_ks", "n_eff_silicon"] < 1200
    diff = cal.run_cell(cal.Cell("answers", 300, 5000, 0.6, 120), seed=22, bootstrap=100, null_draws=200)
    diff = diff.set_index("metric")
    for metric in VALUE_METRICS:
        assert 0.89 <= diff.loc[metric, "coverage"] <= 0.99, (metric, diff.loc[metric, "coverage"])
    for metric in cal.TESTED:
        if metric != "value_variance_ratio":  # the tilt moves the level far more than the spread
            assert diff.loc[metric, "reject"] > 0.95, metric
