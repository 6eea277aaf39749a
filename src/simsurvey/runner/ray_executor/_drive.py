"""``drive(ctx)``: the Ray executor on the runner's seam.

Per chunk of ``runner.chunk_size`` trials, and until nothing is deferred:

1. ``run_pass`` with a *collecting* backend: the trials the cache (or this run) already answers
   get their rows at once; every other call is recorded (its cache key, its request, its call
   group: exactly the calls the local runner would make) and deferred.
2. The recorded requests go through the Ray Data pipeline (:mod:`._pipeline`); each result block
   that streams back is checked (the workers' backend identity must be the driver's), written to
   the response cache at once (a kill re-pays only what is still out on Ray) and put in
   ``state.preset``.
3. ``run_pass`` again: the preset answers become rows exactly as the local runner builds them
   (parts, stats, circuit breaker). A sequential conversation advances one turn per round.

The driver renders, keys, caches and builds rows; the workers only answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from simsurvey.errors import UserError
from simsurvey.respondents.base import FatalBackendError, Request, Result
from simsurvey.runner._administer import DEFERRED
from simsurvey.runner._executors import Pending, run_pass
from simsurvey.runner.ray_executor._records import request_row, result_from_json

_END = object()
#: A part's answers on their way back from Ray.
_Asking = asyncio.Task  # of list[tuple[str, Result]]
#: Trials per batch of a pass that only answers (nothing is sent: the batch is a cache round trip).
_ANSWER_BATCH = 256


class Collector:
    """A backend that answers nothing: it records each call's requests and defers them.

    It presents the real backend's batch size, so ``run_pass`` groups the trials into the same
    calls as with the real backend, and a worker then makes exactly those calls. Like every pass
    backend it sends nothing (``sends = False``: no rate limit, no call counted).
    """

    sends = False

    def __init__(self, backend: Any, state: Any, *, batch_size: int | None = None,
                 asking: set[str] | None = None) -> None:
        self.name = backend.name
        self.deterministic = getattr(backend, "deterministic", False)
        self.batch_size = batch_size or int(getattr(backend, "batch_size", 1) or 1)
        self.identity = dict(getattr(backend, "identity", None) or {})
        self._state = state
        self.rows: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._calls = 0
        # Keys an earlier part is still asking: deferred (their answer will be in the cache by this
        # part's row pass) but not asked again, as the local runner would serve them from the cache.
        self._asking = asking if asking is not None else set()
        self.skipped = 0

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        call = self._calls
        self._calls += 1
        for req in requests:
            key = self._state.key(req)
            if key in self._asking:
                self.skipped += 1
            elif key not in self._seen:  # an identical call deferred twice is asked once
                self._seen.add(key)
                self.rows.append(request_row(req, key=key, call=call))
        return [DEFERRED for _ in requests]


def split_pending(pending: Pending, size: int) -> Iterator[Pending]:
    """``pending`` in parts of about ``size`` trials: singles cut between personas (a persona's
    trials share a prompt prefix), then conversations, whole."""
    part: list[dict[str, Any]] = []
    for t in pending.singles:
        if len(part) >= size and (t["persona_id"] is None or t["persona_id"] != part[-1]["persona_id"]):
            yield Pending(part, [])
            part = []
        part.append(t)
    if part:
        yield Pending(part, [])
    convs: list[Any] = []
    n = 0
    for c in pending.conversations:
        if convs and n >= size:
            yield Pending([], convs)
            convs, n = [], 0
        convs.append(c)
        n += c.pending
    if convs:
        yield Pending([], convs)


def resolve_processor(processor: str, model: Any) -> str:
    """``auto`` -> ``actor`` for the embedded model, ``http`` for litellm; a mismatch is one line."""
    if processor == "auto":
        return "actor" if model.backend == "local" else "http"
    if processor == "actor" and model.backend != "local":
        raise UserError(f"runner.ray.processor: 'actor' runs the embedded model (model.backend=local), "
                        f"not model.backend={model.backend!r}; use http (or auto)")
    if processor in ("http", "vllm") and model.backend != "litellm":
        raise UserError(f"runner.ray.processor: {processor!r} answers for model.backend=litellm, "
                        f"not {model.backend!r}; use actor (or auto) for the embedded model")
    return processor


class RayDriver:
    """One ``drive``: the worker spec, the Ray options and the accounting of what came back."""

    def __init__(self, ctx: Any) -> None:
        from simsurvey.runner.ray_executor._workers import WorkerSpec

        self.ctx = ctx
        self.state = ctx.state
        self.opts = ctx.runner.ray
        self.processor = resolve_processor(self.opts.processor, ctx.model)
        if self.processor == "vllm":
            from simsurvey.runner.ray_executor._pipeline import _vllm_available

            why = _vllm_available()
            if why is not None:
                raise UserError(f"runner.ray.processor: 'vllm' needs vllm and a GPU on this node: {why}")
        self.expected = dict(getattr(ctx.backend, "identity", None) or {})
        #: Keys recorded by a part and not yet answered (parts overlap: see :meth:`run`).
        self.asking: set[str] = set()
        self.running: set[_Asking] = set()
        self.spec = WorkerSpec(
            processor=self.processor, model=ctx.model.model_dump(mode="json"),
            runner=ctx.runner.model_dump(mode="json", include=_RUNNER_FIELDS), seed=int(ctx.state.seed),
            concurrency=self.opts.concurrency_per_worker, threads=max(1, int(self.opts.num_cpus_per_worker)),
            workers=self.opts.num_workers, api_key=getattr(ctx.backend, "_api_key", None))
        name = ctx.model.name.split("/", 1)[1] if "/" in ctx.model.name else ctx.model.name
        self.vllm = {"model_source": self.opts.vllm_model_source or name, "engine_kwargs": self.opts.vllm_engine_kwargs,
                     "concurrency": self.opts.num_workers, "batch_size": self.opts.vllm_batch_size}

    async def run(self) -> None:
        """Chunk after chunk, two in flight: while Ray answers chunk i, the driver renders chunk i+1
        (its collecting pass) and then builds chunk i's rows, so the driver's work overlaps the
        workers' instead of adding to it."""
        prev: tuple[_Asking | None, Any] | None = None
        interrupted = False
        try:
            for chunk in self._parts():
                deferred, rows = await self.collect(chunk, batch_size=None)
                if self.state.stopping:
                    return
                task = self.start(rows)
                if prev is not None:
                    await self.finish(*prev)
                    if self.state.stopping:
                        return
                prev = (task, deferred)
            if prev is not None:
                await self.finish(*prev)
        except (asyncio.CancelledError, KeyboardInterrupt):
            interrupted = True
            raise
        finally:
            # A run that stops (a fatal error, the circuit breaker) still collects what is on its
            # way back: those calls are paid, and their answers go to the cache for the next run.
            # An interrupt does not wait: what came back is in the cache already.
            left = [t for t in self.running if not t.done()]
            for t in left if interrupted else ():
                t.cancel()
            await asyncio.gather(*left, return_exceptions=True)

    def _parts(self) -> Iterator[Any]:
        """The runner's persona chunks (``runner.chunk_size``: memory stays bounded), each cut into
        parts of about ``4 x block_rows x num_workers`` trials (whole personas; whole conversations)
        so that even a one-chunk run has parts to overlap."""
        size = 4 * self.opts.block_rows * self.opts.num_workers
        for chunk in self.ctx.chunks():
            yield from split_pending(chunk, size)

    async def collect(self, pending: Any, *, batch_size: int | None) -> tuple[Any, list[dict[str, Any]]]:
        """One pass with a :class:`Collector`: (what it deferred, the request rows to ask)."""
        collector = Collector(self.ctx.backend, self.state, batch_size=batch_size, asking=self.asking)
        deferred = await run_pass(self.state, pending, collector)
        self.asking.update(r["key"] for r in collector.rows)
        if deferred and not collector.rows and not collector.skipped and not self.state.stopping:
            # Deferred with nothing to ask: a seam bug; raised rather than a row silently lost.
            raise RuntimeError("ray executor: trials were deferred but no request was recorded")
        return deferred, collector.rows

    async def finish(self, task: _Asking | None, deferred: Any) -> None:
        """Wait for a chunk's answers, build its rows; a conversation goes on one turn per round.

        The first pass of a chunk grouped its calls as the real backend would (a worker makes
        exactly those calls); these passes answer from the cache and defer only a conversation's
        next turn (one request, one call), so they take large batches: one cache round trip for a
        persona's rows, not one per row.
        """
        todo = deferred
        while todo:
            if task is not None:
                self.hand_over(await task)
            todo, rows = await self.collect(todo, batch_size=_ANSWER_BATCH)
            if self.state.stopping:
                return
            task = self.start(rows)
            if todo and task is None:  # only calls a later part is asking: wait for an answer to come back
                running = [t for t in self.running if not t.done()]
                if running:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

    def start(self, rows: list[dict[str, Any]]) -> _Asking | None:
        """Ask ``rows`` on Ray in the background (None when there is nothing to ask)."""
        if not rows:
            return None
        task = asyncio.create_task(self.ask(rows))
        ray_stats = self.state.executor_stats.setdefault(
            "ray", {"processor": self.processor, "num_workers": self.opts.num_workers, "datasets": 0, "requests": 0})
        ray_stats["datasets"] += 1  # one Ray Dataset per part and conversation round
        ray_stats["requests"] += len(rows)
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    async def ask(self, rows: list[dict[str, Any]]) -> list[tuple[str, Result]]:
        """Ask the rows on Ray; every answer is committed to the cache as its block arrives.

        Returns the answers, handed to the runner (:meth:`hand_over`) only when this part's rows
        are built: a part collected meanwhile must not take them as its own calls (it finds them in
        the cache, as the local runner's later chunk would).
        """
        from simsurvey.runner.ray_executor._pipeline import stream_answers

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def hand(item: Any) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                return True
            except RuntimeError:  # the loop is gone (the run stopped): nobody is waiting
                return False

        def produce() -> None:
            try:
                for frame in stream_answers(rows, self.spec, block_rows=self.opts.block_rows,
                                            num_workers=self.opts.num_workers,
                                            num_cpus_per_worker=self.opts.num_cpus_per_worker, vllm=self.vllm):
                    if stop.is_set() or not hand(frame):
                        return
            except BaseException as err:  # noqa: BLE001 - handed to the loop, raised there
                hand(err)
            finally:
                hand(_END)

        # A daemon thread, not the loop's executor: an interrupted run does not wait for Ray.
        threading.Thread(target=produce, name="simsurvey-ray", daemon=True).start()
        fatal = ""
        answers: list[tuple[str, Result]] = []
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise _worker_failure(item)
                f, got = await self.take(item)
                fatal = fatal or f
                answers.extend(got)
        finally:
            stop.set()
            self.asking.difference_update(r["key"] for r in rows)
        if fatal:
            raise FatalBackendError(fatal)
        return answers

    async def take(self, frame: Any) -> tuple[str, list[tuple[str, Result]]]:
        """Check one result block and commit its answers to the cache: (its fatal message or '',
        its answers)."""
        state = self.state
        for text in set(frame["identity"]):
            got = json.loads(text)
            if got != self.expected:
                raise UserError(
                    f"runner.executor: ray: a worker's backend resolved {got}, the driver's {self.expected}: "
                    "their answers would be cached under the wrong key; pin the setting (e.g. model.params.dtype) "
                    "so every node resolves the same")
        fatal = next((f for f in frame["fatal"] if f), "")
        got = [(k, result_from_json(t)) for k, t in zip(frame["key"], frame["result"])]
        if fatal:
            got = [(k, r) for k, r in got if r.error is None]  # the answers paid for are kept
        if state.cache is not None:
            await state.cache.aput_many(got)  # committed before the rows use them (kill-safety)
        state.c["calls"] += int(frame["calls"].sum())
        state.c["retries"] += int(frame["retries"].sum())
        return fatal, got

    def hand_over(self, answers: list[tuple[str, Result]]) -> None:
        """Give the runner a part's answers for its row pass, as this run's own calls."""
        state = self.state
        if state.cache is None:
            state.preset.update(answers)
            return
        for k, r in answers:
            # An answer waits in the cache (its key in `fresh`: the pass reads it as this run's own
            # call), not twice in memory; an error is never cached, so it waits in `preset`.
            if r.error is None:
                state.fresh.add(k)
            else:
                state.preset[k] = r


#: The runner settings a worker's retry loop reads.
_RUNNER_FIELDS = {"max_retries", "backoff_base_s", "backoff_max_s", "timeout_s", "rpm", "tpm", "concurrency"}


def _worker_failure(err: BaseException) -> BaseException:
    """A failure of the Ray pipeline as one line (the worker's own error, not Ray's traceback)."""
    if isinstance(err, (UserError, FatalBackendError, KeyboardInterrupt, asyncio.CancelledError)):
        return err
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    line = text[-1] if text else type(cause).__name__
    return UserError(f"runner.executor: ray: the pipeline failed: {type(cause).__name__}: {line[:300]}")


async def drive(ctx: Any) -> None:
    """Answer ``ctx.pending`` on Ray (see the module docstring); rows as the local runner's.

    Raises:
        UserError: a processor that does not fit the model, vllm without a GPU, a cluster that
            cannot be reached, a worker whose backend resolves another identity.
        FatalBackendError: bad credentials or an unknown model (the runner makes it one line).
    """
    from simsurvey.runner.ray_executor._session import start_ray, stop_ray

    driver = RayDriver(ctx)  # a processor that does not fit the model: one line, before Ray starts
    opts = ctx.runner.ray
    started = await asyncio.to_thread(start_ray, address=opts.address, num_cpus=opts.num_cpus,
                                      runtime_env=opts.runtime_env)
    try:
        await driver.run()
    finally:
        if started:
            await asyncio.to_thread(stop_ray)
