"""What runs on a Ray worker: simsurvey's own backends answering a block of request rows.

:func:`answer_block` is the function Ray Data maps over the request blocks (``map_batches``,
one block per call). It builds the backend from the driver's ``model:`` config through the same
registry (:func:`~simsurvey.respondents.registry.make_backend`) and calls it with the runner's own
retry loop (:meth:`simsurvey.runner._administer._Run.call`: a retryable error is retried with
backoff and full jitter, ``Retry-After`` honoured, per-request timeouts; an error that survives is
an error :class:`~simsurvey.respondents.base.Result`, so the row keeps it), one call per call
group (the requests the local runner would send together).

Processors:

* ``http`` — :class:`~simsurvey.respondents.litellm_backend.LiteLLMBackend` (its HTTP or litellm
  transport, so logprobs, labels and errors are read exactly as in the local runner), at most
  ``concurrency_per_worker`` calls in flight per worker.
* ``actor`` — the embedded model (:class:`~simsurvey.respondents.local.LocalBackend`), one call
  group at a time, ``num_cpus_per_worker`` threads. The loaded model is kept in the worker
  process (:data:`_BACKENDS`) and reused by every later block and pass on that worker: Ray keeps
  its task workers alive, so a pass costs no model load after the first (an actor pool would be
  started, and the model loaded, again for every Dataset).

Rate limits (``runner.rpm`` / ``tpm``) are split evenly over the workers.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from simsurvey.respondents.base import Backend, FatalBackendError, Request, Result
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.runner._administer import _Run
from simsurvey.runner._limits import TokenBucket
from simsurvey.runner.ray_executor._records import (
    RESULT_COLUMNS,
    call_groups,
    request_from_row,
    result_row,
)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to answer requests as the driver's backend would.

    Attributes:
        processor: ``http`` or ``actor``.
        model: The ``model:`` config as a dict (``ModelConfig.model_dump``).
        runner: The ``runner:`` config as a dict (retries, backoff, timeouts, rate limits).
        seed: The backend's seed.
        concurrency: Calls in flight per worker (``http``); the embedded model answers one call
            group at a time.
        threads: Torch worker threads of the embedded model (``actor``).
        workers: How many workers share the rate limits.
        api_key: The API key read on the driver from ``model.api_key_env`` (workers may not have
            the variable); never shown (``repr`` hides it).
    """

    processor: str
    model: dict[str, Any]
    runner: dict[str, Any]
    seed: int
    concurrency: int = 8
    threads: int = 1
    workers: int = 1
    api_key: str | None = field(default=None, repr=False)


class _Caller:
    """The state :meth:`_Run.call` reads, on a worker: the runner's retry loop, reused as is."""

    call = _Run.call

    def __init__(self, backend: Backend, runner: RunnerConfig, workers: int, seed: int) -> None:
        self.backend, self.runner = backend, runner
        self.rpm = TokenBucket(runner.rpm / workers) if runner.rpm else None
        self.tpm = TokenBucket(runner.tpm / workers) if runner.tpm else None
        self.c: dict[str, int] = {"calls": 0, "retries": 0}
        self.stopping = False
        self.rng = random.Random(seed)  # backoff jitter only


#: Embedded-model backends loaded in this worker process, by spec (kept for later blocks).
_BACKENDS: dict[tuple[str, ...], Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def _model_config(spec: WorkerSpec) -> ModelConfig:
    cfg = ModelConfig(**spec.model)
    if spec.processor == "actor" and "threads" not in cfg.params:
        # One worker per num_cpus_per_worker CPUs: its torch passes use those CPUs, not the node's.
        cfg = cfg.model_copy(update={"params": {**cfg.params, "threads": max(1, spec.threads)}})
    return cfg


def build_backend(spec: WorkerSpec) -> Backend:
    """The worker's backend (the embedded model: cached in the process and reused)."""
    from simsurvey.respondents.registry import make_backend

    cfg = _model_config(spec)
    if spec.api_key and cfg.api_key_env and not os.environ.get(cfg.api_key_env):
        os.environ[cfg.api_key_env] = spec.api_key  # this worker process only
    if spec.processor != "actor":
        return make_backend(cfg, seed=spec.seed)  # cheap to build: one per block (its session, its loop)
    key = (cfg.model_dump_json(), str(spec.seed))
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = _BACKENDS[key] = make_backend(cfg, seed=spec.seed)
        return backend


async def answer_groups(spec: WorkerSpec, groups: list[list[Request]], backend: Backend | None = None
                        ) -> tuple[list[list[Result]], list[tuple[int, int]], dict[str, Any], str]:
    """Answer call groups with the runner's retry loop.

    Returns:
        ``(results per group, (calls, retries) per group, backend identity, fatal)``: ``fatal``
        is the one-line message of a failure that stops the run (bad credentials, unknown
        model), with the groups not answered left as error results; empty otherwise.
    """
    backend = backend if backend is not None else build_backend(spec)
    runner = RunnerConfig(**spec.runner)
    identity = dict(getattr(backend, "identity", None) or {})
    warm_up = getattr(backend, "warm_up", None)
    if warm_up is not None:
        await asyncio.to_thread(warm_up)
    limit = asyncio.Semaphore(max(1, spec.concurrency if spec.processor != "actor" else 1))
    results: list[list[Result] | None] = [None] * len(groups)
    counts: list[tuple[int, int]] = [(0, 0)] * len(groups)
    fatal: list[str] = []

    async def one(i: int, reqs: list[Request]) -> None:
        async with limit:
            caller = _Caller(backend, runner, spec.workers, spec.seed + i)
            if fatal:
                results[i] = [Result(error="not asked: the run is stopping") for _ in reqs]
                return
            try:
                results[i] = await caller.call(reqs)
            except FatalBackendError as err:
                fatal.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
                results[i] = [Result(error=fatal[-1]) for _ in reqs]
            counts[i] = (caller.c["calls"], caller.c["retries"])

    try:
        await asyncio.gather(*(one(i, g) for i, g in enumerate(groups)))
    finally:
        aclose = getattr(backend, "aclose", None)
        if aclose is not None and spec.processor != "actor":
            await aclose()
    return results, counts, identity, fatal[0] if fatal else ""  # type: ignore[return-value]


def answer_block(batch: pd.DataFrame, spec: WorkerSpec) -> pd.DataFrame:
    """Ray Data's map function: a block of request rows -> one result row per request, in order."""
    rows = batch.to_dict("records")
    groups = list(call_groups(rows))
    reqs = [[request_from_row(r) for r in g] for g in groups]
    results, counts, identity, fatal = asyncio.run(answer_groups(spec, reqs))
    out: list[dict[str, Any]] = []
    for g, res, (calls, retries) in zip(groups, results, counts):
        for j, (row, r) in enumerate(zip(g, res)):
            first = j == 0
            out.append(result_row(row["key"], r, calls=calls if first else 0, retries=retries if first else 0,
                                  identity=identity, fatal=fatal))
    return pd.DataFrame(out, columns=list(RESULT_COLUMNS))
