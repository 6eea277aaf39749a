"""A small, realistic synthetic run directory following the shared data contracts.

3 questions (2 ordinal, 1 nominal), 2 models (SmolLM2-135M-Instruct and baseline/uniform),
4 presentation conditions plus the no_persona control, demographics on both sides. The
"model" answers mostly by display position (as the real 135M model does), so the order-effect
section has something to show; human answers depend on demographics, so the structure section
does too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.io import write_parquet

MODEL = "SmolLM2-135M-Instruct"
BASELINE = "baseline/uniform"
CONDITIONS = ("as_is|letters", "reversed|letters", "as_is|numbers", "reversed|numbers")
CONTROL = "no_persona|as_is|letters"

PID_LABELS = ("Strong Democrat", "Not very strong Democrat", "Lean Democrat", "Independent",
              "Lean Republican", "Not very strong Republican", "Strong Republican")


def make_instrument() -> Instrument:
    """The fixture's instrument (one label carries HTML-special characters on purpose)."""
    return Instrument(
        id="politics_test",
        title="Politics <test> & co",
        questions=(
            Question(id="pid7", text="Generally speaking, do you think of yourself as a Democrat, a Republican...?",
                     kind="ordinal",
                     options=tuple(Option(code=str(i + 1), label=lab) for i, lab in enumerate(PID_LABELS))),
            Question(id="ideo5", text="How would you describe your <political> viewpoint?", kind="ordinal",
                     options=(Option(code="very_liberal", label="Very liberal"),
                              Option(code="liberal", label="Liberal"),
                              Option(code="moderate", label="Moderate"),
                              Option(code="conservative", label="Conservative"),
                              Option(code="very_conservative", label="Very conservative"),
                              Option(code="not_sure", label="Not sure", non_substantive=True))),
            Question(id="religion", text="What is your present religion, if any?", kind="single_choice",
                     options=(Option(code="protestant", label="Protestant"),
                              Option(code="catholic", label="Roman Catholic"),
                              Option(code="none", label="Nothing in particular"),
                              Option(code="other", label="Something else: $ & <other>"))),
        ),
    )


DEMO = {
    "sex": ["female", "male"],
    "age": ["18-29", "30-44", "45-64", "65+"],
    "race_ethnicity": ["white_nh", "black_nh", "hispanic", "asian_nh", "other_multiple_nh"],
    "education": ["less_than_high_school", "high_school_graduate", "some_college_or_associates", "bachelors",
                  "graduate_or_professional"],
    "region": ["northeast", "midwest", "south", "west"],
    "household_income": ["under_50k", "50k_100k", "100k_150k", "150k_plus"],
}


def _people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    df = pd.DataFrame({k: rng.choice(v, size=n) for k, v in DEMO.items()})
    df["college"] = np.where(df["education"].isin(["bachelors", "graduate_or_professional"]), "yes", "no")
    return df


def _human_answer(rng: np.random.Generator, row: pd.Series, q: Question) -> str:
    codes = list(q.codes)
    if q.id == "pid7":
        lean = 0.35 if row["race_ethnicity"] == "black_nh" else 0.55 + 0.08 * DEMO["age"].index(row["age"]) / 3
        return str(int(np.clip(np.round(rng.normal(1 + 6 * lean, 1.6)), 1, 7)))
    if q.id == "ideo5":
        shift = 0.6 if row["college"] == "yes" else 0.0
        return codes[int(np.clip(np.round(rng.normal(2.2 - shift, 1.0)), 0, 4))]
    p = np.array([0.45, 0.2, 0.25, 0.1]) if row["region"] == "south" else np.array([0.3, 0.25, 0.35, 0.1])
    return str(rng.choice(codes, p=p))


def build_run_dir(run_dir: Path, *, seed: int = 7, n_personas: int = 80, n_human: int = 300,
                  cramers_in_metrics: bool = True) -> Path:
    """Write personas/responses/reference/metrics/order_effects parquet and manifest.json."""
    rng = np.random.default_rng(seed)
    inst = make_instrument()
    run_dir.mkdir(parents=True, exist_ok=True)

    personas = _people(rng, n_personas)
    personas.insert(0, "persona_id", np.arange(n_personas, dtype="int64"))
    personas.insert(1, "weight", rng.uniform(0.5, 1.5, n_personas))
    personas["age_years"] = rng.integers(18, 90, n_personas)
    personas["name"] = [f"Person {i}" for i in range(n_personas)]
    personas["state"] = rng.choice(["NY", "TX", "CA", "OH"], n_personas)
    personas["city"] = "Springfield"
    personas["occupation"] = "teacher"
    personas["cue"] = [f"You are a {a} {s} from the {r}." for a, s, r in
                       zip(personas["age"], personas["sex"], personas["region"])]
    write_parquet(personas, run_dir / "personas.parquet", kind="personas")

    humans = _people(rng, n_human)
    humans["respondent_id"] = [f"r{i}" for i in range(n_human)]
    humans["weight"] = rng.uniform(0.3, 2.0, n_human)
    ref_rows = []
    for _, h in humans.iterrows():
        for q in inst.questions:
            ref_rows.append({"source": "cces2016", **h.to_dict(), "question_id": q.id,
                             "answer_code": _human_answer(rng, h, q)})
    reference = pd.DataFrame(ref_rows)
    write_parquet(reference, run_dir / "reference.parquet", kind="reference")

    rows = []
    for model in (MODEL, BASELINE):
        for q in inst.questions:
            codes = [c for c in q.codes]
            trials = [(int(pid), CONDITIONS[(pid + len(q.id)) % 4], 0) for pid in personas["persona_id"]]
            trials += [(None, CONTROL, r) for r in range(5)]
            for pid, cond, rep in trials:
                order = codes[::-1] if cond.startswith("reversed") else codes
                if model == BASELINE:
                    probs = {c: 1 / len(codes) for c in codes}
                    answer, valid, refusal, raw = str(rng.choice(codes)), True, False, "uniform"
                else:
                    pos_p = np.array([0.55] + [0.45 / (len(codes) - 1)] * (len(codes) - 1))
                    answer = order[int(rng.choice(len(codes), p=pos_p))]
                    probs = {c: float(pos_p[order.index(c)]) for c in codes}
                    u = rng.random()
                    valid, refusal, raw = u > 0.07, 0.05 < u <= 0.07, f"{answer}"
                    if not valid:
                        answer = None
                        raw = "I cannot answer that." if refusal else "Hmm <maybe> & more"
                rows.append({
                    "persona_id": pid, "question_id": q.id, "condition_id": cond, "replicate": rep,
                    "order_mode": cond.split("|")[-2] if pid is None else cond.split("|")[0],
                    "label_style": cond.split("|")[-1], "neutral_option": False,
                    "cue_style": "none" if pid is None else "attributes", "option_order": order,
                    "model": model, "backend": "baseline" if model == BASELINE else "local",
                    "elicitation": "logprobs", "prompt_hash": f"h{len(rows)}", "raw_text": raw,
                    "answer_code": answer, "valid": valid, "refusal": refusal, "probs": probs,
                    "missing_mass": 0.0 if model == BASELINE else 0.44, "latency_s": 0.0 if model == BASELINE else 0.17,
                    "prompt_tokens": 0 if model == BASELINE else 220, "completion_tokens": 0 if model == BASELINE else 1,
                    "cost_usd": 0.0, "cached": False, "error": None,
                })
    responses = pd.DataFrame(rows)
    responses["persona_id"] = responses["persona_id"].astype("Int64")
    write_parquet(responses, run_dir / "responses.parquet", kind="responses")

    met = []
    for model in (MODEL, BASELINE):
        for q in inst.questions:
            codes = list(q.codes)
            for var, values in (("all", ["all"]), ("sex", DEMO["sex"]), ("age", DEMO["age"])):
                for val in values:
                    hsel = reference[(reference["question_id"] == q.id) & ((reference[var] == val) if var != "all" else True)]
                    ssel = responses[(responses["model"] == model) & (responses["question_id"] == q.id)
                                     & responses["valid"] & responses["persona_id"].notna()]
                    if var != "all":
                        ids = personas.loc[personas[var] == val, "persona_id"]
                        ssel = ssel[ssel["persona_id"].isin(ids)]
                    hp = hsel["answer_code"].value_counts(normalize=True).reindex(codes, fill_value=0).to_numpy()
                    sp = ssel["answer_code"].value_counts(normalize=True).reindex(codes, fill_value=0).to_numpy()
                    js = float(jensenshannon(hp, sp, base=2) ** 2)
                    ent = lambda p: float(-(p[p > 0] * np.log(p[p > 0])).sum() / np.log(len(p)))  # noqa: E731
                    ratio = ent(sp) / ent(hp)
                    base = {"model": model, "question_id": q.id, "group_var": var, "group_value": val,
                            "n_silicon": len(ssel), "n_human": len(hsel)}
                    met.append({**base, "metric": "js_divergence", "value": js, "ci_low": js * 0.8,
                                "ci_high": js * 1.2, "null_mean": 0.01, "null_q95": 0.02,
                                "p_value": 0.04, "excess": js - 0.01, "n_eff_silicon": float(len(ssel)),
                                "n_eff_human": float(len(hsel))})
                    met.append({**base, "metric": "entropy_ratio", "value": ratio, "ci_low": ratio - 0.08,
                                "ci_high": ratio + 0.08})
                    if q.kind == "ordinal":
                        met.append({**base, "metric": "variance_ratio", "value": ratio * 0.9, "ci_low": ratio * 0.75,
                                    "ci_high": ratio * 1.05})
            if cramers_in_metrics:
                for var in ("sex", "age", "region"):
                    for metric, v in (("cramers_v_human", 0.2), ("cramers_v_silicon", 0.05)):
                        met.append({"model": model, "question_id": q.id, "group_var": var, "group_value": "*",
                                    "metric": metric, "value": v + 0.01 * len(var), "ci_low": np.nan,
                                    "ci_high": np.nan, "n_silicon": 80, "n_human": 300})
            if q.kind == "ordinal":  # like the analyzer: one row per demographic, group_value "*"
                for var in ("sex", "age"):
                    met.append({"model": model, "question_id": q.id, "group_var": var, "group_value": "*",
                                "metric": "subgroup_mean_corr", "value": 0.1, "ci_low": -0.3, "ci_high": 0.5,
                                "n_silicon": 80, "n_human": 300})
        met.append({"model": model, "question_id": "*", "group_var": "all", "group_value": "all",
                    "metric": "pattern_cramers_v_corr", "value": 0.42, "ci_low": 0.1, "ci_high": 0.7,
                    "n_silicon": 80, "n_human": 300})
    write_parquet(pd.DataFrame(met), run_dir / "metrics.parquet", kind="metrics")

    oe = []
    for model in (MODEL, BASELINE):
        for q in inst.questions:
            for i, a in enumerate(CONDITIONS):
                for b in CONDITIONS[i + 1:]:
                    oe.append({"model": model, "question_id": q.id, "condition_a": a, "condition_b": b,
                               "js_divergence": float(rng.uniform(0, 0.3)), "flip_rate": float(rng.uniform(0, 0.6)),
                               "primacy": float(rng.uniform(0, 0.4)), "recency": float(rng.uniform(0, 0.2)),
                               "p_value": float(rng.uniform(0, 1))})
    write_parquet(pd.DataFrame(oe), run_dir / "order_effects.parquet", kind="order_effects")

    manifest = {
        "manifest_version": "1", "schema_version": "1", "seed": 20261123,
        "config": {"seed": 20261123, "population": {"spec": "personas/us_adults.yaml", "n": n_personas},
                   "survey": {"instrument": "surveys/does_not_exist.yaml"},
                   "model": {"backend": "local", "name": MODEL, "elicitation": "logprobs"},
                   "design": {"cue": "attributes"}, "analysis": {}},
        "packages": {"simsurvey": "0.1.0"}, "command": "/x/simsurvey/__main__.py +experiment=politics",
        "started_at": "2026-11-23T10:00:00+0000",
        "stages": {"sample": {"seconds": 1.5},
                   "administer": {"rows": len(responses), "valid": int(responses["valid"].sum()),
                                  "invalid": int((~responses["valid"]).sum()), "refusals": int(responses["refusal"].sum()),
                                  "prompt_tokens": int(responses["prompt_tokens"].sum()), "completion_tokens": 250,
                                  "cost_usd": 0.0, "seconds": 42.0},
                   "analyze": {"seconds": 3.0}},
        # the shape written by simsurvey.reference.reference_provenance
        "reference": {
            "sources": {"cces2016": {"dataset": "cces2016", "title": "CCES 2016 (TV16 extract)",
                                     "sample": "CCES 2016 common content, <online> & opt-in", "rows": 300,
                                     "weights": "none: weight 1", "columns": ["a", "b"]}},
            "combine": "first",
            "questions": {q.id: [{"source": "cces2016", "variable": f"v_{q.id}", "n": 300, "n_missing_dropped": 4}]
                          for q in inst.questions},
            "no_reference": [],
        },
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    hydra = run_dir / ".hydra"
    hydra.mkdir(exist_ok=True)
    (hydra / "overrides.yaml").write_text("- +experiment=politics\n- design.cue=attributes\n", encoding="utf-8")
    return run_dir


@pytest.fixture
def instrument() -> Instrument:
    return make_instrument()


@pytest.fixture(scope="session")
def _run_dir_cache(tmp_path_factory) -> dict:
    return {"root": tmp_path_factory.mktemp("runs_cache")}


@pytest.fixture
def make_run_dir(_run_dir_cache):
    """``make_run_dir(tmp_path, **options)`` -> a fresh copy of a synthetic run directory.

    Each distinct set of options is built once per session and copied (tests may modify it).
    """
    import shutil

    def make(tmp_path: Path, **kw) -> Path:
        key = repr(sorted(kw.items()))
        if key not in _run_dir_cache:
            _run_dir_cache[key] = build_run_dir(_run_dir_cache["root"] / f"run{len(_run_dir_cache)}", **kw)
        return Path(shutil.copytree(_run_dir_cache[key], tmp_path / "run"))
    return make


@pytest.fixture(scope="session")
def rendered_svg(tmp_path_factory) -> Path:
    """One full SVG report shared by the read-only tests (rendering costs seconds)."""
    from simsurvey.report import render_report

    run = build_run_dir(tmp_path_factory.mktemp("svg") / "run")
    return render_report(run, instrument=make_instrument())


@pytest.fixture(scope="session")
def rendered_png(tmp_path_factory) -> Path:
    """One full PNG report with max_groups=2 and a title needing escaping."""
    from simsurvey.report import render_report
    from simsurvey.report.config import ReportConfig

    run = build_run_dir(tmp_path_factory.mktemp("png") / "run")
    cfg = ReportConfig(figure_format="png", max_groups=2, title="My <title>")
    return render_report(run, instrument=make_instrument(), cfg=cfg)
