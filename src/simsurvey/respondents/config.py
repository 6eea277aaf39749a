"""Config of respondents (backends) and the runner. Owned by respondents/ and runner/."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

BackendName = Literal["local", "litellm", "baseline/uniform", "baseline/majority", "baseline/reference"]


class ModelConfig(BaseModel):
    """``model:`` — the respondent backend and how answers are elicited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendName = Field(description="Which backend answers.")
    name: str = Field(description="Model id recorded on every row; for litellm the model string (e.g. 'openai/gpt-4o-mini').")
    elicitation: Literal["logprobs", "sample", "both"] = Field(
        default="logprobs",
        description="logprobs: distribution over the displayed labels from next-token probabilities; sample: generated text, parsed; both.",
    )
    temperature: float = Field(default=1.0, ge=0, description="Sampling temperature for sampled answers.")
    max_tokens: int = Field(default=16, gt=0, description="Generation cap for sampled answers.")
    top_logprobs: int = Field(default=20, ge=1, le=20, description="litellm: top_logprobs asked for (20: small models rank option letters low).")
    api_base: str | None = Field(default=None, description="litellm: base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama...).")
    api_key_env: str | None = Field(default=None, description="litellm: NAME of the environment variable holding the API key (never the key itself).")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments passed to the backend (litellm completion kwargs).")


class RunnerConfig(BaseModel):
    """``runner:`` — concurrency, rate limits, retries, timeouts, cache, checkpoints."""

    model_config = ConfigDict(extra="forbid", frozen=True)
