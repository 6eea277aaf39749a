"""Administer a survey design to one respondent backend: the async runner.

For each design trial (a row of the trials table) the runner renders the request
(``render_request``), serves it from the response cache or calls the backend, parses the
answer, and appends the response row to a checkpoint part. Calls run concurrently (at most
``runner.concurrency`` in flight, under optional requests- and tokens-per-minute buckets); a
transient failure (429, 5xx, timeout, malformed body) is retried with exponential backoff and
full jitter, honouring ``Retry-After``; after ``max_retries`` retries the row is kept with
``error`` set and ``valid=False`` — a row is never dropped. A server that cannot be reached
(connection refused, unknown host) is not retried, and a request the server rejects on its own
(a 400 from a content filter) is that row's error, not the run's.

Failures are never final: a row with an ``error`` is asked again by the next run on the same
run directory (``runner.retry: invalid`` also re-asks the rows whose answer was invalid, past
their cache entries). A circuit breaker stops a run whose calls keep failing: after
``runner.max_consecutive_failures`` rows in a row end in an error, no new call is started, the
rows done are checkpointed and :class:`~simsurvey.errors.RunFailedError` says how many failed and
the last error (scrubbed of credentials).

``answer_code``: for ``sample`` and ``both`` it is the parsed generated text (the distribution
is kept in ``probs``); for ``logprobs`` only, it is the most probable displayed option (the
first in display order on a tie), so every elicitation gives one answer per row. A
multi_select answer (a set, ``"a|c"``) comes from text only: ``logprobs`` elicitation of a
multi_select question is refused up front for model backends.

A rerun or resumed run never repeats a call: rows already in the checkpoint parts are skipped
and calls already in the cache are served from it (``cached=True``, ``cost_usd=0`` for this run;
the original cost is reported in ``stats["cost_usd_cached_original"]``). Within a run, rows whose
call is identical (a deterministic request: logprobs only or temperature 0 — e.g. the replicates
of the no_persona control) share one call; the rows after the first are also ``cached=True``.
Baseline backends are never cached (free, and they answer from reference data no key covers).
Every answer is committed to the cache the moment it arrives, before its row is used, so a
killed run re-pays at most the calls in flight (``concurrency`` x the backend's batch size).

Under ``design.context: sequential`` each conversation (persona, replicate) is asked turn by
turn, every request carrying the conversation so far; the rules (order, failures, resume) are in
:mod:`simsurvey.runner._conversation`.

Nothing blocks the event loop: cache reads and writes run on the cache's own thread, parquet
parts are written on a part-writer thread, and the backend's one-off start-up (importing
litellm, reading its price map: ``warm_up``) runs in a thread before the first call; reading
the parts (done keys, the result's rows) runs in a thread too.

Memory is bounded by ``runner.chunk_size`` and the concurrency, not by the design: the trials
table becomes trial dicts one persona chunk at a time (a chunk whose trials are all done costs
nothing), the keys already done and the keys this run wrote are held as two 64-bit hashes a key
(:class:`~simsurvey.runner._checkpoint.KeySet`, ``KeyLog``), the parts are read by column
projection, and the result is a selection of checkpointed rows
(:class:`~simsurvey.runner._checkpoint.Selection`): its frame is read only when asked for, and
the pipeline streams ``responses.parquet`` from it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import signal
import threading
import time
from collections import ChainMap
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.errors import RunFailedError, UserError
from simsurvey.instruments.design import CONTEXT_COLUMNS, DESIGN_COLUMNS
from simsurvey.instruments.models import Instrument, Question
from simsurvey.respondents.base import (
    Backend,
    FatalBackendError,
    Request,
    Result,
    RetryableError,
    UnreachableError,
)
from simsurvey.respondents.cache import ResponseCache, cache_key, canonical_json
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import _conversation
from simsurvey.runner._executors import ExecutorContext, Pending, executor_drive
from simsurvey.runner._checkpoint import (
    KeyLog,
    KeySet,
    PartWriter,
    Selection,
    done_keys,
    final_rows,
    model_slug,
    read_selected,
    row_key,
    select_rows,
)
from simsurvey.runner._limits import TokenBucket, backoff_delay, estimate_tokens
from simsurvey.secrets import known_secrets, scrub
from simsurvey.runner._progress import Progress, progress_enabled
from simsurvey.seeds import derive_seed
from simsurvey.population.variables import Variables, population_of

#: The trial columns a response row copies (the design's; the context columns may be absent).
TRIAL_COLUMNS: tuple[str, ...] = DESIGN_COLUMNS

#: What a pass backend returns for a request it does not answer in this pass (an executor that
#: gets its answers elsewhere: a batch file, Ray workers). No row is written for the trial,
#: nothing is cached or counted, and :func:`run_pass` hands the trial back for a later pass.
DEFERRED = _conversation.DEFERRED


def is_deferred(res: Result) -> bool:
    """Whether a result is :data:`DEFERRED` (identity: no backend answer can be mistaken for it)."""
    return res is DEFERRED


@dataclass(frozen=True)
class AdministerResult:
    """What :func:`administer` returns.

    Attributes:
        stats: JSON-able counts. Over all rows of the model's share of responses.parquet: rows, valid, invalid, refusals,
            errors (rows whose call failed; a resume asks them again). Of this run: new_rows,
            resumed_rows (skipped, already checkpointed), cached (served from the cache), reasked
            (cache entries bypassed by ``runner.retry: invalid``), calls (backend calls incl.
            retries), retries,
            prompt_tokens, completion_tokens, cost_usd (spent now), cost_usd_cached_original
            (what the cached rows cost when first made), seconds, requests_per_s (new rows/s);
            backend_identity: what the backend resolved from its config (e.g. the local dtype
            under ``auto``), when it says.
        selection: Which checkpointed rows are this model's share of ``responses.parquet``, in
            order (:func:`~simsurvey.runner._checkpoint.select_rows`): the pipeline streams the
            file from it (:func:`~simsurvey.runner._checkpoint.write_responses`) without a frame.
        frame: The rows as one frame; :func:`administer` reads them before it returns unless
            called with ``frame=False`` (the pipeline), and then from the parts when first asked.
    """

    stats: dict[str, Any]
    selection: Selection

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        """This model's response rows (shared ``responses.parquet`` contract; ``probs`` as dicts,
        ``persona_id`` nullable Int64), sorted by persona_id, question_id, condition_id,
        replicate; read from the checkpoint parts when first asked. Write it with
        ``schema=RESPONSE_SCHEMA``."""
        return read_selected(self.selection)


def _none_if_na(v: Any) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v


def prompt_hash(req: Request) -> str:
    """sha256 of the canonical JSON of the messages and the call parameters."""
    payload = {"messages": req.messages, "labels": req.labels, "elicitation": req.elicitation,
               "temperature": req.temperature, "max_tokens": req.max_tokens, "seed": req.seed}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def row_seed(seed: int, pid: int | None, qid: str, cond: str, rep: int) -> int:
    """Per-request sampling seed (31 bits: every OpenAI-compatible server accepts it)."""
    return derive_seed(seed, pid, qid, cond, rep) >> 32


def _check_inputs(trials: pd.DataFrame, personas: pd.DataFrame | None, instrument: Instrument) -> None:
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns and c not in CONTEXT_COLUMNS]
    if missing:
        raise UserError(f"trials: missing column(s) {', '.join(missing)}")
    known = {q.id for q in instrument.questions}
    unknown = sorted(set(trials["question_id"]) - known)
    if unknown:
        raise UserError(f"trials: question_id {unknown[0]!r} is not in instrument '{instrument.id}'")
    keys = trials[["persona_id", "question_id", "condition_id", "replicate"]]
    if keys.duplicated().any():
        first = keys[keys.duplicated()].iloc[0].tolist()
        raise UserError(f"trials: duplicate trial key (persona_id, question_id, condition_id, replicate) = {first}")
    pids = set(int(p) for p in trials["persona_id"].dropna())
    if pids:
        if personas is None or "cue" not in personas.columns:
            raise UserError("personas: needed (with a 'cue' column) for trials with a persona_id")
        absent = sorted(pids - set(int(p) for p in personas["persona_id"]))
        if absent:
            raise UserError(f"personas: persona_id {absent[0]} of the trials is not in personas.parquet")


class _Run:
    """State of one administer call (counters, limits, cache, checkpoint writer)."""

    def __init__(self, *, backend: Backend, model: ModelConfig, runner: RunnerConfig, prompt: PromptConfig,
                 instrument: Instrument, personas: pd.DataFrame | None, seed: int,
                 cache: ResponseCache | None, writer: PartWriter, progress: Progress, total: int,
                 variables: Variables | None = None) -> None:
        self.backend, self.model, self.runner, self.prompt = backend, model, runner, prompt
        self.questions: dict[str, Question] = {q.id: q for q in instrument.questions}
        self.experiments = {q.id: e for q in instrument.questions if (e := instrument.experiment_of(q.id))}
        self.seed = seed
        self.cache, self.writer, self.progress, self.total = cache, writer, progress, total
        self.cues: dict[int, str] = {}
        self.demo: dict[int, dict[str, Any]] = {}
        if personas is not None and len(personas):
            # The persona's demographic codes (what a baseline matches on): the population's variables.
            cols = list(population_of(personas, None, variables).names)
            for rec in personas[["persona_id", "cue", *cols]].to_dict("records"):
                pid = int(rec["persona_id"])
                self.cues[pid] = rec["cue"]
                self.demo[pid] = {c: _none_if_na(rec[c]) for c in cols}
        self.rpm = TokenBucket(runner.rpm) if runner.rpm else None
        self.tpm = TokenBucket(runner.tpm) if runner.tpm else None
        self.rng = random.Random(seed)  # backoff jitter only; never touches answers
        # Everything in the model config that can change an answer besides the request itself
        # (the same model name on another server may be another model).
        # A backend's `identity` (what it resolved from the config, e.g. the local dtype under
        # `auto`) stands in for the configured values: a cache entry made in bf16 is not an fp32 answer.
        self.identity: dict[str, Any] = dict(getattr(backend, "identity", None) or {})
        self.key_params = {"top_logprobs": model.top_logprobs, "api_base": model.api_base,
                           "params": {**model.params, **self.identity}}
        self.inflight: dict[str, asyncio.Future[Result]] = {}
        # Answers this run received through another channel (a batch output file, a Ray worker),
        # by cache key: served first, as this run's own calls (cost counted), then dropped.
        self.preset: dict[str, Result] = {}
        # Keys whose cache entry this run itself wrote through another channel (the batch
        # executor keeps a million answers on disk, not in `preset`): a cache hit on one of them is
        # this run's own call, not a cached row.
        self.fresh: set[str] = set()
        # The rows written by this run (row keys), and the answers of conversation turns among
        # them (a later pass continues a conversation from them); and what a pass deferred.
        self.written = KeyLog()  # compact: a million keys in about 16 MB
        self.history_rows: dict[tuple, dict[str, Any]] = {}
        self.deferred_singles: list[dict[str, Any]] = []
        self.deferred_conversations: list[_conversation.Conversation] = []
        # What an executor reports about its own work (the batch executor: batches, price source).
        self.executor_stats: dict[str, Any] = {}
        self.c = dict(rows=0, cached=0, reasked=0, calls=0, retries=0, prompt_tokens=0, completion_tokens=0, errors=0)
        # Circuit breaker: rows in a row that ended in an error; set `stopping` to stop the run.
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.stopping = False
        self.secrets: tuple[str, ...] = tuple(v for v in (getattr(backend, "_api_key", None),) if v) + known_secrets()
        # Completed rows wait here (on the loop) and are written as parts on their own thread.
        self.buf: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.part_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsurvey-parts")
        self.cost = 0.0
        self.cost_cached = 0.0
        self.t0 = time.perf_counter()
        self._last_progress = 0.0

    def key(self, req: Request) -> str:
        """The response-cache key of a request (a batch line's ``custom_id`` is this key)."""
        return cache_key(req, model=self.model.name, backend=self.model.backend, params=self.key_params)

    # -- one trial -> request ----------------------------------------------------------
    def render(self, t: dict[str, Any]) -> Request:
        from simsurvey.respondents.prompts import render_request

        pid = t["persona_id"]
        return render_request(
            cue=self.cues[pid] if pid is not None else None,
            question=self.questions[t["question_id"]],
            option_order=list(t["option_order"]),
            label_style=t["label_style"],
            prompt=self.prompt, model=self.model,
            seed=row_seed(self.seed, pid, t["question_id"], t["condition_id"], t["replicate"]),
            prefix_key=f"persona-{pid}" if pid is not None else None,
            context={"persona": self.demo.get(pid) if pid is not None else None},
            experiment=self.experiments.get(t["question_id"]), arm=t.get("arm"),
        )

    # -- calling the backend -----------------------------------------------------------
    async def call(self, reqs: list[Request]) -> list[Result]:
        """Call the backend with retries; a request that never succeeds gets an error result."""
        if not getattr(self.backend, "sends", True):  # a pass backend: nothing is sent anywhere
            return list(await self.backend.generate(reqs))
        attempt = 0
        while True:
            est = sum(estimate_tokens(r.messages, 1 if r.elicitation == "logprobs" else r.max_tokens) for r in reqs)
            if self.rpm:
                await self.rpm.acquire(len(reqs))
            if self.tpm:
                await self.tpm.acquire(est)
            self.c["calls"] += 1
            # The timeout is per request: a batch (the local backend runs a persona's questions
            # in one call) gets the time of its requests, or a slow CPU turns work into retries.
            timeout = self.runner.timeout_s * len(reqs)
            try:
                async with asyncio.timeout(timeout):
                    results = await self.backend.generate(reqs)
            except UnreachableError as err:
                # Nothing is listening: waiting does not help. The rows keep the error (a resume
                # asks them again) and the circuit breaker counts them.
                if self.tpm:
                    self.tpm.adjust(-est)
                return [Result(error=str(err) or type(err).__name__) for _ in reqs]
            except (RetryableError, TimeoutError) as err:
                if self.tpm:
                    self.tpm.adjust(-est)  # nothing was processed (as far as we can tell)
                msg = str(err) or type(err).__name__
                if isinstance(err, TimeoutError):
                    msg = f"timeout after {timeout:g} s"
                if attempt >= self.runner.max_retries:
                    return [Result(error=f"{msg} (gave up after {attempt} retries)") for _ in reqs]
                if self.stopping:
                    return [Result(error=f"{msg} (not retried: the run is stopping)") for _ in reqs]
                delay = backoff_delay(attempt, base=self.runner.backoff_base_s, cap=self.runner.backoff_max_s,
                                      rng=self.rng, retry_after=getattr(err, "retry_after", None))
                attempt += 1
                self.c["retries"] += 1
                await asyncio.sleep(delay)
                continue
            if len(results) != len(reqs):
                raise FatalBackendError(f"{self.backend.name}: returned {len(results)} results for {len(reqs)} requests")
            if self.tpm:
                used = sum((r.prompt_tokens or 0) + (r.completion_tokens or 0) for r in results)
                if used:
                    self.tpm.adjust(used - est)
            return results

    def acceptable(self, req: Request, res: Result) -> bool:
        """Whether a cached result may be served (``runner.retry: invalid`` re-asks invalid ones)."""
        return self.runner.retry != "invalid" or self.answer(req, res)[1]

    async def resolve(self, reqs: list[Request]) -> tuple[list[Result], list[bool]]:
        """Results for a batch: cache hits, shared in-flight calls, then one backend call.

        Every new answer is committed to the cache before it is returned (or shared), so no row
        is ever built on an answer a kill could lose.
        """
        n = len(reqs)
        results: list[Result | None] = [None] * n
        cached = [False] * n
        if self.cache is None:  # every call is made: no sharing (answers another channel received come first)
            if not self.preset:
                return await self.call(reqs), cached
            keys = [self.key(r) for r in reqs]
            ask = [i for i in range(n) if keys[i] not in self.preset]
            for i in range(n):
                if keys[i] in self.preset:
                    results[i] = self.preset.pop(keys[i])
            if ask:
                for i, res in zip(ask, await self.call([reqs[i] for i in ask])):
                    results[i] = res
            return results, cached  # type: ignore[return-value]
        keys = [self.key(r) for r in reqs]
        waits: dict[int, asyncio.Future[Result]] = {}
        own: list[int] = []
        loop = asyncio.get_running_loop()
        for i, k in enumerate(keys):
            if k in self.inflight:  # the same call is already on its way (or being looked up): share it
                waits[i] = self.inflight[k]
            else:
                self.inflight[k] = loop.create_future()
                own.append(i)

        def settle(i: int, res: Result) -> None:
            fut = self.inflight.pop(keys[i])
            fut.set_result(res)

        if own:
            try:
                presets = [(i, self.preset.pop(keys[i])) for i in own if keys[i] in self.preset]
                if presets:  # received through another channel: this run's calls, committed before use
                    await self.cache.aput_many([(keys[i], res) for i, res in presets])
                    for i, res in presets:
                        results[i] = res
                        settle(i, res)
                rest = [i for i in own if results[i] is None]
                hits = await self.cache.aget_many([keys[i] for i in rest]) if rest else {}
                ask: list[int] = []
                for i in rest:
                    hit = hits.get(keys[i])
                    if hit is not None and keys[i] in self.fresh:  # this run's own answer, via the cache
                        self.fresh.discard(keys[i])
                        results[i] = hit
                        settle(i, hit)
                    elif hit is not None and self.acceptable(reqs[i], hit):
                        results[i], cached[i] = hit, True
                        settle(i, hit)
                    else:
                        self.c["reasked"] += hit is not None
                        ask.append(i)
                if ask:
                    got = await self.call([reqs[i] for i in ask])
                    await self.cache.aput_many([(keys[i], res) for i, res in zip(ask, got)])
                    for i, res in zip(ask, got):
                        results[i] = res
                        settle(i, res)
            except BaseException as err:
                for i in own:
                    fut = self.inflight.pop(keys[i], None)
                    if fut is not None and not fut.done():
                        if isinstance(err, Exception):
                            fut.set_exception(err)
                            fut.exception()  # mark retrieved: waiters (if any) re-raise it
                        else:
                            fut.cancel()
                raise
        for i, fut in waits.items():
            results[i] = res = await fut
            cached[i] = res.error is None and not is_deferred(res)  # served by another row's call: no cost of its own
        return results, cached  # type: ignore[return-value]

    # -- result -> response row ----------------------------------------------------------
    def answer(self, req: Request, res: Result) -> tuple[str | None, bool, bool, str | None, dict | None, float | None]:
        """``(answer_code, valid, refusal, invalid_reason, probs, answer_value)`` of one result.

        A numeric question's text is read by :func:`~simsurvey.respondents.numeric.parse_numeric_answer`
        (``answer_value`` the number, ``answer_code`` its bin; a non-substantive answer has a code and
        no value); with logprobs only, the most probable value (``probs`` over the bins).
        ``answer_value`` is set for valid numeric answers only.
        """
        from simsurvey.respondents.parsing import parse_answer

        question = self.questions[req.context["question_id"]]
        order = list(req.context["option_order"])
        probs = None
        if res.label_probs is not None:
            probs = {code: float(p) for code, p in zip(order, res.label_probs)}
        if res.error is not None:
            return None, False, False, "error", probs, None
        if question.kind == "numeric":
            return self._numeric(req, res, question, order, probs)
        if req.elicitation in ("sample", "both") or (question.kind == "multi_select" and res.text is not None):
            # A multi_select answer is a set: only text says which (baselines give text too).
            parsed = parse_answer(res.text, question, order, req.labels)
            return parsed.code, parsed.valid, parsed.refusal, parsed.kind, probs, None
        if probs is not None and question.kind != "multi_select":
            best = order[max(range(len(order)), key=lambda i: (res.label_probs[i], -i))]  # type: ignore[index]
            return best, True, False, None, probs, None
        return None, False, False, "no_mass_on_options" if probs is None else "unparseable", probs, None

    @staticmethod
    def _numeric(req: Request, res: Result, question: Question, order: list[str],
                 probs: dict | None) -> tuple[str | None, bool, bool, str | None, dict | None, float | None]:
        from simsurvey.respondents.numeric import parse_numeric_answer

        if req.elicitation in ("sample", "both") or res.text is not None:
            parsed = parse_numeric_answer(res.text, question)
            value = parsed.value if parsed.valid else None
            return parsed.code, parsed.valid, parsed.refusal, parsed.kind, probs, value
        if probs is not None and res.label_probs:
            # Labels are the scale's values, one bin each (logprob_labels): the most probable value.
            i = max(range(len(order)), key=lambda j: (res.label_probs[j], -j))  # type: ignore[index]
            return order[i], True, False, None, probs, float(req.labels[i])
        return None, False, False, "no_mass_on_options" if probs is None else "unparseable", probs, None

    def row(self, t: dict[str, Any], req: Request, res: Result, cached: bool) -> dict[str, Any]:
        from simsurvey.respondents.parsing import render_top_tokens

        order = list(t["option_order"])
        answer, valid, refusal, reason, probs, value = self.answer(req, res)
        # What came back, readable: the generated text, else (logprob elicitation) the top tokens.
        raw = res.text
        if raw is None and res.top_tokens:
            raw = render_top_tokens(res.top_tokens)
        if raw is None:
            raw = res.extra.get("first_token")
        error = scrub(res.error, self.secrets) if res.error is not None else None
        cost = res.cost_usd
        if cached:
            self.cost_cached += cost or 0.0
            cost = 0.0
        else:
            self.cost += cost or 0.0
            self.c["prompt_tokens"] += res.prompt_tokens or 0
            self.c["completion_tokens"] += res.completion_tokens or 0
        self.c["rows"] += 1
        self.c["cached"] += cached
        return {
            **{k: t[k] for k in TRIAL_COLUMNS},
            "option_order": order,
            "model": self.model.name,
            "backend": self.model.backend,
            "elicitation": req.elicitation,
            "prompt_hash": prompt_hash(req),
            "raw_text": raw,
            "answer_code": answer,
            "answer_value": value,  # numeric questions: the answer on the raw scale
            "valid": valid,
            "refusal": refusal,
            "invalid_reason": reason,
            "probs": probs,
            "missing_mass": res.missing_mass,
            "latency_s": float(res.latency_s),
            "prompt_tokens": res.prompt_tokens,
            "completion_tokens": res.completion_tokens,
            "cost_usd": cost,
            "cached": cached,
            "error": error,
        }

    async def work(self, batch: list[dict[str, Any]], reqs: list[Request] | None = None) -> list[Result]:
        """Ask a batch of trials (rendered here unless ``reqs`` is given) and buffer their rows."""
        reqs = reqs if reqs is not None else [self.render(t) for t in batch]
        results, cached = await self.resolve(reqs)
        for t, req, res, hit in zip(batch, reqs, results, cached):
            if is_deferred(res):  # answered in a later pass: handed back (a conversation hands back itself)
                if not _conversation.in_conversation(t):
                    self.deferred_singles.append(t)
                continue
            row = self.row(t, req, res, hit)
            self.buf.append(row)
            key = row_key(row)
            self.written.add(key)
            if res.error is None and _conversation.in_conversation(t):
                self.history_rows[key] = {"raw_text": row["raw_text"], "answer_code": row["answer_code"]}
            if res.error is None:
                self.consecutive_failures = 0
                continue
            self.c["errors"] += 1
            self.consecutive_failures += 1
            self.last_error = res.error
            # Baselines make no calls: their errors (no reference answer for a question) are
            # facts of the data, not a failing server.
            limit = 0 if self.model.backend.startswith("baseline/") else self.runner.max_consecutive_failures
            if limit and self.consecutive_failures >= limit:
                self.stopping = True
        if len(self.buf) >= self.runner.flush_every:
            await self.flush_parts()
        now = time.perf_counter()
        if now - self._last_progress > 0.2:
            self._last_progress = now
            self.progress.update(self.c["rows"], rate=self.c["rows"] / max(now - self.t0, 1e-9),
                                 tokens=self.c["prompt_tokens"] + self.c["completion_tokens"], cost=self.cost)
        return results

    # -- checkpoint parts, written off the event loop ----------------------------------
    def _write(self, rows: list[dict[str, Any]]) -> None:
        """On the part-writer thread: the one place the PartWriter is used."""
        for r in rows:
            self.writer.add(r)
        self.writer.flush()

    def _take(self) -> list[dict[str, Any]]:
        rows, self.buf = self.buf, []
        self.last_flush = time.monotonic()
        return rows

    def flush_due(self) -> bool:
        return bool(self.buf) and time.monotonic() - self.last_flush >= self.runner.flush_seconds

    async def flush_parts(self) -> None:
        """Write the buffered rows as a part on the part-writer thread."""
        rows = self._take()  # taken on the loop: rows added meanwhile go to the next part
        if rows:
            await asyncio.wrap_future(self.part_thread.submit(self._write, rows))

    def flush_parts_now(self) -> None:
        """Write the buffered rows and wait (end of run; after any write still in progress)."""
        try:
            self.part_thread.submit(self._write, self._take()).result()
        finally:
            self.part_thread.shutdown(wait=True)

    def stats(self, rows: dict[str, int], *, resumed: int) -> dict[str, Any]:
        """``rows``: the counts over the model's rows (:meth:`Selection.stats`), then the calls,
        tokens and cost of this run only."""
        secs = time.perf_counter() - self.t0
        c = self.c
        return {
            **{k: rows[k] for k in ("rows", "valid", "invalid", "refusals", "errors")},
            "new_rows": c["rows"],
            "resumed_rows": resumed,
            "cached": c["cached"],
            "reasked": c["reasked"],
            "calls": c["calls"],
            "retries": c["retries"],
            "prompt_tokens": c["prompt_tokens"],
            "completion_tokens": c["completion_tokens"],
            "cost_usd": round(self.cost, 6),
            "cost_usd_cached_original": round(self.cost_cached, 6),
            "seconds": round(secs, 3),
            "requests_per_s": round(c["rows"] / secs, 2) if secs > 0 else None,
            **({"backend_identity": self.identity} if self.identity else {}),
            **self.executor_stats,
        }


def _persona_chunks(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive records in chunks of at least ``size`` (the last may be smaller), a persona's
    records never split across two chunks (they share a prompt prefix and a conversation)."""
    chunk: list[dict[str, Any]] = []
    for t in records:
        if len(chunk) >= size and (t["persona_id"] is None or t["persona_id"] != chunk[-1]["persona_id"]):
            yield chunk
            chunk = []
        chunk.append(t)
    if chunk:
        yield chunk


def _chunk_bounds(persona_ids: pd.Series, size: int) -> list[tuple[int, int]]:
    """Row ranges of the trials table in chunks of at least ``size`` trials (the last may be
    smaller), a persona never split: :func:`_persona_chunks` on the table, without its dicts."""
    n = len(persona_ids)
    none = persona_ids.isna().to_numpy(dtype=bool)
    pid = pd.array(persona_ids, dtype="Int64").fillna(-1).to_numpy("int64")
    # A chunk may end before row i when row i starts a new persona (or is a no-persona row).
    starts = np.flatnonzero(none[1:] | (pid[1:] != pid[:-1])) + 1
    bounds, lo = [], 0
    for i in starts.tolist():
        if i - lo >= size:
            bounds.append((lo, i))
            lo = i
    if lo < n:
        bounds.append((lo, n))
    return bounds


def _records(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """A chunk of the trials table as the runner's trial dicts (Python scalars, None for NA).

    Column by column (no per-cell ``pd.isna``): this runs on the event loop once per chunk.
    """
    cols = [c for c in TRIAL_COLUMNS if c in trials.columns and c not in CONTEXT_COLUMNS]
    values: dict[str, list[Any]] = {}
    for c in cols:
        if c == "persona_id":
            values[c] = [None if v is pd.NA else int(v) for v in pd.array(trials[c], dtype="Int64").tolist()]
        elif c == "replicate":
            values[c] = trials[c].astype("int64").tolist()
        elif c == "neutral_option":
            values[c] = trials[c].astype(bool).tolist()
        else:
            values[c] = trials[c].tolist()
    n = len(trials)
    for c in CONTEXT_COLUMNS:
        if c not in trials.columns:
            values[c] = [None] * n
        elif c.endswith("_position"):
            values[c] = [None if v is pd.NA else int(v) for v in pd.array(trials[c], dtype="Int64").tolist()]
        else:
            values[c] = [None if v is None or v is pd.NA or v != v else str(v)  # noqa: PLR0124 - NaN
                         for v in trials[c].astype(object).tolist()]
    names = list(values)
    return [dict(zip(names, row)) for row in zip(*values.values())]


def _key_columns(trials: pd.DataFrame) -> tuple[pd.Series, ...]:
    return trials["persona_id"], trials["question_id"], trials["condition_id"], trials["replicate"]


def _in_conversation(trials: pd.DataFrame) -> np.ndarray:
    """:func:`_conversation.in_conversation` of each trial, vectorized."""
    if "question_position" not in trials.columns:
        return np.zeros(len(trials), dtype=bool)
    return (trials["persona_id"].notna() & trials["question_position"].notna()).to_numpy(dtype=bool)


def _count_pending(trials: pd.DataFrame, final: np.ndarray, conv: np.ndarray) -> int:
    """Trials still to ask at the start: ordinary trials without a final row, and every turn of a
    conversation from its first turn without one (what the chunks will hold)."""
    todo = int((~final & ~conv).sum())
    if conv.any():
        turns = pd.DataFrame({"p": trials["persona_id"].to_numpy()[conv], "r": trials["replicate"].to_numpy()[conv],
                              "q": trials["question_position"].to_numpy()[conv], "f": final[conv]})
        turns = turns.sort_values(["p", "r", "q"], kind="stable")
        leading = turns.groupby(["p", "r"], sort=False)["f"].cumprod().astype(bool)
        todo += int((~leading).sum())
    return todo


def _plan(records: list[dict[str, Any]], final: np.ndarray, history: Mapping[tuple, dict[str, Any]],
          written: KeyLog, model: str) -> Pending:
    """The trials of ``records`` still to ask: not final in an earlier run (``final``, aligned
    with ``records``) and not written by this one; conversations from their first turn without an
    answer (``history``: the earlier runs' final turns and this run's answered ones), unless this
    run wrote that turn already (an error: the next run asks it again)."""
    todo = [t for t, f in zip(records, final) if not f or _conversation.in_conversation(t)]
    singles, conversations = _conversation.plan(todo, history, model)
    fresh = ~written.contains_keys([_conversation._key(t, model) for t in singles])
    starts = ~written.contains_keys([_conversation._key(c.turns[c.start], model) for c in conversations])
    return Pending([t for t, ok in zip(singles, fresh) if ok], [c for c, ok in zip(conversations, starts) if ok])


async def administer_async(
    trials: pd.DataFrame,
    personas: pd.DataFrame | None,
    instrument: Instrument,
    *,
    model: ModelConfig,
    prompt: PromptConfig,
    runner: RunnerConfig,
    run_dir: Path,
    seed: int,
    reference: pd.DataFrame | None = None,
    progress: bool = True,
    backend: Backend | None = None,
    variables: Variables | None = None,
    frame: bool = True,
) -> AdministerResult:
    """Administer the design trials to one model (async core of :func:`administer`).

    Args:
        trials: Design trials (shared contract: persona_id, question_id, condition_id,
            replicate, order_mode, label_style, neutral_option, cue_style, option_order).
        personas: ``personas.parquet`` rows (persona_id, cue, demographics); None when every
            trial is a no_persona control.
        instrument: The instrument the questions come from.
        model: The respondent (``model:`` config).
        prompt: Prompt templates.
        runner: Concurrency, limits, retries, cache and checkpoint settings.
        run_dir: Run directory; checkpoint parts go to ``parts/responses/<model-slug>/``.
        seed: Seed of this model's sampling (per-row seeds derive from it and the row key).
        reference: Human reference rows, for the majority / reference baselines.
        progress: Draw a progress bar (also off under CI or without a terminal).
        backend: A ready backend instance (tests, benchmarks); default ``make_backend(model)``.
        variables: The population's variables (the persona codes a baseline matches on); read
            off the personas without them.
        frame: Read the rows into ``result.frame`` before returning (the library default). The
            pipeline passes False: it streams ``responses.parquet`` from the parts
            (``result.selection``) and never holds every row; ``result.frame`` is then read from
            the parts when first asked, while they exist.

    Returns:
        The response rows and run statistics.

    Raises:
        UserError: bad trials/personas, a backend that cannot be built, a fatal backend error
            (bad credentials, unknown model), or a cache that cannot be used
            (:class:`~simsurvey.respondents.cache.CacheError`).
        RunFailedError: the circuit breaker stopped the run (``runner.max_consecutive_failures``
            rows in a row failed); the rows done are checkpointed and a resume asks the rest.
        KeyboardInterrupt: on Ctrl-C / SIGTERM, after the completed rows were checkpointed.
    """
    _check_inputs(trials, personas, instrument)
    if model.elicitation == "logprobs" and not model.backend.startswith("baseline/"):
        multi = sorted(set(trials["question_id"]) & {q.id for q in instrument.questions if q.kind == "multi_select"})
        if multi:
            raise UserError(f"model.elicitation: 'logprobs' cannot answer multi_select question '{multi[0]}' "
                            "(a set is not one next token); use sample or both")
    if model.elicitation in ("logprobs", "both") and not model.backend.startswith("baseline/"):
        from simsurvey.respondents.numeric import logprob_labels

        asked = set(trials["question_id"])
        wide = [q for q in instrument.questions if q.id in asked and q.kind == "numeric" and logprob_labels(q) is None]
        if wide:
            q = wide[0]
            raise UserError(
                f"model.elicitation: '{model.elicitation}' cannot answer numeric question '{q.id}' (a "
                f"{q.scale.min:g}-{q.scale.max:g} scale is not one next token per value; logprobs read whole-number "
                "scales of at most 11 values with default bins); use sample")
    run_dir = Path(run_dir)
    part_dir = run_dir / "parts" / "responses" / model_slug(model.name)
    # A failed row is never final: only answered rows (and, for retry=invalid, valid ones) are done.
    # The parts are read by column projection into compact keys (never a frame of every row).
    valid_only = runner.retry == "invalid"
    prior = await asyncio.to_thread(done_keys, part_dir, valid_only=valid_only)
    wanted = KeySet.of(*_key_columns(trials), model.name)  # the design's keys: its rows make the result
    final = prior.contains(*_key_columns(trials), model.name)
    conv = _in_conversation(trials)
    # Sequential designs: conversations are asked turn by turn from their first unfinished turn
    # (simsurvey.runner._conversation), rebuilt from the final turns' raw_text / answer_code.
    prior_rows = await asyncio.to_thread(final_rows, part_dir, valid_only=valid_only) if conv.any() else {}
    pending = _count_pending(trials, final, conv)
    bounds = _chunk_bounds(trials["persona_id"], runner.chunk_size)
    executor = "local" if model.backend.startswith("baseline/") else runner.executor  # baselines are free, in-process
    drive = executor_drive(executor)  # an executor whose package is missing: one line, before anything starts

    if backend is None:
        from simsurvey.respondents.registry import make_backend

        backend = make_backend(model, seed=seed, reference=reference, variables=variables)
    # Baselines are not cached: they cost nothing, and their answers depend on the reference
    # data, which is not part of a cache key.
    use_cache = runner.cache and not model.backend.startswith("baseline/")
    warm_up = getattr(backend, "warm_up", None)
    if warm_up is not None and pending:
        await asyncio.to_thread(warm_up)  # import litellm, read a price map: never on the loop
    # The runner decides when a part is written (on its own thread): the writer never flushes on add.
    writer = PartWriter(part_dir, flush_every=2**62, flush_seconds=float("inf"))
    cache = None
    if use_cache and pending:
        cache = await asyncio.to_thread(ResponseCache.open, runner.cache_dir, busy_timeout_s=runner.cache_busy_timeout_s)
    bar = Progress(model.name, pending, enabled=progress_enabled(progress) and bool(pending))
    state = _Run(backend=backend, model=model, runner=runner, prompt=prompt, instrument=instrument,
                 personas=personas, seed=seed, cache=cache, writer=writer, progress=bar, total=pending,
                 variables=variables)

    history = ChainMap(state.history_rows, prior_rows)

    def chunks() -> Iterator[Pending]:
        # Done: earlier runs' final rows and every row of this run (an error row of this run waits
        # for the next run, as before); a conversation goes on from this run's answered turns.
        # Only the current and the next chunk's trials are ever dicts (a chunk whose trials are
        # all done costs none); the next one is made on a thread while this one is asked, so a
        # big chunk's dicts never stall the event loop.
        todo = [(lo, hi) for lo, hi in bounds if not final[lo:hi].all()]
        if not todo:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsurvey-chunks")
        try:
            ahead = pool.submit(_records, trials.iloc[todo[0][0]:todo[0][1]])
            for i, (lo, hi) in enumerate(todo):
                records = ahead.result()
                if i + 1 < len(todo):
                    ahead = pool.submit(_records, trials.iloc[todo[i + 1][0]:todo[i + 1][1]])
                work = _plan(records, final[lo:hi], history, state.written, model.name)
                del records
                if work:
                    yield work
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    ctx = ExecutorContext(state=state, backend=backend, model=model, runner=runner, run_dir=run_dir,
                          part_dir=part_dir, progress=progress_enabled(progress), secrets=state.secrets, plan=chunks)

    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    terminated = False

    def _on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if me is not None:
            me.cancel()

    sigterm = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.getsignal(signal.SIGTERM) if sigterm else None
    if sigterm:
        try:
            loop.add_signal_handler(signal.SIGTERM, _on_sigterm)
        except (NotImplementedError, RuntimeError):  # not Unix, or not the main thread's loop
            sigterm = False

    async def ticker() -> None:
        while True:
            await asyncio.sleep(min(runner.flush_seconds, 1.0))
            if state.flush_due():
                await state.flush_parts()

    tick = asyncio.create_task(ticker())
    try:
        if pending:
            await drive(ctx)
    except FatalBackendError as err:
        line = str(err).splitlines()[0] if str(err) else type(err).__name__
        # A backend's message may name the model already ("openai/x: HTTP 401 ..."): name it once.
        raise UserError(f"model: {model.name}: {line.removeprefix(f'{model.name}: ')}") from None
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
        try:
            state.flush_parts_now()  # completed rows survive an interrupt or a fatal error
        finally:
            if cache is not None:
                cache.close()
            bar.update(state.c["rows"], rate=state.c["rows"] / max(time.perf_counter() - state.t0, 1e-9),
                       tokens=state.c["prompt_tokens"] + state.c["completion_tokens"], cost=state.cost)
            bar.close()
            if sigterm:
                loop.remove_signal_handler(signal.SIGTERM)
                signal.signal(signal.SIGTERM, previous_sigterm)  # the caller's handler, not SIG_DFL
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                await aclose()

    # The model's rows are selected from the parts by column projection; the frame is read only
    # when asked for (AdministerResult.frame), the pipeline streams responses.parquet from this.
    selection = await asyncio.to_thread(select_rows, part_dir, wanted)
    stats = state.stats(selection.stats(), resumed=len(trials) - pending)
    if state.stopping:
        last = scrub(str(state.last_error).splitlines()[0][:300], state.secrets)
        raise RunFailedError(
            f"{model.name}: stopped after {state.consecutive_failures} calls in a row failed "
            f"(runner.max_consecutive_failures={runner.max_consecutive_failures}); last error: {last}; "
            f"{stats['rows'] - stats['errors']} of {len(trials)} rows answered, {stats['errors']} failed, "
            f"{len(trials) - stats['rows']} not asked",
            failed_rows=len(trials) - (stats["rows"] - stats["errors"]), stats=stats)
    result = AdministerResult(stats=stats, selection=selection)
    if frame:  # read now: the caller may remove the run directory before it looks at the rows
        await asyncio.to_thread(lambda: result.frame)
    return result


def administer(
    trials: pd.DataFrame,
    personas: pd.DataFrame | None,
    instrument: Instrument,
    *,
    model: ModelConfig,
    prompt: PromptConfig,
    runner: RunnerConfig,
    run_dir: Path,
    seed: int,
    reference: pd.DataFrame | None = None,
    progress: bool = True,
    backend: Backend | None = None,
    variables: Variables | None = None,
    frame: bool = True,
) -> AdministerResult:
    """Administer the design trials to one model; see :func:`administer_async` (same arguments).

    Raises:
        RuntimeError: when called from a running event loop (await ``administer_async`` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("administer() cannot run inside an event loop; await administer_async(...) instead")
    return asyncio.run(administer_async(
        trials, personas, instrument, model=model, prompt=prompt, runner=runner, run_dir=run_dir,
        seed=seed, reference=reference, progress=progress, backend=backend, variables=variables, frame=frame,
    ))


