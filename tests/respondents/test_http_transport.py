"""The direct HTTP transport's bodies (orjson with a json fallback), token normalization and session."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from fake_openai import FakeOpenAI, ServerThread

from simsurvey.respondents import litellm_backend as lb
from simsurvey.respondents.base import Request
from simsurvey.respondents.config import ModelConfig

MESSAGES = (
    {"role": "system", "content": "Du bist 40 Jahre alt, Lehrerin in Zürich \u2014 \"Anführungszeichen\" \n und\tTabs."},
    {"role": "user", "content": "Pick one.\nA. Red\nB. Green\nC. Blue\nAnswer with the letter. \U0001f600"},
)


@pytest.mark.parametrize("obj", [
    {"model": "m", "messages": list(MESSAGES), "seed": 2**63 - 1, "temperature": 0.7, "logprobs": True, "x": None},
    {"messages": MESSAGES, "nested": {"a": [1, 2.5, "\u00e9"]}},
    {"big": 2**70},  # orjson refuses integers past 64 bits: the json fallback sends it
    {"e": 1e-300, "neg": -0.0},
])
def test_request_bodies_are_the_json_the_standard_library_reads(obj):
    body = lb.dumps(obj)
    assert isinstance(body, bytes)
    assert json.loads(body) == json.loads(json.dumps(obj))


@pytest.mark.parametrize("raw", [
    b'{"choices": [{"message": {"content": "A"}}], "usage": {"prompt_tokens": 3}}',
    '{"t": "Z\u00fcrich \U0001f600", "lp": -0.1053605156578263, "x": 1e400}'.encode(),
    b'{"lp": NaN, "n": 123456789012345678901234567890}',  # what only json reads (some servers send NaN)
])
def test_response_bodies_read_as_the_standard_library_reads_them(raw):
    got, want = lb.loads(raw), json.loads(raw)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)  # NaN == NaN as text
    for k, v in want.items():
        if isinstance(v, float) and not math.isnan(v):
            assert got[k] == v and type(got[k]) is float  # floats to the last bit


def test_a_body_that_is_not_json_is_still_a_value_error():
    with pytest.raises(ValueError):
        lb.loads(b'{"id": "x", "choices": [')


def test_token_normalization_is_memoized_and_bounded(monkeypatch):
    monkeypatch.setattr(lb, "_NORMALIZED", {})
    monkeypatch.setattr(lb, "_NORMALIZED_MAX", 4)
    assert [lb._normalized(t) for t in (" A", "A.", "B)", " c: ", "\n1.", " A")] == ["A", "A", "B", "c", "1", "A"]
    assert len(lb._NORMALIZED) <= 4
    # label_probs reads the same with a cold and a warm memo (hand-worked: 0.5 + 0.2 on A, 0.1 on B).
    top = [(" A", math.log(0.5)), ("A.", math.log(0.2)), ("B", math.log(0.1)), ("I", math.log(0.1))]
    for _ in range(3):
        probs, missing = lb.label_probs(top, ("A", "B"))
        assert probs == pytest.approx((0.7 / 0.8, 0.1 / 0.8)) and missing == pytest.approx(0.2)


def test_a_token_that_is_not_text_is_a_malformed_response():
    backend = lb.LiteLLMBackend(ModelConfig(backend="litellm", name="openai/m", api_base="http://127.0.0.1:9/v1",
                                            elicitation="logprobs"))
    body = {"choices": [{"message": {"content": "A"},
                         "logprobs": {"content": [{"top_logprobs": [{"token": 5, "logprob": -0.1}]}]}}]}
    with pytest.raises(lb.RetryableError, match="malformed"):
        backend._parse(body, Request(messages=MESSAGES, labels=("A", "B"), elicitation="logprobs"), 0.0, None)


def test_the_server_receives_the_messages_exactly_and_no_cookie_is_kept():
    # Non-ASCII, quotes, newlines and an emoji arrive as sent; a Set-Cookie from the server is not
    # sent back on the next call (an API client keeps no cookies).
    from aiohttp import web

    fake = FakeOpenAI()
    seen: list[tuple[dict, str | None]] = []
    handle = fake.handle

    async def with_cookie(request: web.Request) -> web.StreamResponse:
        seen.append((await request.json(), request.headers.get("Cookie")))
        resp = await handle(request)
        resp.set_cookie("session", "abc")
        return resp

    fake.handle = with_cookie
    srv = ServerThread(fake).start()
    try:
        backend = lb.LiteLLMBackend(ModelConfig(backend="litellm", name="openai/fake-model", api_base=srv.url,
                                                elicitation="both", params={"big": 2**70}))

        async def go():
            try:
                return [await backend.generate([Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="both",
                                                        seed=s)]) for s in range(2)]
            finally:
                await backend.aclose()

        results = asyncio.run(go())
    finally:
        srv.stop()
    assert all(r[0].error is None and r[0].text in ("A", "B", "C") for r in results)
    assert [body["messages"] for body, _ in seen] == [list(MESSAGES)] * 2
    assert seen[0][0]["model"] == "fake-model" and seen[0][0]["big"] == 2**70 and seen[1][0]["seed"] == 1
    assert [cookie for _, cookie in seen] == [None, None]


def test_render_top_tokens_quotes_tokens_as_json_dumps_does():
    # raw_text of a logprob answer: the tokens JSON-quoted exactly as json.dumps(tok, ensure_ascii=False).
    from simsurvey.respondents.parsing import render_top_tokens

    tokens = [" A", "A.", "\n", '"', "\\", "Zür", "\u2028", "\x00\x1f\x7f", "\U0001f600", "", "\t B"]
    top = [(t, math.log(0.5 / (i + 1))) for i, t in enumerate(tokens)]
    want = ", ".join(f"{json.dumps(t, ensure_ascii=False)} {math.exp(lp):.3f}" for t, lp in top[:20])
    assert render_top_tokens(top) == want
    assert render_top_tokens(top, limit=2) == '" A" 0.500, "A." 0.250'
