"""The built-in health-care experiment: its config composes and validates, its instrument and
human reference agree (two arms, the Pew wording, the arm recorded for every respondent)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from simsurvey.config import PROJECT_ROOT, validate_config
from simsurvey.instruments import load_instrument
from simsurvey.instruments.config import SurveyConfig
from simsurvey.reference import load_reference


def test_the_experiment_config_composes_and_validates() -> None:
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=["+experiment=healthcare"])
    c = validate_config(OmegaConf.to_container(cfg, resolve=True))
    assert c.survey.instrument == "surveys/healthcare.yaml" and c.survey.reference == ["pew2012_healthcare"]
    assert c.model.backend == "local" and c.population.n == 200
    assert c.design.labels == ["letters"] and c.design.orders == ["as_is", "reversed"]


def test_the_instrument_words_each_arm_as_pew_did() -> None:
    inst = load_instrument(PROJECT_ROOT / "surveys" / "healthcare.yaml")
    exp = inst.experiment_of("mandate")
    assert exp.id == "mandate_order" and exp.arm_ids == ("cannot_afford_second", "penalty_second")
    assert exp.control_arm == "cannot_afford_second"
    q = inst.question("mandate")
    help_second, penalty_second = (exp.apply(q, a).text for a in exp.arm_ids)
    # The release's wording, as quoted by openintro; the other arm swaps the two statements.
    assert help_second == q.text
    assert help_second.index("will pay a penalty") < help_second.index("financial help")
    assert penalty_second.index("financial help") < penalty_second.index("will pay a penalty")
    assert q.substantive_codes == ("approve", "disapprove") and q.codes[-1] == "dont_know"
    ref = load_reference(inst, SurveyConfig(instrument="surveys/healthcare.yaml", reference=["pew2012_healthcare"]))
    assert len(ref) == 1503 and ref["arm"].notna().all()
