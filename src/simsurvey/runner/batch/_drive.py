"""The batch executor (``runner.executor: batch``): rounds of defer -> submit -> poll -> collect.

A round:

1. **defer** — ``run_pass`` over the pending trials with :class:`_Deferrer` as the backend. The
   runner serves cache hits and answers already collected (``state.preset``) itself; every other
   request reaches the deferrer, which writes it as one line of a request file (once per cache
   key) and returns ``DEFERRED``: no row, nothing counted, the trial comes back pending.
2. **submit** — the budget guard (``batch.max_calls``, ``batch.max_cost_usd``) is checked over the
   whole run directory *before* anything is sent; then each file is recorded in ``state.json``,
   uploaded, recorded, created, recorded.
3. **poll** — every live batch, every ``batch.poll_interval_s``, with a progress bar (requests
   done / total and an ETA from the provider's request counts).
4. **collect** — each batch the moment it ends: its output and error files are downloaded into the
   batch directory, every answer is parsed by the sync path's parser, written to the response cache
   at once and put in ``state.preset``; keys that failed, expired, came back malformed or not at all
   are resubmitted in the next round, up to ``batch.max_resubmits`` times, then kept as error rows.

Rounds repeat until nothing is deferred (a sequential conversation needs one round per turn).
A killed run restarted on the same run directory re-reads ``state.json``: keys of a live or
finished-but-uncollected batch are never written again; those batches are polled and collected.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsurvey.errors import RunFailedError, RunPendingError, UserError
from simsurvey.respondents.base import Request, Result, RetryableError
from simsurvey.respondents.litellm_backend import batch_token_prices
from simsurvey.runner._checkpoint import model_slug
from simsurvey.runner._limits import backoff_delay, estimate_tokens
from simsurvey.runner.batch._jsonl import (
    MALFORMED,
    RequestFile,
    RequestFileWriter,
    iter_lines,
    meta_keys,
    parse_output_line,
    read_meta,
)
from simsurvey.runner.batch._providers import (
    LITELLM_BATCH_PROVIDERS,
    AnthropicProvider,
    BatchAPIError,
    BatchAuthError,
    BatchStatus,
    FileProvider,
    LiteLLMProvider,
    Provider,
    TransientBatchError,
)
from simsurvey.runner.batch._state import TERMINAL, BatchState, Job
from simsurvey.secrets import scrub

log = logging.getLogger("simsurvey.runner.batch")
_ROW_ERROR_STATUS = frozenset(range(400, 500)) - {408, 409, 429}
_CACHE_CHUNK = 1000


def provider_kind(model_name: str, configured: str) -> str:
    """``litellm``, ``anthropic`` or ``file``: ``auto`` picks anthropic for ``anthropic/...`` models."""
    if configured != "auto":
        return configured
    return "anthropic" if model_name.startswith("anthropic/") else "litellm"


def make_provider(ctx: Any, directory: Path) -> Provider:
    """The provider client of this run's model and ``runner.batch`` settings.

    Raises:
        UserError: a model litellm has no batch API for, or logprob elicitation with Anthropic.
    """
    model, cfg = ctx.model, ctx.runner.batch
    if model.backend != "litellm":
        # The embedded model answers in this process: a batch file of its requests would be
        # answered by another model, under its cache keys.
        raise UserError(f"runner.executor: 'batch' sends the calls to a provider's batch API, but model.backend "
                        f"'{model.backend}' ({model.name}) runs in this process; use runner.executor=local or ray, "
                        "or a litellm model (model=litellm model.name=...)")
    kind = provider_kind(model.name, cfg.provider)
    api_key = getattr(ctx.backend, "_api_key", None)
    if kind == "file":
        return FileProvider(directory, model=model.name.split("/", 1)[-1])
    if kind == "anthropic":
        if model.elicitation in ("logprobs", "both"):
            raise UserError(f"model.elicitation: '{model.elicitation}' cannot be used with Anthropic's Message Batches "
                            f"(model {model.name}: Anthropic gives no token logprobs); use sample")
        return AnthropicProvider(api_key=api_key, api_base=model.api_base)
    llm_provider = cfg.custom_llm_provider or model.name.split("/", 1)[0]
    if llm_provider not in LITELLM_BATCH_PROVIDERS:
        raise UserError(f"runner.batch: model {model.name}: litellm has no batch API for provider '{llm_provider}' "
                        f"(it has: {', '.join(LITELLM_BATCH_PROVIDERS)}); set runner.batch.custom_llm_provider, "
                        "use runner.batch.provider=file (vllm run-batch) or runner.executor=local")
    return LiteLLMProvider(llm_provider, api_base=model.api_base, api_key=api_key, extra=dict(cfg.provider_params),
                           model=model.name)


@dataclass
class _Collected:
    """What one ended batch gave: answers, rows' own errors (4xx), keys for another round."""

    keys: set[str]
    answers: list[tuple[str, Result]] = field(default_factory=list)
    row_errors: dict[str, Result] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    malformed: int = 0


@dataclass
class _Failure:
    """A key that came back without an answer in this process: how often, and why (the last time)."""

    attempts: int
    reason: str


class _Deferrer:
    """The answers of a defer pass (a :class:`PassBackend` callback): every request not answered
    yet becomes a request line (once per key) and is deferred."""

    def __init__(self, ex: _Executor, writer: RequestFileWriter) -> None:
        self.ex, self.writer = ex, writer
        self.written: set[str] = set()
        self.deferred = 0
        self.gave_up = 0

    def __call__(self, key: str, r: Request) -> Result | None:
        ex = self.ex
        fail = ex.failures.get(key)
        if key in ex.live_keys or key in self.written:
            self.deferred += 1
            return None
        if fail is not None and fail.attempts > ex.cfg.max_resubmits:
            self.gave_up += 1
            return Result(error=f"{fail.reason} (gave up after {fail.attempts} batch submissions)")
        ex.write_request(self.writer, key, r)
        self.written.add(key)
        self.deferred += 1
        return None


class _Executor:
    """One drive: the job state, the provider and the per-key bookkeeping of this process."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.cfg = ctx.runner.batch
        self.directory = Path(ctx.run_dir) / "batches" / model_slug(ctx.model.name)
        self.secrets = tuple(ctx.secrets or ())
        self.jobs = BatchState.load(self.directory, secrets=self.secrets)
        self.jobs.model = ctx.model.name
        self.provider = make_provider(ctx, self.directory)
        self.kind = provider_kind(ctx.model.name, self.cfg.provider)
        prices = batch_token_prices(ctx.model.name)
        self.prices = prices[:2] if prices else None
        self.price_source = prices[2] if prices else None
        self.body_model = ctx.model.name.split("/", 1)[1] if "/" in ctx.model.name else ctx.model.name
        self.live_keys: set[str] = set()
        for job in self.jobs.live():
            self.live_keys.update(meta_keys(self.jobs.meta_file(job)))
        self.failures: dict[str, _Failure] = {}
        self.rng = random.Random(0)  # backoff jitter only
        self.stats = {"batches_submitted": 0, "batch_calls_submitted": 0, "batch_collected": 0,
                      "batch_resubmitted": 0, "batch_malformed": 0, "batch_gave_up": 0,
                      "batch_price_source": self.price_source}

    # -- request lines ------------------------------------------------------------------
    def write_request(self, writer: RequestFileWriter, key: str, r: Request) -> None:
        body = self.ctx.backend.chat_payload(r, model=self.body_model)
        out_cap = 1 if r.elicitation == "logprobs" else r.max_tokens
        try:
            writer.add(key, body, elicitation=r.elicitation, labels=r.labels,
                       est_prompt_tokens=estimate_tokens(r.messages, 0), max_tokens=out_cap)
        except ValueError as err:  # one request bigger than a whole file may be
            raise self._fatal(f"runner.batch.max_bytes={self.cfg.max_bytes}: {err}") from None

    def writer(self) -> RequestFileWriter:
        return RequestFileWriter(self.directory, max_requests=min(self.cfg.max_requests, self.provider.max_requests),
                                 max_bytes=min(self.cfg.max_bytes, self.provider.max_bytes),
                                 start=self.jobs.next_number())

    # -- provider calls with retries -------------------------------------------------------
    async def _retry(self, what: str, fn: Any, *args: Any) -> Any:
        runner = self.ctx.runner
        attempt = 0
        while True:
            try:
                return await fn(*args)
            except TransientBatchError as err:
                if attempt >= runner.max_retries:
                    raise self._fatal(f"{what}: {err} (gave up after {attempt} retries)") from None
                await asyncio.sleep(backoff_delay(attempt, base=runner.backoff_base_s, cap=runner.backoff_max_s,
                                                  rng=self.rng))
                attempt += 1
            except BatchAuthError as err:
                env = self.ctx.model.api_key_env
                fix = f"check the key in ${env}" if env else "set model.api_key_env to the variable holding the key"
                raise self._fatal(f"{what}: the batch API rejected the credentials ({err}); {fix}") from None
            except BatchAPIError as err:
                raise self._fatal(f"{what}: the batch API refused it ({err}); check the model name, "
                                  "runner.batch.provider and runner.batch.provider_params") from None

    def _fatal(self, message: str) -> Exception:
        line = scrub(f"model: {self.ctx.model.name}: {message}".splitlines()[0], self.secrets)
        if any(j.stage != "written" for j in self.jobs.jobs):
            # Batches are live at the provider: the run directory (and its state.json) must stay.
            return RunFailedError(f"{line}; batches already submitted are in {self.jobs.path}: fix it and rerun "
                                  "on this run directory to collect them")
        return UserError(line)

    # -- submit --------------------------------------------------------------------------
    def guard(self, files: list[RequestFile], future_calls: int) -> None:
        """Refuse (one line, nothing submitted) a round that takes the run directory past a limit."""
        new = sum(f.n for f in files)
        before = self.jobs.submitted_calls() + sum(j.n for j in self.jobs.jobs if j.stage == "written")
        total = before + new + future_calls
        cfg = self.cfg
        if cfg.max_calls is not None and total > cfg.max_calls:
            more = f" and ~{future_calls:,} later turns of sequential conversations" if future_calls else ""
            raise self._fatal(f"runner.batch.max_calls={cfg.max_calls:,}: submitting {new:,} calls{more} would make "
                              f"{total:,} batch calls for this run directory ({before:,} already); nothing was "
                              "submitted: raise the limit or ask fewer trials")
        if cfg.max_cost_usd is not None:
            if self.prices is None:
                raise self._fatal(f"runner.batch.max_cost_usd: litellm's cost map has no price for {self.ctx.model.name}, "
                                  "so the cost cannot be checked; set runner.batch.max_cost_usd=null to submit anyway")
            pin, pout = self.prices
            est_new = sum(f.est_prompt_tokens * pin + f.max_completion_tokens * pout for f in files)
            per_call = est_new / new if new else 0.0
            est = est_new + per_call * future_calls
            spent = sum(j.est_cost_usd for j in self.jobs.jobs)
            if spent + est > cfg.max_cost_usd:
                raise self._fatal(f"runner.batch.max_cost_usd={cfg.max_cost_usd:g}: this round is estimated at "
                                  f"${est:,.4f} at the batch price ({self.price_source}), ${spent + est:,.4f} with "
                                  f"the batches already submitted; nothing was submitted: raise the limit or ask "
                                  "fewer trials")

    async def submit(self, files: list[RequestFile], round_no: int) -> None:
        pin, pout = self.prices or (0.0, 0.0)
        for f in files:
            job = Job(name=f.name, n=f.n, bytes=f.bytes, provider=self.provider.name, round=round_no,
                      est_cost_usd=f.est_prompt_tokens * pin + f.max_completion_tokens * pout)
            self.jobs.jobs.append(job)
            self.live_keys.update(meta_keys(f.meta))
        self.jobs.save()  # recorded before the provider sees them: a kill now never resubmits these keys
        for job in [j for j in self.jobs.jobs if j.stage in ("written", "uploaded")]:
            await self._send(job)

    async def _send(self, job: Job) -> None:
        path = self.jobs.request_file(job)
        if job.stage == "written":
            job.input_file_id = await self._retry(f"uploading {path.name}", self.provider.upload, path)
            job.stage = "uploaded"
            self.jobs.save()
        elif job.batch_id is None:
            # A run killed between create and recording it: the provider may already hold that batch.
            job.batch_id = await self.provider.find(job.input_file_id or "")
        if job.batch_id is None:
            job.batch_id = await self._retry(f"creating the batch of {path.name}", self.provider.create,
                                             job.input_file_id, path)
        job.stage, job.status, job.submitted_at = "submitted", "validating", time.time()
        self.jobs.save()
        self.stats["batches_submitted"] += 1
        self.stats["batch_calls_submitted"] += job.n
        log.info("submitted %s (%d requests) as %s", job.name, job.n, job.batch_id)

    # -- poll and collect ----------------------------------------------------------------
    async def poll(self, *, once: bool = False) -> None:
        """Poll every live batch until each has ended (``once``: one look), collecting each as it ends."""
        from simsurvey.runner.batch._progress import BatchProgress

        bar = BatchProgress(self.ctx.model.name, enabled=bool(self.ctx.progress))
        try:
            while True:
                waiting = [j for j in self.jobs.jobs if j.stage == "submitted"]
                for job in waiting:
                    st: BatchStatus = await self._retry(f"polling batch {job.batch_id}", self.provider.retrieve,
                                                        job.batch_id)
                    changed = st.status != job.status or st.completed != job.request_counts.get("completed")
                    job.status = st.status
                    job.request_counts.update(total=st.total, completed=st.completed, failed=st.failed)
                    job.output_file_id, job.error_file_id = st.output_file_id, st.error_file_id
                    if st.errors:
                        job.errors = scrub(st.errors, self.secrets)
                    if st.status in TERMINAL:
                        job.stage, job.ended_at = "ended", time.time()
                    if changed or job.stage == "ended":
                        self.jobs.save()
                for job in [j for j in self.jobs.jobs if j.stage == "ended"]:
                    await self.collect(job)
                live = [j for j in self.jobs.jobs if j.stage == "submitted"]
                bar.update(live)
                if not live or once:
                    return
                await asyncio.sleep(self.cfg.poll_interval_s)
        finally:
            bar.close()

    async def collect(self, job: Job) -> None:
        """Read an ended batch into the cache and ``preset``; note the keys that need another round."""
        out, err = self.jobs.output_file(job, "out"), self.jobs.output_file(job, "err")
        for fid, dest in ((job.output_file_id, out), (job.error_file_id, err)):
            if fid and not dest.exists():
                await self._retry(f"downloading the results of batch {job.batch_id}", self.provider.download, fid, dest)
        turnaround = max(0.0, time.time() - (job.submitted_at or time.time()))
        # Reading and parsing tens of thousands of lines takes a while: off the event loop.
        got = await asyncio.to_thread(self._read, job, turnaround)
        for i in range(0, len(got.answers), _CACHE_CHUNK):
            await self._store(got.answers[i:i + _CACHE_CHUNK])
        self.ctx.state.preset.update(got.row_errors)
        for cid, reason in got.failures:
            self._fail(cid, reason)
        self.stats["batch_malformed"] += got.malformed
        ok, failed = len(got.answers), len(got.row_errors) + len(got.failures)
        job.stage, job.collected_at = "collected", time.time()
        job.collected_ok, job.collected_failed = ok, failed
        self.jobs.save()
        self.live_keys.difference_update(got.keys)
        self.stats["batch_collected"] += ok
        log.info("collected %s: %d answers, %d without", job.batch_id, ok, failed)

    def _read(self, job: Job, turnaround: float) -> _Collected:
        """A job's output and error lines, read against its meta sidecar (on a worker thread)."""
        out, err = self.jobs.output_file(job, "out"), self.jobs.output_file(job, "err")
        meta = read_meta(self.jobs.meta_file(job))
        got = _Collected(keys=set(meta))
        seen: set[str] = set()
        for path in (out, err):
            if not path.exists():
                continue
            for raw in iter_lines(path):
                line = parse_output_line(raw)
                cid = line.custom_id
                if cid is None or cid not in meta or cid in seen:
                    continue  # an unreadable line without a key is a key missing below
                seen.add(cid)
                if line.body is not None:
                    elicitation, labels = meta[cid]
                    req = Request(messages=(), labels=labels, elicitation=elicitation)  # type: ignore[arg-type]
                    try:
                        res = self.ctx.backend.parse_body(line.body, req, latency=turnaround,
                                                          cost=self._cost(line.body.get("usage")))
                    except RetryableError as e:  # the sync path would retry it: so do we, next round
                        got.failures.append((cid, f"{MALFORMED}: {e}"))
                        got.malformed += 1
                        continue
                    got.answers.append((cid, res))
                elif line.status in _ROW_ERROR_STATUS:
                    # This prompt's problem (a content filter, the context window): the row's error, as on the sync path.
                    got.row_errors[cid] = Result(error=scrub(line.error or "", self.secrets), latency_s=turnaround)
                else:
                    got.malformed += line.error == MALFORMED
                    got.failures.append((cid, line.error or MALFORMED))
        why = f"batch {job.batch_id} {job.status}" + (f": {job.errors}" if job.errors else "")
        got.failures += [(cid, f"not in the output of {why}") for cid in meta if cid not in seen]
        return got

    async def _store(self, answers: list[tuple[str, Result]]) -> None:
        if not answers:
            return
        state = self.ctx.state
        if state.cache is None:
            state.preset.update(answers)
            return
        # Committed the moment they are read (kill-safety), and handed to the runner by key only:
        # a million answers stay on disk, not in memory.
        await state.cache.aput_many(answers)
        state.fresh.update(k for k, _ in answers)

    def _fail(self, key: str, reason: str) -> None:
        prev = self.failures.get(key)
        self.failures[key] = _Failure(attempts=(prev.attempts if prev else 0) + 1, reason=scrub(reason, self.secrets))

    def _cost(self, usage: Any) -> float | None:
        if self.prices is None or not isinstance(usage, dict):
            return None
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if pt is None or ct is None:
            return None
        return pt * self.prices[0] + ct * self.prices[1]

    # -- the rounds ------------------------------------------------------------------------
    async def run(self) -> None:
        from simsurvey.runner._executors import PassBackend, run_pass

        ctx = self.ctx
        round_no = max((j.round for j in self.jobs.jobs), default=0)
        for job in [j for j in self.jobs.jobs if j.stage in ("written", "uploaded")]:
            await self._send(job)  # recorded by a killed run before it could send them
        if any(j.stage in ("submitted", "ended") for j in self.jobs.jobs):
            await self._wait()  # a killed run's batches: collect them before writing anything new
        while True:
            round_no += 1
            writer = self.writer()
            answer = _Deferrer(self, writer)
            future = 0
            try:
                for pending in ctx.chunks():
                    left = await run_pass(ctx.state, pending, PassBackend(ctx.state, answer))
                    future += sum(max(0, c.pending - 1) for c in left.conversations)
                    if ctx.state.stopping:
                        writer.discard()
                        return
                files = writer.close()
                self.stats["batch_gave_up"] += answer.gave_up
                if not answer.deferred:
                    return  # every trial has its row
                self.stats["batch_resubmitted"] += sum(1 for k in answer.written if k in self.failures)
                if files:
                    self.guard(files, future)
            except BaseException:
                writer.discard()  # nothing half-written: the request lines of a refused round go
                raise
            if files:
                await self.submit(files, round_no)
            elif not self.live_keys:
                raise RuntimeError("batch executor: trials were deferred but no batch holds them")
            await self._wait()

    async def _wait(self) -> None:
        """Poll and collect, or stop here (``batch.wait: false``, or a file batch without output)."""
        # One look without waiting: batch.wait false (a 24 h window), or files the user runs elsewhere.
        once = not self.cfg.wait or self.kind == "file"
        await self.poll(once=once)
        if once and any(j.stage == "submitted" for j in self.jobs.jobs):
            raise RunPendingError(self._pending_message())

    def _pending_message(self) -> str:
        live = [j for j in self.jobs.jobs if j.stage in ("submitted", "ended")]
        n = sum(j.n for j in live)
        where = self.ctx.run_dir
        if self.kind == "file":
            cmd = self.provider.command(j.name for j in live)  # type: ignore[attr-defined]
            return (f"{self.ctx.model.name}: {n:,} requests written for an offline batch run; run: {cmd} ; "
                    f"then rerun with hydra.run.dir={where} to collect them")
        return (f"{self.ctx.model.name}: {len(live)} batch(es) with {n:,} requests submitted ({self.jobs.path}); "
                f"rerun with hydra.run.dir={where} to collect them (nothing is submitted twice)")


async def drive(ctx: Any) -> None:
    """Answer the pending trials of ``ctx`` through a provider's batch API (the executor seam).

    Args:
        ctx: The :class:`~simsurvey.runner._executors.ExecutorContext` of this administer call.

    Raises:
        UserError: a setting the provider cannot serve, the budget guard, a refused file or bad
            credentials before anything was submitted (one line, exit 2).
        RunFailedError: the same after batches were submitted (the run directory keeps their state).
        RunPendingError: ``batch.wait: false`` (or a file batch without its output yet): the batches
            are submitted and a rerun collects them (exit 0).
    """
    ex = _Executor(ctx)
    try:
        await ex.run()
    finally:
        await ex.provider.aclose()
        ctx.state.executor_stats.update(ex.stats)
