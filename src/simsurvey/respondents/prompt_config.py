"""Config of prompt templates. Owned by respondents/prompts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PromptConfig(BaseModel):
    """``prompt:`` — prompt templates (persona first, question after it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
