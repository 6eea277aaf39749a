"""A fixed-seed subset of the calibration grid (benchmarks/calibrate.py runs the whole grid).

Each cell scores a few hundred independent replicates through the public analyze() API and
asserts the error rates within binomial tolerance: 95% CIs cover in [0.90, 0.99], tests reject a
true null in [0.02, 0.08] of replicates, so a perfect silicon sample is called indistinguishable
in ≥ 92%.
"""

from __future__ import annotations

import pandas as pd
import pytest

from simsurvey.analysis.calibration import Cell, run_cell


def _pooled(res: pd.DataFrame, metric: str, col: str) -> float:
    g = res[res.metric == metric]
    return float((g[col] * g.n).sum() / g.n.sum())


@pytest.mark.parametrize("mode", ["answers", "cluster", "probs"])
def test_perfect_silicon_sample_is_indistinguishable_at_the_stated_size(mode):
    res = run_cell(Cell(mode=mode, k=5, n_silicon=200, n_human=1000, d=0.0, reps=300), seed=11,
                   bootstrap=100, null_draws=200)
    for metric in ("js_divergence", "total_variation", "kl_silicon_human"):
        size = _pooled(res, metric, "reject")
        assert 0.02 <= size <= 0.08, (mode, metric, size)
    # The null mean is the distance a perfect sample scores: ratio ≈ 1, not 57× or 145×.
    js = res[res.metric == "js_divergence"]
    ratio = (js["mean"] * js.n).sum() / (js.null_mean * js.n).sum()
    assert 0.85 <= ratio <= 1.15, ratio
    # An independent demographic: bias-corrected V's interval covers 0, its test holds its size.
    v = res[res.metric == "cramers_v_silicon"].iloc[0]
    assert 0.90 <= v.coverage <= 0.99 and 0.02 <= v.reject <= 0.08, v
    for metric in ("entropy_ratio", "gini_simpson_ratio", "variance_ratio"):
        g = res[res.metric == metric]
        assert 0.90 <= _pooled(res, metric, "coverage") <= 0.99, (mode, metric, g)
        assert 0.02 <= _pooled(res, metric, "reject") <= 0.08, (mode, metric, g)


def test_intervals_cover_a_real_difference():
    res = run_cell(Cell(mode="answers", k=5, n_silicon=500, n_human=1000, d=0.8, reps=300), seed=12,
                   bootstrap=200, null_draws=100)
    for metric in ("js_divergence", "kl_silicon_human", "kl_human_silicon", "entropy_ratio",
                   "variance_ratio", "gini_simpson_ratio"):
        cov = _pooled(res, metric, "coverage")
        assert 0.90 <= cov <= 0.99, (metric, cov)
    assert _pooled(res, "js_divergence", "reject") > 0.99  # and the test sees it
