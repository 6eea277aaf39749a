"""treatment_effects.parquet: a scripted respondent with a known treatment effect, through the real
design, runner and analyze(); the human effect from a reference frame that records the arm."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simsurvey.analysis import AnalysisConfig, analyze
from simsurvey.analysis.treatment import TREATMENT_COLUMNS, treatment_effects
from simsurvey.instruments.config import DesignConfig
from simsurvey.instruments.design import build_design
from simsurvey.instruments.load import parse_instrument
from simsurvey.io import kind_schema_version
from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

#: P(approve) under each arm's wording: the scripted respondent's known treatment effect is -0.25.
P_APPROVE = {"help": 0.55, "penalty": 0.30}


def _instrument():
    return parse_instrument({
        "id": "t", "title": "t",
        "questions": [
            {"id": "mandate", "kind": "single_choice", "text": "Base wording?",
             "options": [{"code": "approve", "label": "Approve"}, {"code": "disapprove", "label": "Disapprove"},
                         {"code": "dk", "label": "Don't know", "non_substantive": True}]},
            {"id": "trust", "kind": "ordinal", "text": "Trust?",
             "options": [{"code": str(i), "label": f"level {i}"} for i in range(1, 5)]},
        ],
        "experiments": [{"id": "order", "arms": [
            {"id": "help_second", "questions": {"mandate": {"text": "Penalty first, then help?"}}},
            {"id": "penalty_second", "questions": {"mandate": {"text": "Help first, then penalty?"},
                                                   "trust": {"vignette": "Times are hard."}}},
        ]}],
    }, name="t.yaml")


class Scripted:
    """Approves with a probability set by the wording it is shown (seeded per request); answers
    the trust scale one point lower after the 'Times are hard.' vignette."""

    name = "scripted"
    deterministic = True
    batch_size = 1

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        out = []
        for r in requests:
            text = r.messages[-1]["content"]
            self.seen.append(text)
            u = int(hashlib.sha256(f"{r.seed}".encode()).hexdigest()[:8], 16) / 2**32
            order = r.context["option_order"]
            if r.context["question_id"] == "mandate":
                p = P_APPROVE["penalty" if "then penalty" in text else "help"]
                code = "approve" if u < p else "disapprove"
            else:
                level = 1 + int(u * 3) + (0 if "Times are hard." in text else 1)
                code = str(min(level, 4))
            out.append(Result(text=r.labels[order.index(code)]))
        return out


def _human(rng: np.random.Generator, n: int) -> pd.DataFrame:
    arm = np.repeat(["help_second", "penalty_second"], n)
    p = np.where(arm == "help_second", 0.49, 0.35)
    ans = np.where(rng.random(2 * n) < p, "approve", "disapprove")
    rows = pd.DataFrame({"source": "h", "respondent_id": [str(i) for i in range(2 * n)], "weight": 1.0,
                         "question_id": "mandate", "answer_code": ans, "experiment": "order", "arm": arm})
    trust = pd.DataFrame({"source": "h", "respondent_id": [str(i) for i in range(2 * n)], "weight": 1.0,
                          "question_id": "trust", "answer_code": rng.choice(["1", "2", "3", "4"], 2 * n),
                          "experiment": None, "arm": None})
    return pd.concat([rows, trust], ignore_index=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    inst = _instrument()
    n = 400
    personas = pd.DataFrame({"persona_id": np.arange(n), "weight": 1.0, "sex": "female",
                             "cue": [f"Person {i}." for i in range(n)]})
    trials = build_design(personas, inst, DesignConfig(orders=["as_is", "reversed"], labels=["letters"],
                                                        no_persona=False), seed=3)
    backend = Scripted()
    res = administer(trials, personas, inst, model=ModelConfig(backend="local", name="scripted", elicitation="sample"),
                     prompt=PromptConfig(), runner=RunnerConfig(cache=False), run_dir=tmp_path_factory.mktemp("r"),
                     seed=3, progress=False, backend=backend)
    human = _human(np.random.default_rng(4), 750)
    out = analyze(res.frame, human, personas, inst, AnalysisConfig(group_vars=[], bootstrap=100, null_draws=100,
                                                                    n_permutations=200), seed=5)
    return inst, res.frame, human, out, backend


def test_every_row_carries_its_arm_and_its_wording_reached_the_prompt(run) -> None:
    _inst, responses, _human, _out, backend = run
    mandate = responses[responses.question_id == "mandate"]
    assert set(mandate["arm"]) == {"help_second", "penalty_second"}
    assert all(c.endswith(f"|arm:{a}") for c, a in zip(mandate.condition_id, mandate.arm))
    assert sum("then penalty?" in t for t in backend.seen) == (mandate.arm == "penalty_second").sum()
    assert sum("Times are hard." in t for t in backend.seen) == \
        ((responses.question_id == "trust") & (responses.arm == "penalty_second")).sum()


def test_the_known_effect_is_recovered_within_its_ci(run) -> None:
    _inst, responses, human, out, _ = run
    te = out.treatment_effects
    assert list(te.columns) == TREATMENT_COLUMNS
    row = te[(te.question_id == "mandate") & (te.statistic == "share") & (te.option == "approve")].iloc[0]
    assert (row.experiment, row.arm, row.control) == ("order", "penalty_second", "help_second")
    assert row.silicon_low <= -0.25 <= row.silicon_high and row.silicon_p < 0.001
    # Independent check of the point, SE and p: Welch's t on the 0/1 approve indicator per persona.
    m = responses[(responses.question_id == "mandate") & responses.valid]
    a = (m[m.arm == "penalty_second"].answer_code == "approve").astype(float)
    b = (m[m.arm == "help_second"].answer_code == "approve").astype(float)
    assert row.silicon == pytest.approx(a.mean() - b.mean())
    assert row.silicon_se == pytest.approx(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    # The human effect from the reference's arms, and the agreement columns.
    h = human[human.question_id == "mandate"]
    ha = (h[h.arm == "penalty_second"].answer_code == "approve").mean()
    hb = (h[h.arm == "help_second"].answer_code == "approve").mean()
    assert row.human == pytest.approx(ha - hb)
    assert row["diff"] == pytest.approx(row.silicon - row.human) and row.sign_agree == 1.0
    assert row.ratio == pytest.approx(row.silicon / row.human) and row.ratio_low < row.ratio < row.ratio_high
    assert row.diff_p == pytest.approx(2 * stats.norm.sf(abs(row["diff"]) / np.hypot(row.silicon_se, row.human_se)))
    assert (row.n_silicon_arm, row.n_silicon_control, row.n_human_arm, row.n_human_control) == (200, 200, 750, 750)
    tv = te[(te.question_id == "mandate") & (te.statistic == "tv")].iloc[0]
    assert tv.silicon == pytest.approx(abs(row.silicon)) and tv.silicon_p < 0.01  # K = 2: TV = |Δ share|


def test_a_vignette_moves_the_mean_and_no_human_arm_is_flagged(run) -> None:
    _inst, _r, _h, out, _ = run
    te = out.treatment_effects
    mean = te[(te.question_id == "trust") & (te.statistic == "mean")].iloc[0]
    # Scripted: level = 1 + floor(3u) with the vignette, one more (capped at 4) without it.
    u_levels = np.array([1, 2, 3])
    truth = np.mean(u_levels) - np.mean(np.minimum(u_levels + 1, 4))
    assert mean.silicon_low <= truth <= mean.silicon_high
    assert np.isnan(mean.human) and "no human arm data" in mean.flag
    corr = te[te.statistic == "effect_corr"].iloc[0]
    assert corr.n_silicon_arm == 1 and corr.flag == "low_information: 1 effects" and np.isnan(corr.silicon)


def test_metrics_compare_each_arm_with_the_same_arm_of_the_humans(run) -> None:
    _inst, _r, _h, out, _ = run
    m = out.metrics
    js = m[(m.metric == "js_divergence") & (m.question_id == "mandate")]
    assert set(zip(js.group_var, js.group_value)) == {("all", "all"), ("arm", "help_second"),
                                                      ("arm", "penalty_second")}
    arm = js[js.group_var == "arm"].set_index("group_value")
    assert arm.loc["penalty_second", "n_human"] == 750 and arm.loc["help_second", "n_silicon"] == 200
    # No arm rows for the question outside any experiment.
    assert set(m[m.question_id == "trust"].group_var) == {"all"}


def test_order_effects_pair_conditions_within_an_arm_only(run) -> None:
    oe = run[3].order_effects
    pairs = oe[(oe.level == "pair") & (oe.question_id == "mandate")]
    assert len(pairs) == 2
    assert all(a.rsplit("|arm:", 1)[1] == b.rsplit("|arm:", 1)[1] for a, b in zip(pairs.condition_a, pairs.condition_b))


def test_no_experiments_no_rows_and_a_registered_schema() -> None:
    from simsurvey.analysis.frames import Rows

    empty = Rows(q=np.zeros(0, np.int64), pos=np.zeros(0, np.int64), w=np.zeros(0), unit=np.zeros(0, np.int64),
                 groups={}, valid=np.zeros(0, bool), refusal=np.zeros(0, bool))
    inst = _instrument().model_copy(update={"experiments": ()})
    te = treatment_effects(empty, empty, inst, use_probs={}, ci=0.95, n_permutations=0, bootstrap=0, seed=0)
    assert te.empty and list(te.columns) == TREATMENT_COLUMNS
    assert kind_schema_version("treatment_effects") == "1"


def test_a_sign_read_from_an_effect_indistinguishable_from_zero_says_so() -> None:
    """'same sign' of a silicon effect of -0.000 [-0.012, 0.012] is the point estimates' only."""
    from simsurvey.analysis.treatment import sign_phrase

    weak = sign_phrase({"sign_agree": 1.0, "silicon_p": 0.97, "human_p": 1e-6})
    assert weak.startswith("same sign of the point estimates only") and "silicon effect (p=0.970)" in weak
    assert "human" not in weak
    assert sign_phrase({"sign_agree": 0.0, "silicon_p": 0.01, "human_p": 0.001}) == "opposite sign"
    assert sign_phrase({"sign_agree": float("nan"), "silicon_p": 0.5, "human_p": 0.5}) == "sign undefined"
