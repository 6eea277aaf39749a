"""A fake OpenAI-compatible chat completions server for tests and benchmarks.

``POST /v1/chat/completions`` answers deterministically from the prompt: the option labels are
read from the last user message (lines like ``A. text``, ``B) text``, ``1. text``; A-D when none
are found), each label gets a logprob from a hash of the messages, and a few non-label tokens
(``"I"``, ``"The"``) carry the rest of the mass, so a client sees the same ``top_logprobs`` a small
real model gives. The sampled answer is the top label. Every request is logged (a hash of its
messages + seed, whether it was answered) so tests can assert that no call was repeated.

Faults, by schedule (request arrival index -> kind) or by fraction (seeded):
``429`` (with ``Retry-After``), ``500``, ``timeout`` (sleeps past the client's timeout),
``malformed`` (a body that is not JSON), ``garbage`` (answer text "I think maybe"), ``refusal``
(an "I can't answer" text), ``stall`` (hangs until the server stops; for kill tests),
``401`` / ``404`` (bad key / unknown model), ``context`` (400: prompt longer than the context window),
``400`` (a content filter rejected this prompt), ``offlabel`` (no option label among the top tokens).
With ``echo_auth`` set, error bodies echo the Authorization header (as some servers do).

Run standalone (for benchmarks, in its own process)::

    python tests/support/fake_openai.py --latency 0.1     # prints "PORT <n>" then serves
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

FAULTS = ("ok", "429", "500", "timeout", "malformed", "garbage", "refusal", "stall", "401", "404", "context", "400", "offlabel")
CONTENT_FILTER = "The response was filtered due to the prompt triggering the content management policy."
GARBAGE_TEXT = "I think maybe"
REFUSAL_TEXT = "I'm sorry, but I can't answer that question."
_LABEL_LINE = re.compile(r"^\s*\(?([A-Z]|\d{1,2})[.):]\s+\S", re.M)


def request_key(body: dict) -> str:
    """Identity of one call: sha256 of its messages and seed (the seed separates replicates)."""
    payload = json.dumps([body.get("messages"), body.get("seed")], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def prompt_labels(messages: list[dict]) -> list[str]:
    """The option labels displayed in the last user message (A-D when none are found)."""
    user = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    found = _LABEL_LINE.findall(user[-1] if user else "")
    labels = list(dict.fromkeys(found))
    return labels or ["A", "B", "C", "D"]


def token_logprobs(messages: list[dict]) -> list[tuple[str, float]]:
    """The deterministic next-token distribution (token, logprob), best first.

    Each label's mass is split over two surface forms (``"A"`` and ``" A"``) so a client must
    sum them; ``"I"`` and ``"The"`` take 20% of the mass, the tail outside the list a further 5%.
    """
    labels = prompt_labels(messages)
    seed = int.from_bytes(hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()[:8], "little")
    w = np.random.default_rng(seed).dirichlet(np.ones(len(labels)))
    out: list[tuple[str, float]] = []
    for lab, p in zip(labels, 0.75 * w):
        out.append((lab, float(p) * 0.7))
        out.append((" " + lab, float(p) * 0.3))
    out += [("I", 0.12), ("The", 0.08)]
    out.sort(key=lambda t: -t[1])
    return [(tok, math.log(p)) for tok, p in out if p > 0]


@dataclass
class LogEntry:
    """One request the server received."""

    index: int
    key: str
    fault: str
    #: True once a usable completion was sent (ok, garbage, refusal).
    answered: bool = False
    #: The Authorization header received (tests check the key is sent, and only there).
    authorization: str | None = None
    #: True once the handler returned (an answer or an error was sent, or the client went away).
    finished: bool = False
    #: The chat messages of the request, as received (tests of sequential conversations).
    messages: list | None = None


@dataclass
class FakeOpenAI:
    """Configurable fake server state.

    Attributes:
        latency_s: Delay before every answer.
        schedule: Request arrival index -> fault kind (overrides ``rates``).
        rates: Fault kind -> fraction of requests (drawn with ``np.random.default_rng(seed)``).
        retry_after: ``Retry-After`` seconds sent with a 429 (None: no header).
        timeout_sleep_s: How long a ``timeout`` fault sleeps before answering.
        stall_after: Requests arriving after this many are stalled (hang until shutdown).
        seed: Seed of the fault draws.
        echo_auth: Error bodies repeat the Authorization header received.
    """

    latency_s: float = 0.0
    schedule: dict[int, str] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    retry_after: float | None = 0.05
    timeout_sleep_s: float = 5.0
    stall_after: int | None = None
    seed: int = 0
    echo_auth: bool = False
    log: list[LogEntry] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    released: bool = False

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    # -- what the tests read -------------------------------------------------------------
    def keys(self, *, answered: bool | None = None) -> list[str]:
        """Logged request keys, optionally only (un)answered ones."""
        return [e.key for e in self.log if answered is None or e.answered == answered]

    def _fault(self, index: int) -> str:
        if index in self.schedule:
            return self.schedule[index]
        if self.stall_after is not None and index >= self.stall_after:
            return "stall"
        if self.rates:
            u = self._rng.random()
            acc = 0.0
            for kind, rate in self.rates.items():
                acc += rate
                if u < acc:
                    return kind
        return "ok"

    # -- the handler ---------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        entry = LogEntry(index=len(self.log), key=request_key(body), fault="ok",
                         authorization=request.headers.get("Authorization"), messages=body.get("messages"))
        entry.fault = self._fault(entry.index)
        self.log.append(entry)
        self.times.append(time.monotonic())
        try:
            return await self._respond(request, body, entry)
        finally:
            entry.finished = True

    async def _respond(self, request: web.Request, body: dict, entry: LogEntry) -> web.StreamResponse:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        kind = entry.fault
        if kind == "stall":
            while not self.released:  # until the server stops (a killed client never gets an answer)
                await asyncio.sleep(0.05)
            return web.json_response({"error": {"message": "server stopping"}}, status=503)
        if kind == "429":
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return web.json_response({"error": {"message": "rate limited", "type": "rate_limit"}}, status=429, headers=headers)
        if kind in ("401", "404"):
            message = {"401": "Incorrect API key provided", "404": "The model does not exist"}[kind]
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=int(kind))
        if kind == "context":
            message = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."
            return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                                "code": "context_length_exceeded"}}, status=400)
        if kind == "400":
            return web.json_response({"error": {"message": CONTENT_FILTER, "type": "invalid_request_error",
                                                "code": "content_filter"}}, status=400)
        if kind == "500":
            message = "boom" + (f" (request had Authorization: {entry.authorization})" if self.echo_auth else "")
            return web.json_response({"error": {"message": message, "type": "server_error"}}, status=500)
        if kind == "timeout":
            await asyncio.sleep(self.timeout_sleep_s)
        if kind == "malformed":
            # Not "answered": the client got nothing usable and must ask again.
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        resp = self.completion(body, kind)
        # A client that gave up (timed out) never receives this answer.
        entry.answered = request.transport is not None and not request.transport.is_closing()
        return web.json_response(resp)

    def completion(self, body: dict, kind: str = "ok") -> dict:
        """The JSON body answering one request."""
        messages = body["messages"]
        top = token_logprobs(messages)
        labels = prompt_labels(messages)
        best = next(tok.strip() for tok, _ in top if tok.strip() in labels)
        text = {"garbage": GARBAGE_TEXT, "refusal": REFUSAL_TEXT, "offlabel": "I"}.get(kind, best)
        choice: dict = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            first = text.split()[0] if kind != "ok" else best
            if kind == "offlabel":
                top = [("I", math.log(0.5)), ("The", math.log(0.3)), ("Well", math.log(0.1))]
            entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top[:k]]
            choice["logprobs"] = {"content": [{"token": first, "logprob": top[0][1], "bytes": None, "top_logprobs": entries}]}
        prompt_tokens = sum(len((m.get("content") or "").split()) for m in messages)
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_post("/chat/completions", self.handle)
        return app


class ServerThread:
    """Runs a :class:`FakeOpenAI` on 127.0.0.1 (random port) in a background thread."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        """Base URL to use as ``api_base`` (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

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

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self.fake.released = True
        time.sleep(0.1)  # let stalled handlers return before the loop stops
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def serve(fake: FakeOpenAI) -> Iterator[ServerThread]:
    """Generator for a pytest fixture: start the server, yield it, stop it."""
    server = ServerThread(fake).start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """Serve in the foreground (benchmarks): prints ``PORT <n>`` once listening."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    fake = FakeOpenAI(latency_s=args.latency)

    async def run() -> None:
        runner = web.AppRunner(fake.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024).start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
