"""Battery and multi_select rows of analyze(), checked against independent computations."""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from simsurvey.analysis import AnalysisConfig, analyze
from simsurvey.instruments import Instrument

CFG = AnalysisConfig(bootstrap=100, n_permutations=0, null_draws=100, group_vars=["sex"], pairs=False)
LEVELS = ["1", "2", "3", "4", "5", "6"]
ITEMS = ["a1", "a2", "a3", "a4"]
OPTS = ["x", "y", "z"]


def _instrument() -> Instrument:
    return Instrument.model_validate({"id": "t", "title": "t", "questions": [
        {"id": "agree", "kind": "battery", "text": "How accurately do these describe you?", "item_kind": "ordinal",
         "options": [{"code": c, "label": c} for c in LEVELS],
         "items": [{"id": i, "text": f"Item {i}", "reverse_keyed": i == "a1"} for i in ITEMS]},
        {"id": "ms", "kind": "multi_select", "text": "Which apply?",
         "options": [{"code": c, "label": c} for c in OPTS] + [{"code": "none", "label": "None of these"}],
         "reference": [{"dataset": "x", "none": "none",
                        "selected": {c: {"variable": c, "yes": [1], "no": [0]} for c in OPTS}}]},
    ]})


def _likert(rng: np.random.Generator, n: int, load: float) -> np.ndarray:
    theta = rng.standard_normal(n)
    y = load * theta[:, None] + rng.standard_normal((n, 4))
    cat = np.clip(np.round(2.5 + 1.2 * y), 0, 5).astype(int)
    cat[:, 0] = 5 - cat[:, 0]
    return cat


def _alpha(x: np.ndarray) -> float:
    k = x.shape[1]
    items = [statistics.variance(x[:, j].tolist()) for j in range(k)]
    return k / (k - 1) * (1 - sum(items) / statistics.variance(x.sum(1).tolist()))


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    n_p, n_h, reps = 120, 500, 2
    personas = pd.DataFrame({"persona_id": np.arange(n_p, dtype=np.int64), "weight": 1.0,
                             "sex": rng.choice(["female", "male"], n_p), "cue": "p"})
    rows = []
    xs = _likert(rng, n_p * reps, 1.5)
    sets_s = rng.random((n_p * reps, 3)) < [0.7, 0.3, 0.5]
    for u in range(n_p * reps):
        pid, rep = u // reps, u % reps
        for j, item in enumerate(ITEMS):
            rows.append({"persona_id": pid, "question_id": item, "replicate": rep, "answer_code": LEVELS[xs[u, j]]})
        chosen = [c for c, s in zip(OPTS, sets_s[u]) if s]
        rows.append({"persona_id": pid, "question_id": "ms", "replicate": rep,
                     "answer_code": "|".join(chosen) if chosen else "none"})
    rows.append({"persona_id": 0, "question_id": "ms", "replicate": 2, "answer_code": "x|none"})  # contradictory
    responses = pd.DataFrame(rows).assign(condition_id="as_is|letters", model="m", valid=True, refusal=False)
    responses["persona_id"] = responses["persona_id"].astype("Int64")
    xh = _likert(rng, n_h, 0.8)
    sets_h = rng.random((n_h, 3)) < [0.6, 0.4, 0.5]
    w_h = rng.integers(1, 4, n_h).astype(float)
    ref = []
    for r in range(n_h):
        for j, item in enumerate(ITEMS):
            ref.append({"respondent_id": str(r), "question_id": item, "answer_code": LEVELS[xh[r, j]]})
        chosen = [c for c, s in zip(OPTS, sets_h[r]) if s]
        ref.append({"respondent_id": str(r), "question_id": "ms", "answer_code": "|".join(chosen) if chosen else "none"})
    reference = pd.DataFrame(ref).assign(source="x")
    reference["weight"] = w_h[reference.respondent_id.astype(int)]
    reference["sex"] = np.where(reference.respondent_id.astype(int) % 2 == 0, "female", "male")
    res = analyze(responses, reference, personas, _instrument(), CFG, seed=3)
    return xs, xh, w_h, sets_s, sets_h, res


def _row(m: pd.DataFrame, metric: str, q: str, var: str = "all", value: str = "all") -> pd.Series:
    r = m[(m.metric == metric) & (m.question_id == q) & (m.group_var == var) & (m.group_value == value)]
    assert len(r) == 1, (metric, q, var, value)
    return r.iloc[0]


def test_each_item_is_scored_as_its_own_question(run) -> None:
    m = run[-1].metrics
    for item in ITEMS:
        assert np.isfinite(_row(m, "js_divergence", item)["value"])
        assert len(m[(m.question_id == item) & (m.group_var == "sex")]) > 0


def test_alpha_rows_match_the_textbook_formula(run) -> None:
    xs, xh, w_h, *_ , res = run
    m = res.metrics
    xs_r, xh_r = xs.astype(float), np.repeat(xh, w_h.astype(int), axis=0).astype(float)
    xs_r[:, 0], xh_r[:, 0] = 5 - xs_r[:, 0], 5 - xh_r[:, 0]  # reverse-keyed item reflected
    a_s, a_h = _row(m, "cronbach_alpha_silicon", "agree"), _row(m, "cronbach_alpha_human", "agree")
    assert a_s["value"] == pytest.approx(_alpha(xs_r), abs=1e-9)
    assert a_h["value"] == pytest.approx(_alpha(xh_r), abs=1e-9)  # integer weights = duplicated rows
    assert a_s["n_silicon"] == 240 and a_s["n_eff_silicon"] == 120  # persona x replicate units, 120 clusters
    d = _row(m, "cronbach_alpha_diff", "agree")
    assert d["value"] == pytest.approx(a_s["value"] - a_h["value"])
    # The silicon loadings are much higher: a clear, significant difference.
    assert d["p_value"] < 0.05 and d["ci_low"] > 0  # 0.0198 is the least p at B = 100
    mad = _row(m, "inter_item_corr_mad", "agree")
    assert mad["p_value"] < 0.05 and mad["value"] > mad["null_mean"] > 0
    r = np.corrcoef(xs_r, rowvar=False)
    assert _row(m, "inter_item_corr_silicon", "a1|a2")["value"] == pytest.approx(r[0, 1], abs=1e-9)
    iu = np.triu_indices(4, 1)
    rh = np.corrcoef(xh_r, rowvar=False)
    assert mad["value"] == pytest.approx(np.abs(r[iu] - rh[iu]).mean(), abs=1e-9)
    z = _row(m, "standardized_alpha_silicon", "agree")["value"]
    assert z == pytest.approx(4 * r[iu].mean() / (1 + 3 * r[iu].mean()), abs=1e-9)


def test_selection_rate_rows_by_hand(run) -> None:
    *_, sets_s, sets_h, res = run
    w_h = run[2]
    m = res.metrics
    for j, code in enumerate(OPTS):
        s = _row(m, "selection_rate_silicon", "ms", "option", code)
        h = _row(m, "selection_rate_human", "ms", "option", code)
        assert s["value"] == pytest.approx(sets_s[:, j].mean())  # the contradictory set is left out
        assert h["value"] == pytest.approx(np.average(sets_h[:, j], weights=w_h))
        d = _row(m, "selection_rate_diff", "ms", "option", code)
        assert d["value"] == pytest.approx(s["value"] - h["value"])
        assert d["ci_low"] <= d["value"] <= d["ci_high"] and 0 < d["p_value"] <= 1
        assert s["n_silicon"] == 240 and s["n_eff_silicon"] == 120
    assert not (m.group_value == "none").any()
    assert any("contradict 'none'" in n for n in res.diagnostics["notes"])
    # x: 0.7 vs 0.6, y: 0.3 vs 0.4 are real differences; z (0.5 vs 0.5) is not.
    assert _row(m, "selection_rate_diff", "ms", "option", "x")["value"] > 0
    assert _row(m, "selection_rate_diff", "ms", "option", "y")["value"] < 0


def test_alpha_units_are_each_condition_of_a_within_design() -> None:
    # Regression: under a within design a persona answers the grid once per condition; each is an
    # administration of the battery. The old code averaged a persona's conditions within a replicate
    # (halving the item noise), so the silicon alpha came out inflated (0.84 here instead of 0.72).
    rng = np.random.default_rng(12)
    n_p = 150
    personas = pd.DataFrame({"persona_id": np.arange(n_p, dtype=np.int64), "weight": 1.0, "cue": "p"})
    theta = np.repeat(rng.standard_normal(n_p), 2)
    y = 0.9 * theta[:, None] + rng.standard_normal((2 * n_p, 4))
    xs = np.clip(np.round(2.5 + 1.2 * y), 0, 5).astype(int)
    xs[:, 0] = 5 - xs[:, 0]
    conds = ("as_is|letters", "reversed|letters")
    responses = pd.DataFrame([{"persona_id": u // 2, "condition_id": conds[u % 2], "question_id": item,
                               "answer_code": LEVELS[xs[u, j]]} for u in range(2 * n_p) for j, item in enumerate(ITEMS)])
    responses = responses.assign(replicate=0, model="m", valid=True, refusal=False)
    responses["persona_id"] = responses["persona_id"].astype("Int64")
    xh = _likert(rng, 300, 0.8)
    reference = pd.DataFrame([{"respondent_id": str(r), "question_id": item, "answer_code": LEVELS[xh[r, j]]}
                              for r in range(300) for j, item in enumerate(ITEMS)]).assign(source="x", weight=1.0)
    cfg = CFG.model_copy(update={"group_vars": []})
    m = analyze(responses, reference, personas, _instrument(), cfg, seed=2).metrics
    row = m[(m.question_id == "agree") & (m.metric == "cronbach_alpha_silicon")].iloc[0]
    refl = xs.astype(float)
    refl[:, 0] = 5 - refl[:, 0]
    assert row.value == pytest.approx(_alpha(refl)) and row.n_silicon == 2 * n_p
    assert row.value < _alpha(refl.reshape(n_p, 2, 4).mean(1)) - 0.05  # what averaging the conditions gives
