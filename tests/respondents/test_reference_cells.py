"""The indexed reference baseline gives the answers of the row-by-row algorithm it replaced.

``tests/support/reference_v0.py`` is a frozen copy of the earlier ``ReferenceBackend`` (commit
a584223). Both run through ``administer()`` on the same trials of real built-in studies, and the
response rows must be identical: the same cells, the same probabilities to the last bit, the same
seeded draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from reference_v0 import ReferenceBackendV0

from simsurvey.instruments import build_design, load_instrument
from simsurvey.instruments.config import DesignConfig, SurveyConfig
from simsurvey.paths import resolve_path
from simsurvey.population import sample_personas
from simsurvey.population.config import PopulationConfig
from simsurvey.population.spec import load_population_spec
from simsurvey.reference.load import load_reference
from simsurvey.respondents._reference_cells import QuestionCells, ReferenceColumns
from simsurvey.respondents.baselines import ReferenceBackend, _choice
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

ROOT = Path(__file__).resolve().parents[2]
#: Columns that are not answers (wall time) and are left out of the comparison.
TIMING = ["latency_s"]


def _study(survey: str, n: int, design: dict, seed: int = 3):
    scfg = SurveyConfig(**{k: v for k, v in yaml.safe_load((ROOT / f"conf/survey/{survey}.yaml").read_text()).items()
                           if k in SurveyConfig.model_fields})
    inst = load_instrument(resolve_path(str(ROOT / scfg.instrument), key="survey.instrument"))
    variables = load_population_spec(resolve_path(str(ROOT / "personas/us_adults.yaml"), key="population.spec")).variables
    reference = load_reference(inst, scfg, variables)
    pop = yaml.safe_load((ROOT / "conf/population/us_adults.yaml").read_text())
    personas = sample_personas(PopulationConfig(**{**pop, "n": n}), seed=seed, cue_style="attributes").frame
    dcfg = DesignConfig(**{**yaml.safe_load((ROOT / "conf/design/default.yaml").read_text()), **design})
    trials = build_design(personas, inst, dcfg, seed=seed + 1)
    return inst, variables, reference, personas, trials


def _rows(backend, study, model: ModelConfig, tmp: Path) -> pd.DataFrame:
    inst, variables, reference, personas, trials = study
    res = administer(trials, personas, inst, model=model, prompt=PromptConfig(), runner=RunnerConfig(cache=False),
                     run_dir=tmp, seed=11, reference=reference, progress=False, backend=backend, variables=variables)
    keys = ["persona_id", "question_id", "condition_id", "replicate"]
    return res.frame.drop(columns=TIMING).sort_values(keys, na_position="first").reset_index(drop=True)


def _same_rows(study, model: ModelConfig, tmp_path: Path) -> pd.DataFrame:
    _, variables, reference, _, _ = study
    new = _rows(ReferenceBackend(model, reference=reference, seed=5, variables=variables), study, model, tmp_path / "new")
    old = _rows(ReferenceBackendV0(model, reference=reference, seed=5, variables=variables), study, model, tmp_path / "old")
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    return new


@pytest.mark.slow
@pytest.mark.parametrize("min_cell", [5, 60])
def test_politics_rows_are_those_of_the_row_by_row_algorithm(tmp_path: Path, min_cell: int) -> None:
    # CCES 2016 / ANES 1996, the default design (orders x labels, no-persona control), "both":
    # probabilities over the displayed options and a seeded draw. min_cell=60 backs off further.
    study = _study("politics", 30, {})
    model = ModelConfig(backend="baseline/reference", name="baseline/reference", elicitation="both",
                        params={"min_cell": min_cell})
    rows = _same_rows(study, model, tmp_path)
    assert len(rows) == len(study[4]) and rows["error"].isna().all()
    # The comparison covers real back-off: several levels of the ladder are used.
    assert rows["probs"].notna().all() and rows["answer_code"].nunique() > 5


@pytest.mark.slow
def test_questionnaire_battery_checklist_and_thermometer_rows_are_unchanged(tmp_path: Path) -> None:
    # A sequential questionnaire: the Big Five battery (one respondent per persona and battery),
    # the GSS checklist (multi_select sets) and the ANES thermometer (numeric values).
    study = _study("questionnaire", 12, {"context": "sequential", "item_order": "randomized",
                                         "no_persona_replicates": 2})
    model = ModelConfig(backend="baseline/reference", name="baseline/reference", elicitation="sample")
    rows = _same_rows(study, model, tmp_path)
    assert rows["error"].isna().all()
    kinds = {q.id: q.kind for q in study[0].questions}
    asked = set(rows["question_id"])
    assert {"multi_select", "numeric"} <= {kinds.get(q) for q in asked}
    assert rows["answer_value"].notna().any() and rows["answer_code"].str.contains("|", regex=False).any()


def test_choice_is_numpys_choice_draw_for_draw() -> None:
    rng = np.random.default_rng(0)
    for s in range(3000):
        p = rng.dirichlet(np.ones(int(rng.integers(1, 12))))
        p[rng.random(len(p)) < 0.2] = 0.0
        if p.sum() == 0:
            p[0] = 1.0
        p = p / p.sum()
        assert _choice(np.random.default_rng([7, s]), p) == int(np.random.default_rng([7, s]).choice(len(p), p=p))


def _frame(spec):
    return pd.DataFrame([{"source": "t", "respondent_id": str(i), "weight": w, "question_id": "q", "answer_code": a,
                          "_rix": i, **d} for i, (a, w, d) in enumerate(spec)])


def test_cells_and_totals_match_a_filter_of_the_rows() -> None:
    # Hand-made rows: nulls never match, a code shown as text matches its string form, totals are
    # pandas' groupby sums of the cell's own rows (bit for bit, row order kept).
    rng = np.random.default_rng(1)
    spec = [(str(rng.choice(["a", "b", "c"])), float(rng.uniform(0.1, 3)),
             {"sex": rng.choice(["f", "m", None]), "age": rng.choice([1, 2, 3])}) for _ in range(400)]
    df = _frame(spec)
    q = QuestionCells(ReferenceColumns(df, ["sex", "age", "educ"]), np.arange(len(df)))
    assert set(q.var_codes) == {"sex", "age"}  # educ is not a column: never matched
    for persona in ({"sex": "f", "age": 2}, {"sex": "m", "age": "3"}, {"sex": None, "age": 1}, {"sex": "x", "age": 1}):
        level, cell, n = q.find(persona, [("sex", "age"), ("age",), ()], min_cell=1)
        mask = np.ones(len(df), dtype=bool)
        for v in level.match:
            mask &= (df[v].astype("string") == str(persona[v])).fillna(False).to_numpy(dtype=bool)
        expected = df[mask].groupby("answer_code")["weight"].sum()
        at, totals = q.totals(level, cell)
        assert n == mask.sum() and list(q.codes[at]) == list(expected.index)
        assert totals.tobytes() == expected.to_numpy().tobytes()
        assert sorted(level.rows(cell)) == list(np.flatnonzero(mask))
    # An unknown code ("x") on sex backs off to age alone; a null sex is not matched on.
    assert q.find({"sex": "x", "age": 1}, [("sex", "age"), ("age",), ()], 1)[0].match == ("age",)
    assert q.find({"sex": None, "age": 1}, [("sex", "age"), ()], 1)[0].match == ("age",)


def _synthetic(rng: np.random.Generator, n: int = 300):
    """A small reference on the US variables with small cells, nulls, sets, values and a battery."""
    from simsurvey.instruments.models import Option, Question
    from simsurvey.reference.builtin import us_variables

    variables = us_variables()
    opts = tuple(Option(code=c, label=f"option {c}", non_substantive=c == "dk") for c in ("a", "b", "c", "d", "dk"))
    questions = [
        Question(id="single", text="Single?", kind="single_choice", options=opts),
        Question(id="multi", text="Which?", kind="multi_select", options=opts[:4]),
        *(Question(id=f"item{j}", text=f"Item {j}", kind="ordinal", options=opts[:4], battery="bat", stem="How true?")
          for j in range(2)),
    ]
    codes = {v: list(variables.codes(v)) for v in variables.names}
    rows = []
    for i in range(n):
        demo = {v: (None if rng.random() < 0.1 else str(rng.choice(codes[v][:3]))) for v in codes}
        w = float(rng.uniform(0.2, 3.0))
        for q in questions:
            if q.id == "multi":
                picked = [c for c in "abcd" if rng.random() < 0.4] or ["a"]
                answer = "|".join(picked)
            else:
                answer = str(rng.choice(["a", "b", "c", "d", "dk"] if q.id == "single" else ["a", "b", "c", "d"]))
            rows.append({"source": "s", "respondent_id": str(i), "weight": w, "question_id": q.id,
                         "answer_code": answer, **demo})
    return variables, questions, pd.DataFrame(rows), codes


@pytest.mark.parametrize("min_cell", [2, 5])
def test_synthetic_answers_are_those_of_the_row_by_row_algorithm(min_cell: int) -> None:
    # Many personas over small cells (every back-off level is used, cells of exactly min_cell),
    # random displayed subsets of the options (a hidden answer is missing mass), all elicitations.
    import asyncio

    from simsurvey.respondents.prompts import render_request

    rng = np.random.default_rng(min_cell)
    variables, questions, reference, codes = _synthetic(rng)
    reqs = []
    for s in range(300):
        q = questions[int(rng.integers(len(questions)))]
        shown = [c for c in q.codes if rng.random() < 0.8] or list(q.codes)
        order = list(rng.permutation(shown))
        persona = None if rng.random() < 0.05 else {
            v: (None if rng.random() < 0.05 else str(rng.choice(codes[v][:4]))) for v in codes}
        elicitation = str(rng.choice(["logprobs", "sample", "both"]))
        model = ModelConfig(backend="baseline/reference", name="r", elicitation=elicitation)
        reqs.append(render_request(cue="x" if persona else None, question=q, option_order=order, label_style="letters",
                                   prompt=PromptConfig(), model=model, seed=s, prefix_key=f"persona-{s % 97}",
                                   context={"persona": persona}))
    model = ModelConfig(backend="baseline/reference", name="r", elicitation="both", params={"min_cell": min_cell})
    new = asyncio.run(ReferenceBackend(model, reference=reference, seed=9, variables=variables).generate(reqs))
    old = asyncio.run(ReferenceBackendV0(model, reference=reference, seed=9, variables=variables).generate(reqs))
    assert new == old
    levels = {tuple(r.extra.get("match_vars", ())) for r in new}
    assert len(levels) >= 3 and any(r.extra.get("cell_n") == min_cell for r in new)
