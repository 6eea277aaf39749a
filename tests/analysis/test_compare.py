"""analyze() end to end on synthetic contract-shaped frames, recomputed independently with scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, pearsonr, wasserstein_distance

from simsurvey.analysis import METRICS, AnalysisConfig, analyze
from simsurvey.analysis.synthetic import synthetic_run
from simsurvey.errors import UserError
from simsurvey.io import write_table

CFG = AnalysisConfig(bootstrap=50, n_permutations=50, null_draws=200)


@pytest.fixture(scope="module")
def run():
    personas, responses, reference, inst = synthetic_run(n_personas=300, n_human=900, seed=11, silicon_shift=0.4)
    # Integer weights keep weighted tables integral, so scipy's association() can check them.
    personas["weight"] = np.random.default_rng(1).integers(1, 4, len(personas)).astype(float)
    # A respondent keeps one weight across questions, as in a real survey.
    rw = np.random.default_rng(2).integers(1, 4, reference.respondent_id.nunique()).astype(float)
    reference["weight"] = rw[reference.respondent_id.str[1:].astype(int)]
    res = analyze(responses, reference, personas, inst, CFG, seed=5)
    return personas, responses, reference, inst, res


def _get(m, metric, q="q0", var="all", value="all", model="test/model"):
    row = m[(m.metric == metric) & (m.question_id == q) & (m.group_var == var) & (m.group_value == value)
            & (m.model == model)]
    assert len(row) == 1, (metric, q, var, value)
    return row.iloc[0]


def _silicon(personas, responses, q, var=None, value=None):
    df = responses[(responses.question_id == q) & responses.persona_id.notna()]
    df = df.merge(personas, on="persona_id")
    if var:
        df = df[df[var] == value]
    return df


def _dist(df, codes, weight="weight"):
    valid = df["valid"] if "valid" in df.columns else True
    ok = df[df.answer_code.isin(codes) & valid]
    return ok.groupby("answer_code")[weight].sum().reindex(codes, fill_value=0).to_numpy()


def _n_eff(df, codes):
    """Independent linearized effective size: persona-level sums with pandas (module docstring of
    simsurvey.analysis.inference): n_eff = (1 − Σp²) / (Σ_i w_i² ‖y_i − m_i p‖² / (Σ_i w_i m_i)²)."""
    ok = df[df.answer_code.isin(codes) & (df["valid"] if "valid" in df.columns else True)]
    y = pd.crosstab(ok.persona_id, ok.answer_code).reindex(columns=codes, fill_value=0)
    w = ok.groupby("persona_id")["weight"].first().reindex(y.index).to_numpy()
    y = y.to_numpy(float)
    mi = y.sum(1)
    p = (w[:, None] * y).sum(0) / (w * mi).sum()
    tr = (w[:, None] ** 2 * (y - mi[:, None] * p) ** 2).sum() / (w * mi).sum() ** 2
    return (1 - (p**2).sum()) / tr


def _bergsma(tab, n):
    """Bias-corrected Cramér's V from scipy's chi-square (Bergsma 2013, eqs. 3–5)."""
    from scipy.stats import chi2_contingency
    tab = tab[tab.sum(1) > 0][:, tab.sum(0) > 0]
    phi2 = chi2_contingency(tab, correction=False)[0] / tab.sum()
    r, c = tab.shape
    phi2c = max(0.0, phi2 - (r - 1) * (c - 1) / (n - 1))
    rc, cc = r - (r - 1) ** 2 / (n - 1), c - (c - 1) ** 2 / (n - 1)
    return np.sqrt(phi2c / min(rc - 1, cc - 1))


def _rao_scott_p(tab, n):
    from scipy.stats import chi2, chi2_contingency
    tab = tab[tab.sum(1) > 0][:, tab.sum(0) > 0]
    stat, _, dof, _ = chi2_contingency(tab, correction=False)
    return chi2.sf(n * stat / tab.sum(), dof)


def test_every_metric_recomputed_with_scipy(run):
    personas, responses, reference, inst, res = run
    m = res.metrics
    assert set(m.metric) <= set(METRICS)
    assert list(m.columns) == ["model", "question_id", "group_var", "group_value", "metric", "value",
                               "ci_low", "ci_high", "null_mean", "null_q95", "p_value", "excess",
                               "n_silicon", "n_human", "n_eff_silicon", "n_eff_human", "flag"]
    for q in inst.questions:
        codes = list(q.substantive_codes)
        k = len(codes)
        for var, value in (("all", "all"), ("sex", "female"), ("age", "65+"), ("college", "no")):
            s = _silicon(personas, responses, q.id, None if var == "all" else var, value)
            h = reference[reference.question_id == q.id]
            if var != "all":
                h = h[h[var] == value]
            p, hq = _dist(s, codes), _dist(h, codes)
            p, hq = p / p.sum(), hq / hq.sum()
            g = lambda name: _get(m, name, q.id, var, value).value  # noqa: E731
            ns, nh = _n_eff(s, codes), _n_eff(h.assign(persona_id=h.respondent_id), codes)
            row = _get(m, "js_divergence", q.id, var, value)
            assert row.n_eff_silicon == pytest.approx(ns, rel=1e-9)
            assert row.n_eff_human == pytest.approx(nh, rel=1e-9)
            assert row.excess == pytest.approx(row.value - row.null_mean)
            assert g("js_divergence") == pytest.approx(jensenshannon(p, hq, base=2) ** 2, abs=1e-9)
            e = CFG.kl_smoothing
            sm = lambda v: (v + e) / (1 + k * e)  # noqa: E731
            assert g("kl_silicon_human") == pytest.approx(entropy(sm(p), sm(hq), base=2), rel=1e-9)
            assert g("kl_human_silicon") == pytest.approx(entropy(sm(hq), sm(p), base=2), rel=1e-9)
            assert g("total_variation") == pytest.approx(0.5 * np.abs(p - hq).sum())
            mm = lambda d, n: min(1.0, (entropy(d) + ((d > 0).sum() - 1) / (2 * n)) / np.log(k))  # noqa: E731
            assert g("entropy_norm_silicon") == pytest.approx(mm(p, ns))
            assert g("entropy_ratio") == pytest.approx(mm(p, ns) / mm(hq, nh))
            if q.kind == "ordinal":
                w = wasserstein_distance(range(k), range(k), p, hq) / (k - 1)
                assert g("wasserstein_norm") == pytest.approx(w, abs=1e-9)
                assert g("representativeness") == pytest.approx(1 - w, abs=1e-9)
                var_h = np.cov(np.arange(k), aweights=hq, ddof=0) * nh / (nh - 1)
                assert g("variance_human") == pytest.approx(var_h)
            else:
                gs = lambda d, n: (1 - (d**2).sum()) * n / (n - 1)  # noqa: E731
                assert g("gini_simpson_silicon") == pytest.approx(gs(p, ns))
                assert g("gini_simpson_ratio") == pytest.approx(gs(p, ns) / gs(hq, nh))
            n_valid = s.answer_code.isin(codes) & s.valid
            assert _get(m, "js_divergence", q.id, var, value).n_silicon == n_valid.sum()
            wt = s.weight
            assert g("invalid_rate") == pytest.approx((wt * ~s.valid).sum() / wt.sum())
            ans = s[s.valid & s.answer_code.notna()]
            assert g("nonsubstantive_rate") == pytest.approx(
                (ans.weight * (ans.answer_code == "dk")).sum() / ans.weight.sum())
        # Cramér's V of each demographic with the answer, on weighted (integral) tables.
        for var in ("sex", "region"):
            s = _silicon(personas, responses, q.id)
            s = s[s.answer_code.isin(codes) & s.valid]
            tab = pd.crosstab(s[var], s.answer_code, values=s.weight, aggfunc="sum").fillna(0)
            row = _get(m, "cramers_v_silicon", q.id, var, "*")
            assert row.value == pytest.approx(_bergsma(tab.to_numpy(), _n_eff(s, codes)), abs=1e-9)
            assert row.p_value == pytest.approx(_rao_scott_p(tab.to_numpy(), _n_eff(s, codes)), rel=1e-6)
            h = reference[(reference.question_id == q.id) & reference.answer_code.isin(codes)]
            tab = pd.crosstab(h[var], h.answer_code, values=h.weight, aggfunc="sum").fillna(0)
            nh = _n_eff(h.assign(persona_id=h.respondent_id), codes)
            row = _get(m, "cramers_v_human", q.id, var, "*")
            assert row.value == pytest.approx(_bergsma(tab.to_numpy(), nh), abs=1e-9)
            assert row.p_value == pytest.approx(_rao_scott_p(tab.to_numpy(), nh), rel=1e-6)
        if q.kind == "ordinal":
            s = _silicon(personas, responses, q.id)
            s = s[s.answer_code.isin(codes) & s.valid].assign(x=lambda d: d.answer_code.map(codes.index))
            h = reference[(reference.question_id == q.id) & reference.answer_code.isin(codes)]
            h = h.assign(x=h.answer_code.map(codes.index))
            wm = lambda d: d.groupby("age").apply(lambda g: np.average(g.x, weights=g.weight))  # noqa: E731
            r = pearsonr(wm(s).to_numpy(), wm(h).reindex(wm(s).index).to_numpy())[0]
            assert _get(m, "subgroup_mean_corr", q.id, "age", "*").value == pytest.approx(r)


def test_pairwise_and_no_persona_structure(run):
    personas, responses, reference, inst, res = run
    m = res.metrics
    q0 = inst.questions[0]
    # Human: respondents who answered both substantively, weighted crosstab.
    h = reference[reference.answer_code.isin(q0.substantive_codes)]
    a = h[h.question_id == "q0"].set_index("respondent_id")
    b = h[h.question_id == "q1"].set_index("respondent_id")
    j = a[["answer_code", "weight"]].join(b[["answer_code"]].add_suffix("_b"), how="inner")
    tab = pd.crosstab(j.answer_code, j.answer_code_b, values=j.weight, aggfunc="sum").fillna(0)
    v = _get(m, "pair_cramers_v_human", "q0|q1").value
    kish = j.weight.sum() ** 2 / (j.weight**2).sum()
    assert v == pytest.approx(_bergsma(tab.to_numpy(), kish), abs=1e-9)
    # no_persona_js: JS of the no-persona answers vs the weighted mixture of persona answers.
    s = _silicon(personas, responses, "q0")
    mix = _dist(s, list(q0.substantive_codes))
    npr = responses[(responses.question_id == "q0") & responses.persona_id.isna()].assign(weight=1.0)
    nod = _dist(npr, list(q0.substantive_codes))
    assert _get(m, "no_persona_js").value == pytest.approx(
        jensenshannon(nod / nod.sum(), mix / mix.sum(), base=2) ** 2, abs=1e-9)
    corr = m[m.metric == "pattern_cramers_v_corr"]
    assert len(corr) == 1 and corr.question_id.iloc[0] == "*"


def test_cis_contain_point_and_shrink_with_n():
    widths = []
    for n in (150, 1200):
        personas, responses, reference, inst = synthetic_run(n_personas=n, n_human=n * 3, n_questions=2, seed=3,
                                                             silicon_shift=0.5, no_persona=0)
        m = analyze(responses, reference, personas, inst, AnalysisConfig(bootstrap=200, n_permutations=0), seed=1).metrics
        d = m[m.metric.isin(["js_divergence", "total_variation", "entropy_norm_silicon", "wasserstein_norm"])
              & (m.group_var == "all")]
        assert ((d.ci_low <= d.value + 1e-12) & (d.value <= d.ci_high + 1e-12)).mean() >= 0.9
        widths.append((d.ci_high - d.ci_low).mean())
    assert widths[1] < widths[0] * 0.7


def test_null_columns_for_tested_metrics_only(run):
    m = run[4].metrics
    tested = m[m.metric.isin(["js_divergence", "total_variation", "entropy_ratio", "representativeness"])]
    assert tested.null_mean.notna().all() and tested.p_value.between(0, 1).all()
    assert m[m.metric == "entropy_norm_human"].null_mean.isna().all()
    assert m[m.metric == "invalid_rate"].p_value.isna().all()
    row = _get(m, "js_divergence")
    # The silicon shift is real: beyond the sampling null at these sizes.
    assert row.value > row.null_q95 and row.p_value < 0.05 and row.excess > 0
    rep = _get(m, "representativeness", q="q0")
    assert rep.null_q95 < rep.null_mean  # lower-tail critical value


def test_identical_sides_give_zero_distance():
    personas, responses, reference, inst = synthetic_run(n_personas=200, n_human=10, n_questions=2, seed=4,
                                                         no_persona=0)
    s = responses.merge(personas, on="persona_id")
    ref = s.rename(columns={"persona_id": "respondent_id"}).assign(
        source="mirror", respondent_id=lambda d: d.respondent_id.astype(str) + "_" + d.condition_id)
    ref = ref[ref.valid]
    m = analyze(responses, ref, personas, inst, CFG, seed=1).metrics
    for name in ("js_divergence", "total_variation", "kl_silicon_human", "wasserstein_norm"):
        assert np.allclose(m[m.metric == name].value, 0.0, atol=1e-12), name
    # Ratios are 1 up to the small-sample corrections, which differ because the sides' designs
    # differ (a persona's two conditions are one cluster; the mirrored rows are independent).
    assert np.allclose(m[m.metric == "entropy_ratio"].value, 1.0, atol=0.005)


def test_baseline_models_get_the_same_metrics(run):
    personas, responses, reference, inst, _ = run
    rng = np.random.default_rng(0)
    base = responses[responses.persona_id.notna()].copy()
    base["model"] = "baseline/uniform"
    base["answer_code"] = rng.choice([f"c{j}" for j in range(5)], len(base))
    base["valid"] = True
    res = analyze(pd.concat([responses, base], ignore_index=True), reference, personas, inst, CFG, seed=5)
    m = res.metrics
    per_model = m.groupby("model").metric.apply(set)
    assert per_model["baseline/uniform"] >= per_model["test/model"] - {"no_persona_js", "no_persona_js_human"}
    assert _get(m, "entropy_norm_silicon", model="baseline/uniform").value > 0.99
    assert _get(m, "invalid_rate", model="baseline/uniform").value == 0


def test_probs_from_dicts_and_parquet_map_agree(tmp_path):
    personas, responses, reference, inst = synthetic_run(n_personas=120, n_human=400, n_questions=2, seed=8,
                                                         with_probs=True, primacy=0.2)
    cfg = AnalysisConfig(bootstrap=20, n_permutations=20)
    a = analyze(responses, reference, personas, inst, cfg, seed=2)
    assert a.diagnostics["models"]["test/model"]["distribution"] == "probs"
    # The responses contract stores probs as map<string,double>.
    table = pa.Table.from_pandas(responses.drop(columns="probs"), preserve_index=False).append_column(
        "probs", pa.array(responses.probs.tolist(), type=pa.map_(pa.string(), pa.float64())))
    write_table(table, tmp_path / "responses.parquet", kind="responses")
    back = pd.read_parquet(tmp_path / "responses.parquet")
    assert isinstance(back.probs.dropna().iloc[0], list)  # pandas 3: list of (key, value) tuples
    b = analyze(back, reference, personas, inst, cfg, seed=2)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    pd.testing.assert_frame_equal(a.order_effects, b.order_effects)
    # The probs distribution is the weighted mean of the rows' (renormalized) vectors.
    s = responses[(responses.question_id == "q0") & responses.persona_id.notna()].merge(personas, on="persona_id")
    vec = np.array([[d[f"c{j}"] for j in range(5)] for d in s.probs])
    p = (s.weight.to_numpy()[:, None] * vec / vec.sum(1, keepdims=True)).sum(0)
    # Miller–Madow at the probs-mode effective size: only the spread of the personas' vectors
    # is sampling noise (a persona's two conditions give identical vectors here: one unit).
    row = _get(a.metrics, "entropy_norm_silicon")
    n = row.n_eff_silicon
    assert row.value == pytest.approx((entropy(p) + 4 / (2 * n)) / np.log(5))
    c = analyze(responses, reference, personas, inst, cfg.model_copy(update={"distribution": "answers"}), seed=2)
    assert c.diagnostics["models"]["test/model"]["distribution"] == "answers"


def test_reference_source_groups_and_errors():
    personas, responses, reference, inst = synthetic_run(n_personas=100, n_human=300, n_questions=2, seed=9)
    other = reference.assign(source="other", answer_code="c0")
    both = pd.concat([reference, other], ignore_index=True)
    cfg = CFG.model_copy(update={"min_group_n": 40})
    first = analyze(responses, both, personas, inst, cfg, seed=1)
    assert first.diagnostics["reference_sources"] == {"q0": "synthetic_survey", "q1": "synthetic_survey"}
    chosen = analyze(responses, both, personas, inst, cfg.model_copy(update={"reference_source": "other"}), seed=1)
    assert _get(chosen.metrics, "entropy_norm_human").value == pytest.approx(0.0)
    # A small subgroup is skipped with a note; an all-null variable too.
    assert any(s["group_var"] == "race_ethnicity" for s in first.diagnostics["skipped_groups"])
    nulls = analyze(responses, both.assign(region=None), personas, inst, cfg, seed=1)
    assert "region" not in set(nulls.metrics.group_var)
    assert any("region" in n for n in nulls.diagnostics["notes"])
    with pytest.raises(UserError, match="reference_source"):
        analyze(responses, both, personas, inst, cfg.model_copy(update={"reference_source": "nope"}), seed=1)
    with pytest.raises(UserError, match="persona_id not in personas"):
        analyze(responses, both, personas.iloc[:50], inst, cfg, seed=1)


def test_same_seed_same_result(run):
    personas, responses, reference, inst, res = run
    again = analyze(responses, reference, personas, inst, CFG, seed=5)
    pd.testing.assert_frame_equal(res.metrics, again.metrics)


def test_no_persona_js_interval_contains_its_estimate_for_logprob_distributions():
    # Every persona row and every no-persona row carries the same probability vector, so the
    # persona-free answer equals the mixture: JS = 0, and a bootstrap that resamples rows must
    # keep 0 inside its interval (a multinomial draw around the pooled mass would not).
    personas, responses, reference, inst = synthetic_run(n_personas=60, n_human=300, seed=3, with_probs=True)
    v = {"c0": 0.5, "c1": 0.2, "c2": 0.1, "c3": 0.1, "c4": 0.1}
    responses["probs"] = [v] * len(responses)
    responses["answer_code"] = "c0"
    responses["valid"] = True
    cfg = AnalysisConfig(bootstrap=100, n_permutations=20, null_draws=100, distribution="probs")
    m = analyze(responses, reference, personas, inst, cfg, seed=2).metrics
    rows = m[m.metric == "no_persona_js"]
    assert len(rows) == len(inst.questions)
    for _, r in rows.iterrows():
        assert r.value == pytest.approx(0.0, abs=1e-12)
        assert r.ci_low <= r.value + 1e-12 <= r.ci_high + 1e-12
