"""Config of respondents (backends), prompts and the runner. Owned by respondents/ and runner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    """``model:`` — the respondent backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(description="Backend name: local, litellm, baseline/uniform, ...")
    name: str = Field(description="Model id recorded on every row.")


class PromptConfig(BaseModel):
    """``prompt:`` — prompt templates."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RunnerConfig(BaseModel):
    """``runner:`` — concurrency, rate limits, retries, cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)
