"""Executors: who makes the model's calls. One row pipeline, several ways to get the answers.

Every executor shares the local runner's row pipeline (:class:`simsurvey.runner._administer._Run`):
a trial is rendered into a request, served from the response cache or the backend, parsed into a
response row and checkpointed. An executor decides only where the answers come from:

* ``local`` — the async runner in this process calls the backend (:func:`drive_local`);
* ``batch`` — the provider's batch API (:mod:`simsurvey.runner.batch`);
* ``ray`` — a Ray Data pipeline over a cluster (:mod:`simsurvey.runner.ray_executor`).

The seam between them:

* :func:`run_pass` runs the ordinary runner loop (concurrency, limits, retries, circuit breaker,
  parts) over some pending trials with a given backend. A *pass backend* (:class:`PassBackend`)
  sends nothing: it answers a request from what the executor already has, or returns
  :data:`~simsurvey.runner._administer.DEFERRED`, for which no row is written; the deferred trials
  (and conversations, at their deferred turn) come back as a :class:`Pending` for a later pass.
* An executor that received answers elsewhere writes each to the response cache the moment it
  arrives (nothing paid is ever lost) and hands it to the runner through ``state.preset`` (by cache
  key) or, when it keeps them in the cache only, ``state.fresh`` (the keys): the runner then counts
  them as this run's calls (``cached=False``, their cost in the row), not as cached rows.
* :meth:`ExecutorContext.chunks` yields the work still without a row, a persona chunk at a time, so
  an executor never needs the whole design in memory; each call starts over from what is written.

A trial an executor gives up on still gets a row: answer it with an error ``Result`` from a pass
backend (a row is never dropped).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import itertools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simsurvey.errors import UserError
from simsurvey.respondents.base import Backend, Request, Result
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.runner import _conversation
from simsurvey.runner._conversation import DEFERRED, Conversation

if TYPE_CHECKING:
    from simsurvey.runner._administer import _Run


@dataclass
class Pending:
    """Work still to do: ordinary trials (dicts with the trial columns) and conversations."""

    singles: list[dict[str, Any]] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.singles) + sum(c.pending for c in self.conversations)

    def __bool__(self) -> bool:
        return bool(self.singles) or bool(self.conversations)


class PassBackend:
    """A backend for a pass that sends nothing: ``answer(key, request)`` gives a result or None
    (deferred). Not rate limited and not counted as calls (``sends = False``).

    Args:
        state: The run (for the requests' cache keys and the model's name).
        answer: What to give a request: a :class:`Result` (an answer already received, or an
            error that ends the row), or None to defer it. Default: defer every request.
        batch_size: Requests per ``generate`` call (large: nothing waits on a server).
    """

    sends = False
    deterministic = True

    def __init__(self, state: _Run, answer: Callable[[str, Request], Result | None] | None = None,
                 *, batch_size: int = 256) -> None:
        self.state = state
        self.name = state.model.name
        self.batch_size = batch_size
        self._answer = answer

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        if self._answer is None:
            return [DEFERRED] * len(requests)
        out = []
        for r in requests:
            res = self._answer(self.state.key(r), r)
            out.append(DEFERRED if res is None else res)
        return out


def _batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive trials of the same persona, up to ``size`` per batch."""
    batch: list[dict[str, Any]] = []
    for t in records:
        if batch and (len(batch) >= size or batch[-1]["persona_id"] != t["persona_id"] or t["persona_id"] is None):
            yield batch
            batch = []
        batch.append(t)
    if batch:
        yield batch


async def run_pass(state: _Run, pending: Pending, backend: Backend) -> Pending:
    """One pass of the runner loop over ``pending`` with ``backend``; returns what it deferred.

    Rows of the answered trials are buffered and written as parts as in every run (the ticker of
    :func:`~simsurvey.runner._administer.administer_async` flushes them). At most
    ``runner.concurrency`` batches or conversations are in flight.
    """
    state.backend = backend
    state.deferred_singles, state.deferred_conversations = [], []
    size = max(1, int(getattr(backend, "batch_size", 1) or 1))
    jobs = itertools.chain(((state.work, b) for b in _batches(pending.singles, size)),
                           ((functools.partial(_conversation.run_conversation, state), c)
                            for c in pending.conversations))

    async def worker() -> None:
        for fn, job in jobs:  # one shared iterator: no await inside it, so no races
            if state.stopping:  # the circuit breaker tripped: start nothing new
                return
            await fn(job)

    n = min(state.runner.concurrency, max(1, len(pending)))
    tasks = [asyncio.create_task(worker()) for _ in range(n)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Pending(state.deferred_singles, state.deferred_conversations)


@dataclass
class ExecutorContext:
    """What an executor's ``drive`` gets.

    Attributes:
        state: The run: row building, cache, parts, counters (``preset``, ``fresh``, ``key``).
        backend: The real backend, built on the driver (identity, parsing, prices; the local
            executor calls it).
        model / runner: The configs.
        run_dir / part_dir: The run directory and this model's checkpoint parts.
        progress: Whether progress bars may be drawn.
        secrets: Exact values never to write (API keys).
        plan: ``plan()`` -> the work still without a row (``chunks`` splits it).
    """

    state: _Run
    backend: Backend
    model: ModelConfig
    runner: RunnerConfig
    run_dir: Path
    part_dir: Path
    progress: bool
    secrets: tuple[str, ...]
    plan: Callable[[], Iterator[Pending]]

    def chunks(self) -> Iterator[Pending]:
        """The work still without a row (this run's rows and earlier runs' final rows are done),
        a chunk of about ``runner.chunk_size`` trials at a time, a persona never split; each call
        starts over from what is written by then."""
        return self.plan()


async def drive_local(ctx: ExecutorContext) -> None:
    """The local executor: the async runner calls the backend, chunk after chunk."""
    for pending in ctx.chunks():
        left = await run_pass(ctx.state, pending, ctx.backend)
        if ctx.state.stopping:
            return
        if left:  # a real backend never defers
            raise RuntimeError(f"{ctx.model.name}: the backend deferred {len(left)} trials")


@dataclass(frozen=True)
class ExecutorSpec:
    """Where an executor lives and what it needs (imported when selected)."""

    module: str
    function: str
    #: (import name, pip install command) of optional dependencies.
    requires: tuple[tuple[str, str], ...] = ()


EXECUTORS: dict[str, ExecutorSpec] = {
    "local": ExecutorSpec("simsurvey.runner._executors", "drive_local"),
    "batch": ExecutorSpec("simsurvey.runner.batch", "drive"),
    "ray": ExecutorSpec("simsurvey.runner.ray_executor", "drive", requires=(("ray", "pip install 'simsurvey[ray]'"),)),
}


def executor_drive(name: str) -> Callable[[ExecutorContext], Awaitable[None]]:
    """The ``drive`` coroutine function of ``runner.executor``.

    Raises:
        UserError: an unknown executor, or one whose optional package is not installed (one line
            with the install command).
    """
    spec = EXECUTORS.get(name)
    if spec is None:
        raise UserError(f"runner.executor: unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    for module, pip in spec.requires:
        if importlib.util.find_spec(module) is None:
            raise UserError(f"runner.executor: {name!r} needs the {module} package, which is not installed: {pip}")
    return getattr(importlib.import_module(spec.module), spec.function)
