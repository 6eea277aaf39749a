"""The resolved run config as pydantic models: validation and one-line errors.

Hydra composes the config in ``__main__``; everything below works on :class:`Config`, never on
Hydra objects. :func:`validate_config` turns pydantic's report into a single line naming the
first bad key (``population.n: must be > 0 (got 0)``) raised as :class:`ConfigError`.
``PROJECT_ROOT``, ``resolve_path`` (from :mod:`simsurvey.paths`) and ``format_validation_error``
(from :mod:`simsurvey.errors`) are re-exported here; the stages import them from those leaves,
so no stage package imports this module (which imports every stage's config).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simsurvey.analysis.config import AnalysisConfig
from simsurvey.errors import ConfigError, format_validation_error
from simsurvey.instruments.config import DesignConfig, SurveyConfig
from simsurvey.paths import PROJECT_ROOT, resolve_path  # noqa: F401 - re-exported
from simsurvey.population.config import PopulationConfig
from simsurvey.report.config import ReportConfig
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.secrets import looks_like_key

#: Upper bound of ``population.n``: sampling is in memory, and each persona is asked every
#: question in at least one condition (with ``model=litellm``, paid calls).
MAX_PERSONAS = 1_000_000

Stage = Literal["check", "sample", "administer", "analyze", "report"]
#: The pipeline's stages, in order. ``check`` (validate the inputs and show the personas' match
#: with the human sample, no model call) runs alone.
STAGES: tuple[Stage, ...] = ("sample", "administer", "analyze", "report")


class Config(BaseModel):
    """The whole resolved config of one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(ge=0, description="Master seed: personas, design, sampling and bootstrap derive from it.")
    stages: list[Stage] = Field(
        min_length=1,
        description="Stages to run: a subset of sample, administer, analyze, report; or [check] alone.",
    )
    baselines: list[Literal["uniform", "majority", "reference"]] = Field(
        default_factory=list,
        description="Baseline respondents administered beside the model and scored with the same metrics.",
    )
    population: PopulationConfig
    survey: SurveyConfig
    design: DesignConfig
    model: ModelConfig
    prompt: PromptConfig = PromptConfig()
    runner: RunnerConfig = RunnerConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    report: ReportConfig = ReportConfig()


def validate_config(data: dict[str, Any]) -> Config:
    """Validate a plain (resolved) config dict into :class:`Config`.

    Raises:
        ConfigError: one line naming the first bad key and what is wrong with it.
    """
    env = (data.get("model") or {}).get("api_key_env") if isinstance(data.get("model"), dict) else None
    if isinstance(env, str) and looks_like_key(env):
        # Never echoed: it is most likely the key itself.
        raise ConfigError("model.api_key_env: expects the NAME of an environment variable holding the key "
                          "(e.g. OPENAI_API_KEY), and the value given looks like a key (not shown); "
                          "export the key in a variable and give its name")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None
    if "check" in cfg.stages and len(cfg.stages) > 1:
        raise ConfigError("stages: check runs alone (stages=[check]); every run checks its inputs before any model call anyway")
    if cfg.population.n > MAX_PERSONAS:
        raise ConfigError(f"population.n: at most {MAX_PERSONAS:,} personas (got {cfg.population.n:,}); "
                          "a larger sample adds nothing a few thousand personas do not show, at the cost of one "
                          "model call per persona, question and condition")
    return cfg

