"""The resolved run config as pydantic models: validation and one-line errors.

Hydra composes the config in ``__main__``; everything below works on :class:`Config`, never on
Hydra objects. :func:`validate_config` turns pydantic's report into a single line naming the
first bad key (``population.n: must be > 0 (got 0)``) raised as :class:`ConfigError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simsurvey.analysis.config import AnalysisConfig
from simsurvey.errors import ConfigError, UserError
from simsurvey.instruments.config import DesignConfig, SurveyConfig
from simsurvey.population.config import PopulationConfig
from simsurvey.report.config import ReportConfig
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.secrets import is_secret_key, looks_like_key

#: The project root (where conf/, personas/ and surveys/ live).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Upper bound of ``population.n``: sampling is in memory, and each persona is asked every
#: question in at least one condition (with ``model=litellm``, paid calls).
MAX_PERSONAS = 1_000_000

Stage = Literal["sample", "administer", "analyze", "report"]
STAGES: tuple[Stage, ...] = ("sample", "administer", "analyze", "report")


class Config(BaseModel):
    """The whole resolved config of one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(ge=0, description="Master seed: personas, design, sampling and bootstrap derive from it.")
    stages: list[Stage] = Field(min_length=1, description="Stages to run, a subset of sample, administer, analyze, report.")
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


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<config>"
    msg = first["msg"]
    secret = any(is_secret_key(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing required key"
    elif "input" in first and not isinstance(first["input"], (dict, list)) and not secret:
        msg = f"{msg} (got {first['input']!r})"
    more = len(err.errors()) - 1
    return f"{key}: {msg}" + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def format_validation_error(err: ValidationError, *, prefix: str = "") -> str:
    """One line for a pydantic error: ``<prefix><dotted key>: <what is wrong>``."""
    return prefix + _one_line(err)


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
    if cfg.population.n > MAX_PERSONAS:
        raise ConfigError(f"population.n: at most {MAX_PERSONAS:,} personas (got {cfg.population.n:,}); "
                          "a larger sample adds nothing a few thousand personas do not show, at the cost of one "
                          "model call per persona, question and condition")
    return cfg


def resolve_path(value: str | os.PathLike, *, key: str, must_exist: bool = True) -> Path:
    """Resolve a config path: absolute, else relative to the cwd, else to the project root.

    Raises:
        UserError: ``<key>: file not found: <value>`` when ``must_exist`` and it does not.
    """
    p = Path(value).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, PROJECT_ROOT / p]
    for c in candidates:
        if c.exists():
            return c.resolve()
    if must_exist:
        raise UserError(f"{key}: file not found: {value}")
    return candidates[-1]
