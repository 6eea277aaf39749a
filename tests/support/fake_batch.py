"""A fake batch server for tests and benchmarks: OpenAI files + batches, Anthropic Message Batches.

OpenAI endpoints (under ``/v1``): ``POST /files`` (multipart upload, ``purpose=batch``),
``GET /files/{id}``, ``GET /files/{id}/content``, ``POST /batches``, ``GET /batches/{id}``,
``POST /batches/{id}/cancel``. A batch moves ``validating -> in_progress -> finalizing ->`` its
outcome, one step every ``polls_per_status`` retrievals (``hold=True`` keeps it in progress: a
kill test's window). Outcomes, in order of creation (``outcomes``; later batches ``completed``):

* ``completed`` — every line answered in the output file, except per-line faults (below);
* ``failed`` — the whole batch fails validation (``errors``), no output;
* ``expired`` — the first ``expire_fraction`` of the lines are answered, the rest are in the
  error file with ``batch_expired``.

Per-line faults, on a key's first submission only (so a resubmission succeeds), by custom_id
(``line_faults``) or by seeded fraction (``line_rates``): ``error`` (a 500 in the error file), ``400`` (a content filter's 400
in the error file: that row's own error, not resubmitted),
``missing`` (the line is absent from both files), ``malformed`` (a truncated, unparseable output
line), ``badbody`` (a parseable line whose body has no choices).

Anthropic endpoints: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``GET /v1/messages/batches/{id}/results`` (JSONL), ``POST /v1/messages/batches/{id}/cancel``;
``processing_status`` goes ``in_progress -> ended`` after ``polls_per_status`` retrievals.

Answers are computed from the request body by :meth:`fake_openai.FakeOpenAI.completion` (the
same answers the sync fake gives). Every submission is counted per custom_id
(:attr:`FakeBatch.submissions`) so tests can assert no call was submitted twice; with ``api_key``
set, a request without ``Authorization: Bearer <key>`` (or ``x-api-key``) gets a 401.

Run standalone (benchmarks, in its own process)::

    python tests/support/fake_batch.py --polls-per-status 2   # prints "PORT <n>" then serves
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_openai import CONTENT_FILTER, FakeOpenAI

STEPS = ("validating", "in_progress", "finalizing")
LINE_FAULTS = ("ok", "error", "400", "missing", "malformed", "badbody")


@dataclass
class Batch:
    """One batch the server holds."""

    id: str
    input_file_id: str
    outcome: str
    created_at: int
    n: int
    polls: int = 0
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    cancelled: bool = False
    kind: str = "openai"
    results: bytes = b""
    requests: list[dict] = field(default_factory=list)


@dataclass
class FakeBatch:
    """Configurable fake batch server state.

    Attributes:
        polls_per_status: Retrievals a batch spends in each status before the next.
        hold: Keep every batch in ``in_progress`` (until set back to False).
        outcomes: Outcome of the n-th batch created (``completed``, ``failed``, ``expired``).
        expire_fraction: Share of an expired batch's lines that were answered.
        line_faults: custom_id -> fault kind (first submission of that key only).
        line_rates: fault kind -> fraction of lines (first submission only; seeded by the key).
        api_key: When set, the key every request must carry.
        reject_files: Answer uploads with a 400 (a file the provider refuses).
        seed: Seed of the fraction draws.
    """

    polls_per_status: int = 1
    hold: bool = False
    outcomes: list[str] = field(default_factory=list)
    expire_fraction: float = 0.5
    line_faults: dict[str, str] = field(default_factory=dict)
    line_rates: dict[str, float] = field(default_factory=dict)
    api_key: str | None = None
    reject_files: bool = False
    seed: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    #: custom_id -> how many times it was submitted in a batch.
    submissions: Counter = field(default_factory=Counter)
    #: Authorization / x-api-key headers seen (tests check where the key went).
    auth_seen: list[str] = field(default_factory=list)
    answers: FakeOpenAI = field(default_factory=FakeOpenAI)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests read -----------------------------------------------------------------
    def duplicates(self) -> dict[str, int]:
        """custom_ids submitted more than once."""
        return {k: n for k, n in self.submissions.items() if n > 1}

    # -- helpers ---------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{len(self.files) + len(self.batches):06d}{hashlib.sha1(str(time.time_ns()).encode()).hexdigest()[:6]}"

    def _authorized(self, request: web.Request) -> bool:
        seen = request.headers.get("Authorization") or request.headers.get("x-api-key") or ""
        self.auth_seen.append(seen)
        if self.api_key is None:
            return True
        return seen in (f"Bearer {self.api_key}", self.api_key)

    @staticmethod
    def _unauthorized() -> web.Response:
        return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                            "code": "invalid_api_key"}}, status=401)

    def _fault(self, custom_id: str) -> str:
        if self.submissions[custom_id] > 1:
            return "ok"
        if custom_id in self.line_faults:
            return self.line_faults[custom_id]
        if self.line_rates:
            u = int.from_bytes(hashlib.sha256(f"{self.seed}:{custom_id}".encode()).digest()[:8], "little") / 2**64
            acc = 0.0
            for kind, rate in self.line_rates.items():
                acc += rate
                if u < acc:
                    return kind
        return "ok"

    def _outcome(self) -> str:
        i = len(self.batches)
        return self.outcomes[i] if i < len(self.outcomes) else "completed"

    def _advance(self, b: Batch) -> None:
        """One retrieval: move the status on; compute the files when the batch ends."""
        if b.status in ("completed", "failed", "expired", "cancelled") or self.hold:
            return
        b.polls += 1
        if b.polls < self.polls_per_status:
            return
        b.polls = 0
        if b.cancelled:
            b.status = "cancelled"
            return
        if b.status == "validating" and b.outcome == "failed":
            b.status = "failed"
            return
        nxt = STEPS.index(b.status) + 1
        if nxt < len(STEPS):
            b.status = STEPS[nxt]
            return
        self._finish(b)

    def _finish(self, b: Batch) -> None:
        out: list[bytes] = []
        err: list[bytes] = []
        cut = int(b.n * self.expire_fraction) if b.outcome == "expired" else b.n
        for i, line in enumerate(self.files[b.input_file_id].splitlines()):
            if not line.strip():
                continue
            req = json.loads(line)
            cid = req["custom_id"]
            if i >= cut:
                err.append(_dumps({"id": f"batch_req_{i}", "custom_id": cid, "response": None, "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired."}}))
                continue
            kind = self._fault(cid)
            if kind == "missing":
                continue
            if kind in ("error", "400"):
                status, message = (500, "The server had an error") if kind == "error" else (400, CONTENT_FILTER)
                err.append(_dumps({"id": f"batch_req_{i}", "custom_id": cid, "response": {
                    "status_code": status, "request_id": f"req_{i}",
                    "body": {"error": {"message": message, "type": "server_error"}}}, "error": None}))
                continue
            body = self.answers.completion(req["body"])
            if kind == "badbody":
                body = {"id": "chatcmpl-fake", "object": "chat.completion", "choices": []}
            text = _dumps({"id": f"batch_req_{i}", "custom_id": cid, "response": {
                "status_code": 200, "request_id": f"req_{i}", "body": body}, "error": None})
            out.append(text[: len(text) // 2] if kind == "malformed" else text)
        if out:
            b.output_file_id = self._store(b"\n".join(out) + b"\n")
        if err:
            b.error_file_id = self._store(b"\n".join(err) + b"\n")
        b.status = "expired" if b.outcome == "expired" else "completed"

    def _store(self, data: bytes) -> str:
        fid = self._new_id("file")
        self.files[fid] = data
        return fid

    def _counts(self, b: Batch) -> dict[str, int]:
        if b.status == "completed" or b.status == "expired":
            done = b.n if b.status == "completed" else int(b.n * self.expire_fraction)
            return {"total": b.n, "completed": done, "failed": b.n - done}
        if b.status in ("in_progress", "finalizing"):
            return {"total": b.n, "completed": b.n // 2 if b.status == "finalizing" else 0, "failed": 0}
        return {"total": b.n if b.status != "failed" else 0, "completed": 0, "failed": 0}

    def _batch_json(self, b: Batch) -> dict[str, Any]:
        return {
            "id": b.id, "object": "batch", "endpoint": "/v1/chat/completions",
            "errors": ({"object": "list", "data": [{"code": "invalid_request", "line": 1,
                                                    "message": "The batch failed validation.", "param": None}]}
                       if b.status == "failed" else None),
            "input_file_id": b.input_file_id, "completion_window": "24h", "status": b.status,
            "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
            "created_at": b.created_at, "in_progress_at": None, "expires_at": b.created_at + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None, "request_counts": self._counts(b), "metadata": {},
        }

    # -- OpenAI handlers ---------------------------------------------------------------------
    async def upload(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        data = b""
        purpose = None
        filename = "input.jsonl"
        async for part in (await request.multipart()):
            if part.name == "file":
                filename = part.filename or filename
                data = bytes(await part.read(decode=False))
            elif part.name == "purpose":
                purpose = (await part.text()).strip()
        if self.reject_files:
            return web.json_response({"error": {"message": "Invalid file format for Batch API. Must be .jsonl",
                                                "type": "invalid_request_error"}}, status=400)
        with self.lock:
            fid = self._store(data)
        return web.json_response({"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                  "filename": filename, "purpose": purpose or "batch", "status": "processed"})

    async def file_info(self, request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        if fid not in self.files:
            return web.json_response({"error": {"message": f"No such File object: {fid}"}}, status=404)
        return web.json_response({"id": fid, "object": "file", "bytes": len(self.files[fid]),
                                  "created_at": 0, "filename": f"{fid}.jsonl", "purpose": "batch"})

    async def file_content(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        fid = request.match_info["fid"]
        if fid not in self.files:
            return web.json_response({"error": {"message": f"No such File object: {fid}"}}, status=404)
        return web.Response(body=self.files[fid], content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        body = await request.json()
        fid = body.get("input_file_id")
        if fid not in self.files:
            return web.json_response({"error": {"message": f"No such File object: {fid}"}}, status=400)
        with self.lock:
            lines = [json.loads(x) for x in self.files[fid].splitlines() if x.strip()]
            for line in lines:
                self.submissions[line["custom_id"]] += 1
            b = Batch(id=self._new_id("batch"), input_file_id=fid, outcome=self._outcome(),
                      created_at=int(time.time()), n=len(lines))
            self.batches[b.id] = b
        return web.json_response(self._batch_json(b))

    async def list_batches(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        data = [self._batch_json(b) for b in reversed(list(self.batches.values())) if b.kind == "openai"]
        return web.json_response({"object": "list", "data": data, "first_id": None, "last_id": None,
                                  "has_more": False})

    async def retrieve(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        b = self.batches.get(request.match_info["bid"])
        if b is None or b.kind != "openai":
            return web.json_response({"error": {"message": "No such batch"}}, status=404)
        with self.lock:
            self._advance(b)
        return web.json_response(self._batch_json(b))

    async def cancel(self, request: web.Request) -> web.Response:
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"error": {"message": "No such batch"}}, status=404)
        b.cancelled = True
        if b.status not in ("completed", "failed", "expired"):
            b.status = "cancelling"
        return web.json_response(self._batch_json(b))

    # -- Anthropic handlers --------------------------------------------------------------------
    async def a_create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "invalid x-api-key"}}, status=401)
        body = await request.json()
        reqs = body.get("requests") or []
        with self.lock:
            for r in reqs:
                self.submissions[r["custom_id"]] += 1
            b = Batch(id=self._new_id("msgbatch"), input_file_id="", outcome=self._outcome(),
                      created_at=int(time.time()), n=len(reqs), status="in_progress", kind="anthropic", requests=reqs)
            self.batches[b.id] = b
        return web.json_response(self._a_json(b, request))

    def _a_finish(self, b: Batch) -> None:
        lines: list[bytes] = []
        cut = int(b.n * self.expire_fraction) if b.outcome == "expired" else b.n
        for i, r in enumerate(b.requests):
            cid, params = r["custom_id"], r["params"]
            kind = self._fault(cid)
            if i >= cut:
                lines.append(_dumps({"custom_id": cid, "result": {"type": "expired"}}))
                continue
            if kind == "missing":
                continue
            if kind == "error":
                lines.append(_dumps({"custom_id": cid, "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": "api_error", "message": "Internal server error"}}}}))
                continue
            msgs = ([{"role": "system", "content": params["system"]}] if params.get("system") else []) + params["messages"]
            chat = self.answers.completion({"messages": msgs})
            text = chat["choices"][0]["message"]["content"]
            usage = chat["usage"]
            msg = {"id": f"msg_{i}", "type": "message", "role": "assistant", "model": params.get("model"),
                   "content": [{"type": "text", "text": text}] if kind != "badbody" else None,
                   "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]}}
            line = _dumps({"custom_id": cid, "result": {"type": "succeeded", "message": msg}})
            lines.append(line[: len(line) // 2] if kind == "malformed" else line)
        b.results = b"\n".join(lines) + b"\n"
        b.status = "ended"

    def _a_json(self, b: Batch, request: web.Request) -> dict[str, Any]:
        ended = b.status == "ended"
        counts = {"processing": 0 if ended else b.n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            for line in b.results.splitlines():
                try:
                    counts[{"succeeded": "succeeded", "errored": "errored", "canceled": "canceled",
                            "expired": "expired"}[json.loads(line)["result"]["type"]]] += 1
                except (ValueError, KeyError):
                    counts["succeeded"] += 1
        base = f"http://{request.host}"
        return {"id": b.id, "type": "message_batch", "processing_status": b.status, "request_counts": counts,
                "ended_at": None, "created_at": "2026-12-01T00:00:00Z", "expires_at": "2026-12-02T00:00:00Z",
                "cancel_initiated_at": None,
                "results_url": f"{base}/v1/messages/batches/{b.id}/results" if ended else None}

    async def a_retrieve(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "invalid x-api-key"}}, status=401)
        b = self.batches.get(request.match_info["bid"])
        if b is None or b.kind != "anthropic":
            return web.json_response({"type": "error", "error": {"type": "not_found_error"}}, status=404)
        with self.lock:
            if b.status != "ended" and not self.hold:
                b.polls += 1
                if b.polls >= self.polls_per_status:
                    self._a_finish(b)
        return web.json_response(self._a_json(b, request))

    async def a_results(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"type": "error"}, status=401)
        b = self.batches.get(request.match_info["bid"])
        if b is None or b.status != "ended":
            return web.json_response({"type": "error", "error": {"type": "not_found_error"}}, status=404)
        return web.Response(body=b.results, content_type="application/x-jsonl")

    async def a_cancel(self, request: web.Request) -> web.Response:
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"type": "error"}, status=404)
        b.cancelled = True
        return web.json_response(self._a_json(b, request))

    def app(self) -> web.Application:
        app = web.Application(client_max_size=2**31)
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/files", self.upload)
            app.router.add_get(f"{prefix}/files/{{fid}}", self.file_info)
            app.router.add_get(f"{prefix}/files/{{fid}}/content", self.file_content)
            app.router.add_post(f"{prefix}/batches", self.create)
            app.router.add_get(f"{prefix}/batches", self.list_batches)
            app.router.add_get(f"{prefix}/batches/{{bid}}", self.retrieve)
            app.router.add_post(f"{prefix}/batches/{{bid}}/cancel", self.cancel)
        app.router.add_post("/v1/messages/batches", self.a_create)
        app.router.add_get("/v1/messages/batches/{bid}", self.a_retrieve)
        app.router.add_get("/v1/messages/batches/{bid}/results", self.a_results)
        app.router.add_post("/v1/messages/batches/{bid}/cancel", self.a_cancel)
        # The sync endpoint too: a sync run and a batch run with the same api_base share cache keys.
        app.router.add_post("/v1/chat/completions", self.answers.handle)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/control", self.control)
        return app

    # -- a standalone server's test hooks (benchmarks run it in its own process) ----------------
    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"submitted": sum(self.submissions.values()), "unique": len(self.submissions),
                                  "duplicates": len(self.duplicates()), "batches": len(self.batches)})

    async def control(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "hold" in body:
            self.hold = bool(body["hold"])
        return web.json_response({"hold": self.hold})


def run_batch_file(fake: FakeBatch, src: Path, dest: Path) -> None:
    """What ``vllm run-batch -i src -o dest`` does, with the fake's answers (the file provider's tests)."""
    out = []
    for raw in src.read_bytes().splitlines():
        if raw.strip():
            req = json.loads(raw)
            out.append(_dumps({"id": "vllm-x", "custom_id": req["custom_id"], "response": {
                "status_code": 200, "request_id": "vllm-x", "body": fake.answers.completion(req["body"])}, "error": None}))
    dest.write_bytes(b"\n".join(out) + b"\n")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class BatchServerThread:
    """Runs a :class:`FakeBatch` on 127.0.0.1 (random port) in a background thread."""

    def __init__(self, fake: FakeBatch) -> None:
        self.fake = fake
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        """Base URL to use as ``api_base`` (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        """Base URL without /v1 (Anthropic's api_base)."""
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.fake.app(), access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def start(self) -> BatchServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake batch server did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def serve(fake: FakeBatch) -> Iterator[BatchServerThread]:
    """Generator for a pytest fixture: start the server, yield it, stop it."""
    server = BatchServerThread(fake).start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """Serve in the foreground (benchmarks): prints ``PORT <n>`` once listening."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls-per-status", type=int, default=1)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--hold", action="store_true")
    args = ap.parse_args()
    fake = FakeBatch(polls_per_status=args.polls_per_status, hold=args.hold)

    async def run() -> None:
        runner = web.AppRunner(fake.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
