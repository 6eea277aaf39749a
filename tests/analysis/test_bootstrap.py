"""Cluster (persona) bootstrap: agrees with resampling personas directly, and does not treat a
persona's repeated rows as independent respondents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simsurvey.analysis import AnalysisConfig, analyze
from simsurvey.analysis import bootstrap as B
from simsurvey.analysis.synthetic import synthetic_run


def _personas(seed: int, n: int = 300, rows: int = 3, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per-persona answer counts (n, k): each persona answers `rows` times, correlated answers."""
    rng = np.random.default_rng(seed)
    lean = rng.integers(0, k, n)
    pos = np.where(rng.random((n, rows)) < 0.7, lean[:, None], rng.integers(0, k, (n, rows)))
    counts = np.zeros((n, k), np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), rows), pos.ravel()), 1)
    return counts, rng.integers(0, 2, n)  # counts, group (2 groups)


def _direct(counts: np.ndarray, group: np.ndarray, b: int, seed: int) -> np.ndarray:
    """Independent computation: draw personas with replacement within each group, sum their rows."""
    rng = np.random.default_rng(seed)
    out = np.zeros((b, 2, counts.shape[1]))
    for g in range(2):
        idx = np.flatnonzero(group == g)
        draws = rng.integers(0, len(idx), (b, len(idx)))
        out[:, g] = counts[idx][draws].sum(1)
    return out


def test_cluster_tables_match_direct_persona_resampling():
    counts, group = _personas(0)
    fast = B.cluster_tables(np.random.default_rng(1), counts, np.ones(len(counts)), group, 2, 8000)
    slow = _direct(counts, group, 8000, 2)
    assert fast.shape == slow.shape == (8000, 2, 4)
    # Mean: the observed table; spread: the persona-level bootstrap spread (Monte Carlo tolerance).
    obs = np.stack([counts[group == g].sum(0) for g in range(2)])
    np.testing.assert_allclose(fast.mean(0), obs, rtol=0.01)
    np.testing.assert_allclose(fast.std(0), slow.std(0), rtol=0.06)
    # Rows of one persona are correlated: the spread is wider than resampling rows would give.
    n_rows = counts[group == 0].sum()
    p = obs[0] / n_rows
    row_sd = np.sqrt(n_rows * p * (1 - p))
    assert (fast[:, 0].std(0) > 1.2 * row_sd).all()


def test_cluster_tables_fallback_draws_personas_one_by_one(monkeypatch):
    counts, group = _personas(3)
    patterns = B.cluster_tables(np.random.default_rng(5), counts, np.ones(len(counts)), group, 2, 6000)
    # Many patterns -> personas drawn one by one (unit_tables): the same distribution.
    monkeypatch.setattr(B, "MAX_PATTERNS", 0)
    one_by_one = B.cluster_tables(np.random.default_rng(6), counts, np.ones(len(counts)), group, 2, 6000)
    np.testing.assert_allclose(one_by_one.mean(0), patterns.mean(0), rtol=0.01)
    np.testing.assert_allclose(patterns.std(0), one_by_one.std(0), rtol=0.06)


def test_cluster_tables_weighted_is_kish_approximation():
    """With unequal weights the draw is the Kish-n multinomial over weighted pattern shares (as the
    row bootstrap does for weighted rows): unbiased, spread close to weighted persona resampling."""
    counts, group = _personas(7)
    w = np.random.default_rng(4).choice([0.5, 1.0, 2.0], len(counts))
    fast = B.cluster_tables(np.random.default_rng(5), counts, w, group, 2, 6000)
    obs = np.stack([(w[group == g, None] * counts[group == g]).sum(0) for g in range(2)])
    np.testing.assert_allclose(fast.mean(0), obs, rtol=0.01)
    direct = _direct(counts * w[:, None], group, 6000, 8)
    np.testing.assert_allclose(fast.std(0), direct.std(0), rtol=0.25)


def test_duplicated_rows_do_not_narrow_the_ci():
    """A persona asked twice with the same answer carries no more information: the cluster
    bootstrap keeps the CI width (a row bootstrap would shrink it by ~1/sqrt(2))."""
    personas, responses, reference, inst = synthetic_run(
        n_personas=600, n_human=1200, n_questions=2, conditions=("as_is|letters",), no_persona=0,
        persona_weights="equal", seed=12)
    twice = pd.concat([responses, responses.assign(replicate=1)], ignore_index=True)
    cfg = AnalysisConfig(bootstrap=400, n_permutations=0, group_vars=["sex"])
    widths = []
    for frame in (responses, twice):
        m = analyze(frame, reference, personas, inst, cfg, seed=3).metrics
        m = m[m.metric == "entropy_norm_silicon"].sort_values(["question_id", "group_var", "group_value"])
        widths.append((m.ci_high - m.ci_low).to_numpy())
    ratio = widths[1] / widths[0]
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


def test_synthetic_equal_persona_weights_change_only_the_weights():
    a = synthetic_run(n_personas=50, n_human=60, n_questions=2, seed=5)
    b = synthetic_run(n_personas=50, n_human=60, n_questions=2, seed=5, persona_weights="equal")
    assert (b[0].weight == 1.0).all() and a[0].weight.nunique() == 50
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])
    with pytest.raises(ValueError):
        synthetic_run(n_personas=10, persona_weights="heavy")


def test_unit_tables_match_direct_persona_resampling():
    # Continuous masses (logprob distributions): every persona distinct, drawn one by one.
    counts, group = _personas(9, n=250)
    mass = counts * np.random.default_rng(10).uniform(0.5, 2.0, len(counts))[:, None]
    fast = B.unit_tables(np.random.default_rng(11), mass, group, 2, 8000)
    slow = _direct(mass, group, 8000, 12)
    obs = np.stack([mass[group == g].sum(0) for g in range(2)])
    np.testing.assert_allclose(fast.mean(0), obs, rtol=0.01)
    np.testing.assert_allclose(fast.std(0), slow.std(0), rtol=0.06)
    # Same seed, same draws.
    again = B.unit_tables(np.random.default_rng(11), mass, group, 2, 8000)
    np.testing.assert_array_equal(fast, again)
    assert np.all(B.unit_tables(np.random.default_rng(0), mass, np.full(len(mass), -1), 2, 5) == 0)
