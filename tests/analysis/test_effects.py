from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from simsurvey.analysis.effects import (
    ArmData,
    arm_effects,
    compare_effects,
    effect_correlation,
    fieller_ci,
    normal_summary,
    randomization_tv,
    ratio_estimates,
)


def _onehot(pos: np.ndarray, k: int) -> np.ndarray:
    x = np.zeros((len(pos), k))
    x[np.arange(len(pos)), pos] = 1.0
    return x


def _two_arms(rng: np.random.Generator, n: int, p_c: list[float], p_t: list[float]) -> tuple[np.ndarray, np.ndarray]:
    pos = np.concatenate([rng.choice(len(p_c), n, p=p_c), rng.choice(len(p_t), n, p=p_t)])
    arm = np.repeat([0, 1], n)
    return pos, arm


def test_one_row_per_unit_is_welch_for_means_and_shares() -> None:
    rng = np.random.default_rng(1)
    pos, arm = _two_arms(rng, 150, [0.5, 0.3, 0.2], [0.3, 0.3, 0.4])
    pos[-40:] = rng.choice(3, 40)  # unequal variances
    data = ArmData.from_rows(_onehot(pos, 3), arm, np.arange(len(pos)), np.ones(len(pos)), score=pos.astype(float))
    eff = arm_effects(data, 2)
    a, b = pos[arm == 1].astype(float), pos[arm == 0].astype(float)
    se_welch = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert eff.mean_effect[1] == pytest.approx(a.mean() - b.mean())
    assert eff.mean_se[1] == pytest.approx(se_welch, rel=1e-12)
    t = stats.ttest_ind(a, b, equal_var=False)
    assert eff.mean_effect[1] / eff.mean_se[1] == pytest.approx(t.statistic, rel=1e-12)
    for k in range(3):
        ia, ib = (pos[arm == 1] == k).astype(float), (pos[arm == 0] == k).astype(float)
        tk = stats.ttest_ind(ia, ib, equal_var=False)
        assert eff.share_effect[1, k] / eff.share_se[1, k] == pytest.approx(tk.statistic, rel=1e-12)
    assert eff.share_effect[1].sum() == pytest.approx(0.0, abs=1e-12)
    assert eff.share_effect[0] == pytest.approx(0.0) and eff.share_se[0] == pytest.approx(0.0)


def test_share_effect_matches_the_two_proportion_wald_z() -> None:
    from statsmodels.stats.proportion import test_proportions_2indep

    rng = np.random.default_rng(2)
    n = 400
    pos, arm = _two_arms(rng, n, [0.47, 0.53], [0.34, 0.66])
    data = ArmData.from_rows(_onehot(pos, 2), arm, np.arange(2 * n), np.ones(2 * n))
    eff = arm_effects(data, 2)
    c1, c0 = int((pos[arm == 1] == 0).sum()), int((pos[arm == 0] == 0).sum())
    res = test_proportions_2indep(c1, n, c0, n, method="wald", compare="diff")
    # Wald uses p(1-p)/n; the linearized variance carries the n/(n-1) factor of n primary units.
    assert eff.share_effect[1, 0] / eff.share_se[1, 0] == pytest.approx(res.statistic * np.sqrt((n - 1) / n), rel=1e-9)
    lo, hi, p = normal_summary(eff.share_effect[1, 0], eff.share_se[1, 0], 0.95)
    assert p == pytest.approx(res.pvalue, rel=0.05)
    assert lo < eff.share_effect[1, 0] < hi


def test_clusters_equal_size_are_welch_on_unit_means() -> None:
    # Each persona answers 4 rows (conditions); the linearized SE equals Welch's on persona means.
    rng = np.random.default_rng(3)
    n_u, m = 120, 4
    core = rng.choice(3, 2 * n_u, p=[0.4, 0.4, 0.2])
    rows = np.where(rng.random((2 * n_u, m)) < 0.6, core[:, None], rng.choice(3, (2 * n_u, m)))
    unit = np.repeat(np.arange(2 * n_u), m)
    arm = np.repeat(np.repeat([0, 1], n_u), m)
    pos = rows.ravel()
    data = ArmData.from_rows(_onehot(pos, 3), arm, unit, np.ones(len(pos)), score=pos.astype(float))
    eff = arm_effects(data, 2)
    means = rows.mean(1)
    a, b = means[n_u:], means[:n_u]
    assert eff.mean_se[1] == pytest.approx(np.sqrt(a.var(ddof=1) / n_u + b.var(ddof=1) / n_u), rel=1e-12)
    # Treating the rows as independent would understate the SE here (positively correlated rows).
    naive = ArmData.from_rows(_onehot(pos, 3), arm, np.arange(len(pos)), np.ones(len(pos)), score=pos.astype(float))
    assert arm_effects(naive, 2).mean_se[1] < 0.8 * eff.mean_se[1]


def test_weighted_ratio_variance_by_hand() -> None:
    # Hand-worked: arm with units (y, m, w) = (1,1,1), (0,1,2), (1,1,1): R = 2/4;
    # residuals 0.5, -0.5, 0.5; Σw²e² = 0.25 + 1 + 0.25 = 1.5; V = 3/2 · 1.5 / 16.
    r, v, n = ratio_estimates(np.array([[1.0], [0.0], [1.0]]), np.ones(3), np.array([1.0, 2.0, 1.0]),
                              np.zeros(3, np.int64), 1)
    assert r[0, 0] == pytest.approx(0.5) and v[0, 0] == pytest.approx(1.5 * 1.5 / 16) and n[0] == 3


def test_probability_vectors_enter_as_vectors() -> None:
    x = np.array([[0.5, 0.5], [1.0, 0.0], [0.2, 0.8], [0.0, 1.0]])
    data = ArmData.from_rows(x, np.array([0, 0, 1, 1]), np.arange(4), np.ones(4), score=x @ np.arange(2.0))
    eff = arm_effects(data, 2)
    assert eff.shares[0].tolist() == pytest.approx([0.75, 0.25])
    assert eff.share_effect[1, 0] == pytest.approx(0.1 - 0.75)
    assert eff.mean_effect[1] == pytest.approx(0.9 - 0.25)


def test_randomization_tv_matches_an_exhaustive_enumeration() -> None:
    from itertools import combinations

    pos = np.array([0, 0, 1, 0, 1, 1, 1, 0])
    treated = np.array([False] * 4 + [True] * 4)
    y, m, w = _onehot(pos, 2), np.ones(8), np.ones(8)
    tv, p, null_mean = randomization_tv(y, m, w, treated, 20000, np.random.default_rng(4))
    assert tv == pytest.approx(0.5)  # control shares (3/4, 1/4), arm (1/4, 3/4)
    all_tv = []
    for idx in combinations(range(8), 4):
        t = np.zeros(8, bool)
        t[list(idx)] = True
        all_tv.append(0.5 * np.abs(y[t].mean(0) - y[~t].mean(0)).sum())
    all_tv = np.array(all_tv)
    assert p == pytest.approx((all_tv >= 0.5 - 1e-12).mean(), abs=0.01)
    assert null_mean == pytest.approx(all_tv.mean(), abs=0.01)


def test_fieller_against_the_closed_form() -> None:
    a, sa, b, sb = 0.10, 0.03, 0.13, 0.025
    lo, hi, ok = fieller_ci(a, sa, b, sb, 0.95)
    z = stats.norm.ppf(0.975)
    # Both bounds solve (a - rho b)^2 = z^2 (sa^2 + rho^2 sb^2).
    for rho in (lo, hi):
        assert (a - rho * b) ** 2 == pytest.approx(z**2 * (sa**2 + rho**2 * sb**2))
    assert ok and lo < a / b < hi
    lo, hi, ok = fieller_ci(0.1, 0.03, 0.02, 0.025, 0.95)  # human effect not significant
    assert not ok and lo == -np.inf and hi == np.inf


def test_compare_effects_difference_and_sign() -> None:
    ag = compare_effects(np.array([0.10, -0.05, 0.0]), np.array([0.03, 0.02, 0.02]),
                         np.array([0.13, 0.04, 0.1]), np.array([0.025, 0.02, 0.02]), 0.95)
    assert ag.diff.tolist() == pytest.approx([-0.03, -0.09, -0.1])
    se = np.hypot(0.03, 0.025)
    assert ag.diff_low[0] == pytest.approx(-0.03 - stats.norm.ppf(0.975) * se)
    assert ag.diff_p[0] == pytest.approx(2 * stats.norm.sf(0.03 / se))
    assert ag.sign_agree[0] == 1.0 and ag.sign_agree[1] == 0.0 and np.isnan(ag.sign_agree[2])
    assert ag.ratio[0] == pytest.approx(0.10 / 0.13)


def test_effect_correlation_flags_few_effects() -> None:
    rng = np.random.default_rng(5)
    h = np.array([0.1, -0.05, 0.2, 0.0, 0.15, -0.1])
    s = 0.5 * h + np.array([0.01, -0.02, 0.0, 0.02, -0.01, 0.01])
    se = np.full(6, 0.01)
    r, lo, hi, flag = effect_correlation(s, se, h, se, ci=0.95, b=2000, rng=rng)
    assert r == pytest.approx(stats.pearsonr(s, h).statistic) and flag is None
    assert lo < r < hi and lo > 0.5
    r4, *_, flag4 = effect_correlation(s[:4], se[:4], h[:4], se[:4], ci=0.95, b=100, rng=rng)
    assert flag4 == "low_information: 4 effects" and np.isfinite(r4)
