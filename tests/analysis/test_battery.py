from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from simsurvey.analysis import battery as B
from simsurvey.analysis.battery_calibration import (
    BatteryCell,
    SelectionCell,
    run_battery_cell,
    run_selection_cell,
)
from simsurvey.reference.builtin import BUILTIN

# A hand-worked example: 4 respondents x 3 items.
#   item variances (n-1): 1.6667, 1.6667, 2.0; total scores 4, 7, 8, 13 -> variance 14.0
#   alpha = 3/2 * (1 - 5.3333/14) = 0.928571...
HAND = np.array([[1, 1, 2], [2, 3, 2], [3, 2, 3], [4, 4, 5]], float)


def _alpha_stdlib(x: np.ndarray) -> float:
    """Cronbach's alpha with the textbook n−1 formula, in plain Python (an independent computation)."""
    k = x.shape[1]
    items = [statistics.variance(x[:, j].tolist()) for j in range(k)]
    total = statistics.variance(x.sum(1).tolist())
    return k / (k - 1) * (1 - sum(items) / total)


def test_alpha_hand_worked() -> None:
    cov = B.covariance(B.moments(HAND, np.ones(4)).sum(0), 3)
    assert B.cronbach_alpha(cov) == pytest.approx(1.5 * (1 - (5 / 3 + 5 / 3 + 2) / 14), abs=1e-12)
    assert B.cronbach_alpha(cov) == pytest.approx(0.9285714285714286, abs=1e-12)


def test_alpha_matches_the_textbook_formula_and_duplicated_rows_for_weights() -> None:
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(300)
    x = np.clip(np.round(2.5 + theta[:, None] + rng.standard_normal((300, 4))), 0, 5)
    cov = B.covariance(B.moments(x, np.ones(300)).sum(0), 4)
    assert B.cronbach_alpha(cov) == pytest.approx(_alpha_stdlib(x), abs=1e-10)
    # Integer weights are duplicated rows.
    w = rng.integers(1, 4, 300)
    cov_w = B.covariance(B.moments(x, w.astype(float)).sum(0), 4)
    assert B.cronbach_alpha(cov_w) == pytest.approx(_alpha_stdlib(np.repeat(x, w, axis=0)), abs=1e-10)
    # Standardized alpha from numpy's correlation matrix.
    r = np.corrcoef(x, rowvar=False)
    rbar = r[np.triu_indices(4, 1)].mean()
    assert B.standardized_alpha(B.correlation(cov)) == pytest.approx(4 * rbar / (1 + 3 * rbar), abs=1e-10)
    np.testing.assert_allclose(B.correlation(cov), r, atol=1e-12)
    wr = np.corrcoef(np.repeat(x, w, axis=0), rowvar=False)
    np.testing.assert_allclose(B.correlation(cov_w), wr, atol=1e-12)


def test_bfi_agreeableness_matches_the_psych_documentation() -> None:
    # psych::alpha(bfi[1:5], keys = c(-1, 1, 1, 1, 1)): raw_alpha 0.70, std.alpha 0.71, average_r 0.33.
    df = pd.read_parquet(BUILTIN["bfi"].path)
    x = B.reflect(df[["A1", "A2", "A3", "A4", "A5"]].to_numpy() - 1, [True, False, False, False, False], 6)
    s = B.battery_side(x, b=0, rng=np.random.default_rng(0))
    assert round(float(s.alpha.point), 2) == 0.70
    assert round(float(s.alpha_std.point), 2) == 0.71
    assert round(float(B.mean_inter_item_r(s.corr)), 2) == 0.33
    # Without reflecting A1 the scale is internally inconsistent: alpha drops.
    raw = B.battery_side(df[["A1", "A2", "A3", "A4", "A5"]].to_numpy() - 1, b=0, rng=np.random.default_rng(0))
    assert float(raw.alpha.point) < 0.5


def test_reflect_all_items_leaves_alpha_unchanged_and_one_item_changes_it() -> None:
    x = HAND - 1
    base = B.cronbach_alpha(B.covariance(B.moments(x, np.ones(4)).sum(0), 3))
    allr = B.reflect(x, [True, True, True], 5)
    assert B.cronbach_alpha(B.covariance(B.moments(allr, np.ones(4)).sum(0), 3)) == pytest.approx(base)
    one = B.reflect(x, [True, False, False], 5)
    assert np.array_equal(one[:, 0], 4 - x[:, 0])
    assert B.cronbach_alpha(B.covariance(B.moments(one, np.ones(4)).sum(0), 3)) < 0


def test_rows_with_a_missing_item_are_left_out() -> None:
    x = np.vstack([HAND, [[np.nan, 1, 1]]])
    s = B.battery_side(x, b=0, rng=np.random.default_rng(0))
    assert s.n_units == 4
    assert float(s.alpha.point) == pytest.approx(0.9285714285714286)


def test_cluster_bootstrap_resamples_personas_not_rows() -> None:
    # Each persona's battery repeated 3 times: the information is that of the personas, so the
    # cluster bootstrap's spread matches the one-row-per-persona spread; a row bootstrap is ~sqrt(3) too small.
    rng = np.random.default_rng(1)
    theta = rng.standard_normal(200)
    x = np.clip(np.round(2.5 + theta[:, None] + rng.standard_normal((200, 5))), 0, 5)
    one = B.battery_side(x, b=2000, rng=np.random.default_rng(2)).alpha.reps.std()
    rep = np.repeat(x, 3, axis=0)
    clustered = B.battery_side(rep, cluster=np.repeat(np.arange(200), 3), b=2000,
                               rng=np.random.default_rng(2)).alpha.reps.std()
    rows = B.battery_side(rep, b=2000, rng=np.random.default_rng(2)).alpha.reps.std()
    assert clustered == pytest.approx(one, rel=0.1)
    assert rows == pytest.approx(one / np.sqrt(3), rel=0.1)


def test_compare_battery_diff_and_mad_by_hand() -> None:
    rng = np.random.default_rng(3)
    xs = np.clip(np.round(2.5 + rng.standard_normal((150, 1)) + rng.standard_normal((150, 4))), 0, 5)
    xh = np.clip(np.round(2.5 + 0.5 * rng.standard_normal((900, 1)) + rng.standard_normal((900, 4))), 0, 5)
    c = B.compare_battery(xs, xh, b=300, rng=np.random.default_rng(4))
    assert float(c.alpha_diff.point) == pytest.approx(_alpha_stdlib(xs) - _alpha_stdlib(xh), abs=1e-10)
    rs, rh = np.corrcoef(xs, rowvar=False), np.corrcoef(xh, rowvar=False)
    iu = np.triu_indices(4, 1)
    assert float(c.corr_mad.point) == pytest.approx(np.abs(rs[iu] - rh[iu]).mean(), abs=1e-10)
    # A clearly more consistent silicon side: the test rejects, the interval excludes 0.
    r = B.summarize(c.alpha_diff, tail="two")
    assert r["p_value"] < 0.01 and r["ci_low"] > 0
    m = B.summarize(c.corr_mad, interval="span", tail="upper", bounds=(0, 2))
    assert m["p_value"] < 0.01 and m["null_mean"] < m["value"]
    assert c.alpha_diff.reps.shape == (300,) and c.silicon.corr_b.shape == (300, 4, 4)


def test_summarize_rejects_an_unknown_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        B.summarize(B.Estimate(np.zeros(1), np.zeros((3, 1))), interval="bca")


def test_selection_matrix_parses_sets() -> None:
    sel, ok = B.selection_matrix(["a|c", "", None, "b", "a|z"], ("a", "b", "c"))
    assert ok.tolist() == [True, True, False, True, False]
    assert sel.tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_selection_rates_weighted_and_clustered_by_hand() -> None:
    sel = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], float)
    w = np.array([1.0, 3.0, 2.0, 2.0])
    c = B.compare_selection(sel, sel[:2], ws=w, cs=np.array([0, 0, 1, 1]), b=200, rng=np.random.default_rng(0))
    np.testing.assert_allclose(c.silicon.point, [4 / 8, 5 / 8])
    np.testing.assert_allclose(c.human.point, [1.0, 0.5])
    np.testing.assert_allclose(c.diff.point, [4 / 8 - 1.0, 5 / 8 - 0.5])
    assert c.n_clusters_silicon == 2 and c.n_clusters_human == 2
    # Resampling 2 personas: a replicate's silicon rate of option 0 is 4/8 (both), 1 (persona 0 twice) or 0.
    assert set(np.round(c.silicon.reps[:, 0], 6)) <= {0.5, 1.0, 0.0}


@pytest.mark.slow
def test_battery_calibration_fixed_seed() -> None:
    # 120 replicates at 200 personas vs 2,800 respondents: 1 SE of a 0.95 coverage is 0.02.
    eq = {r["statistic"]: r for r in run_battery_cell(BatteryCell(d=0.0, reps=120), seed=11, b=200)}
    assert eq["alpha_diff"]["coverage"] >= 0.89
    assert eq["alpha_diff"]["reject"] <= 0.11
    assert eq["corr_mad"]["reject"] <= 0.11
    big = {r["statistic"]: r for r in run_battery_cell(BatteryCell(mode="cluster", d=0.2, reps=60), seed=12, b=200)}
    assert big["alpha_diff"]["reject"] >= 0.9 and big["corr_mad"]["reject"] >= 0.9
    assert big["alpha_diff"]["coverage"] >= 0.85


@pytest.mark.slow
def test_selection_calibration_fixed_seed() -> None:
    eq = {r["statistic"]: r for r in run_selection_cell(SelectionCell(mode="cluster", d=0.0, reps=80), seed=13, b=200)}
    assert eq["rate_diff"]["coverage"] >= 0.92  # 560 option-replicates: 1 SE = 0.009
    assert eq["rate_diff"]["reject"] <= 0.08
    big = {r["statistic"]: r for r in run_selection_cell(SelectionCell(d=0.1, reps=40), seed=14, b=200)}
    assert big["rate_diff"]["reject"] >= 0.6 and big["rate_diff"]["coverage"] >= 0.9
