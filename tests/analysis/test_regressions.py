"""Bugs found by the calibration audit (issue 8); each test failed on the code before its fix."""

from __future__ import annotations

import numpy as np

from simsurvey.analysis import AnalysisConfig, analyze
from simsurvey.analysis import metrics as M
from simsurvey.analysis.synthetic import synthetic_run


def test_no_persona_js_in_probs_mode_when_a_no_persona_row_lacks_probs():
    # Before: IndexError (a boolean mask of all rows indexed the already-filtered vectors).
    personas, responses, reference, inst = synthetic_run(n_personas=60, n_human=200, n_questions=1, seed=3,
                                                         with_probs=True, no_persona=4)
    np_rows = responses.index[responses.persona_id.isna()]
    responses.loc[np_rows[0], "probs"] = None
    m = analyze(responses, reference, personas, inst,
                AnalysisConfig(bootstrap=20, n_permutations=0, null_draws=50, distribution="probs"), seed=1).metrics
    row = m[m.metric == "no_persona_js"]
    assert len(row) == 1 and row.n_silicon.iloc[0] == 2  # 3 rows with probs, 2 distinct prompts


def test_pair_cramers_v_interval_holds_its_estimate_in_probs_mode():
    # Before: a multinomial drawn around the probability table put the estimate outside its own
    # interval in most rows.
    personas, responses, reference, inst = synthetic_run(n_personas=300, n_human=600, n_questions=4, seed=5,
                                                         with_probs=True)
    m = analyze(responses, reference, personas, inst,
                AnalysisConfig(bootstrap=200, n_permutations=0, null_draws=50), seed=2).metrics
    pv = m[m.metric == "pair_cramers_v_silicon"]
    assert len(pv) == 6
    inside = (pv.ci_low <= pv.value + 1e-12) & (pv.value <= pv.ci_high + 1e-12)
    assert inside.all(), pv[["question_id", "value", "ci_low", "ci_high"]]


def test_correlation_of_float_noise_is_nan():
    # Before: V ≈ 1e-16 everywhere (no association on either side) gave a "correlation".
    noise = np.array([1e-16, 3e-17, 2.2e-16, 0.0, 1.1e-16])
    assert np.isnan(M.pearson_r(noise, np.array([0.1, 0.3, 0.2, 0.5, 0.4])))
    assert np.isnan(M.pearson_r(np.array([0.1, 0.3, 0.2, 0.5, 0.4]), 0.2 + noise))
    assert np.isfinite(M.pearson_r(np.array([0.1, 0.3, 0.2, 0.5]), np.array([1e-3, 4e-3, 2e-3, 5e-3])))


def test_copies_of_a_deterministic_no_persona_prompt_are_one_unit():
    # Ten no-persona rows over two conditions (one displayed order): two prompts, not ten draws.
    personas, responses, reference, inst = synthetic_run(n_personas=60, n_human=200, n_questions=1, seed=3,
                                                         with_probs=True, no_persona=10)
    m = analyze(responses, reference, personas, inst,
                AnalysisConfig(bootstrap=20, n_permutations=0, null_draws=50), seed=1).metrics
    row = m[m.metric == "no_persona_js"].iloc[0]
    assert row.n_silicon == 2
