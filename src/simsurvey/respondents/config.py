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
    transport: Literal["auto", "litellm", "http"] = Field(
        default="auto",
        description=(
            "litellm backend: how calls are sent. 'litellm' = litellm.acompletion (any provider); "
            "'http' = a direct aiohttp POST to an OpenAI-compatible api_base (~5x less client CPU per call); "
            "'auto' = http for 'openai/<model>' with api_base, litellm otherwise."
        ),
    )


class BatchConfig(BaseModel):
    """``runner.batch:`` — the provider batch-API executor (``runner.executor: batch``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_interval_s: float = Field(default=30.0, gt=0, description="Seconds between polls of a submitted batch.")
    max_requests: int = Field(default=50_000, gt=0, description="Requests per batch file at most (OpenAI: 50,000).")
    max_resubmits: int = Field(default=2, ge=0, description="How often a call that failed or expired in a batch is submitted again before its row keeps the error.")
    provider: Literal["auto", "litellm", "anthropic", "file"] = Field(
        default="auto",
        description=(
            "Which batch API: litellm = litellm's batch functions (OpenAI, Azure, Vertex, Bedrock, hosted vLLM...; "
            "the provider from the model string); anthropic = Anthropic's Message Batches; file = write the request "
            "JSONL for 'vllm run-batch' and collect its output file; auto = anthropic for anthropic/ models, else litellm."
        ),
    )
    custom_llm_provider: str | None = Field(default=None, description="litellm's provider name when it is not the model string's prefix (e.g. 'azure').")
    provider_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments of litellm's batch functions (api_version for Azure, vertex_project, Bedrock's S3 bucket...).",
    )
    max_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description="Bytes per batch file at most (OpenAI: 200 MB; Anthropic: 256 MB).")
    max_calls: int | None = Field(
        default=None, gt=0,
        description="Budget guard: refuse (before submitting anything) a round that would take the calls submitted from this run directory past this; null = no limit.",
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0,
        description="Budget guard: refuse a round whose estimated cost (prompt tokens and max_tokens at the batch price) takes this run directory past this; null = no limit.",
    )
    wait: bool = Field(
        default=True,
        description="Poll until the batches end and finish the run; false = submit, print how to collect, exit 0 (rerun on the run directory to collect).",
    )


class RayConfig(BaseModel):
    """``runner.ray:`` — the Ray executor (``runner.executor: ray``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(default=None, description="Ray cluster to connect to ('auto', 'ray://host:10001'); null = start a local Ray.")
    num_workers: int = Field(default=2, gt=0, description="Workers (actors) that call the model.")


class RunnerConfig(BaseModel):
    """``runner:`` — the executor, concurrency, rate limits, retries, timeouts, cache, checkpoints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: Literal["local", "batch", "ray"] = Field(
        default="local",
        description=(
            "Who makes the model's calls: local = the async runner in this process; batch = the provider's batch API "
            "(half price, answers within the completion window; resumable); ray = a Ray Data pipeline over a cluster. "
            "Every executor writes the same rows, cache entries and files. Baselines always run locally."
        ),
    )
    chunk_size: int = Field(
        default=20_000, gt=0,
        description="Trials handled at a time (a persona's trials are never split): memory is bounded by this and the concurrency, not by the design.",
    )
    batch: BatchConfig = Field(default_factory=BatchConfig, description="The batch executor's settings.")
    ray: RayConfig = Field(default_factory=RayConfig, description="The Ray executor's settings.")

    concurrency: int = Field(default=8, gt=0, description="Requests in flight at once.")
    rpm: float | None = Field(default=None, gt=0, description="Requests-per-minute limit (token bucket); null = unlimited.")
    tpm: float | None = Field(
        default=None, gt=0,
        description="Tokens-per-minute limit; tokens are estimated from the prompt length before a call and corrected from usage after; null = unlimited.",
    )
    max_retries: int = Field(default=6, ge=0, description="Retries of a transient failure (429, 5xx, timeout) before the row is kept with its error.")
    max_consecutive_failures: int = Field(
        default=20, ge=0,
        description=(
            "Circuit breaker: stop the run (exit 3, rows done kept) once this many rows in a row end in an error "
            "(after their retries; a server that refuses connections is not retried); 0 = never stop."
        ),
    )
    retry: Literal["errors", "invalid"] = Field(
        default="errors",
        description=(
            "What a run on an existing run dir asks again. errors: the rows whose call failed (always: a failed row "
            "is never final); invalid: also the rows whose answer was invalid (unparseable, refusal, no mass on the "
            "options), past their cache entries, whose answers are replaced."
        ),
    )
    backoff_base_s: float = Field(default=0.5, gt=0, description="Exponential backoff base: retry n waits uniform(0, min(backoff_max_s, base * 2**n)) (full jitter).")
    backoff_max_s: float = Field(default=30.0, gt=0, description="Cap of one backoff wait (a server's Retry-After is honoured even when longer).")
    timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout (a batched call gets it times its size); a timeout is retried like a 5xx.")
    cache: bool = Field(default=True, description="Use the persistent response cache (a rerun or resumed run never repeats a call).")
    cache_dir: str | None = Field(
        default=None,
        description="Directory of the response cache; null = $SIMSURVEY_CACHE_DIR, else the user cache dir (platformdirs).",
    )
    cache_busy_timeout_s: float = Field(
        default=60.0, gt=0,
        description="How long a cache write waits for another run holding the cache's write lock (on the cache's thread, never the event loop).",
    )
    flush_every: int = Field(default=200, gt=0, description="Checkpoint: write completed rows to a parquet part every this many rows...")
    flush_seconds: float = Field(default=5.0, gt=0, description="...or every this many seconds, whichever comes first.")
    drop_damaged_parts: bool = Field(
        default=False,
        description="Delete checkpoint parts found damaged (truncated, corrupt) so their rows are asked again; false = stop and name the part.",
    )
