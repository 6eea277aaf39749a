"""The litellm backend against the fake OpenAI-compatible server (no network, no key)."""

from __future__ import annotations

import asyncio
import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from fake_openai import FakeOpenAI, ServerThread, token_logprobs  # noqa: E402

from simsurvey.errors import UserError  # noqa: E402
from simsurvey.respondents.base import (  # noqa: E402
    FatalBackendError,
    Request,
    RetryableError,
    UnreachableError,
)
from simsurvey.respondents.config import ModelConfig  # noqa: E402
from simsurvey.respondents.litellm_backend import LiteLLMBackend, label_probs  # noqa: E402

MESSAGES = (
    {"role": "system", "content": "You are a 40-year-old teacher."},
    {"role": "user", "content": "Pick one.\nA. Red\nB. Green\nC. Blue\nAnswer with the letter."},
)


def _cfg(url: str, transport: str, **kw) -> ModelConfig:
    return ModelConfig(backend="litellm", name="openai/fake-model", api_base=url, transport=transport, **kw)


def _run(backend: LiteLLMBackend, req: Request):
    async def go():
        try:
            return await backend.generate([req])
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def server(fake):
    srv = ServerThread(fake).start()
    yield srv
    srv.stop()


# -- label_probs: hand-worked -------------------------------------------------------------
def test_label_probs_sums_surface_forms_and_reports_missing_mass():
    top = [("A", math.log(0.4)), (" A", math.log(0.1)), ("B.", math.log(0.2)), ("I", math.log(0.15)), (" C)", math.log(0.05))]
    probs, missing = label_probs(top, ["A", "B", "C", "D"])
    # labels take 0.4+0.1 + 0.2 + 0.05 = 0.75; the rest (0.15 listed + 0.10 tail) is missing
    assert probs == pytest.approx((0.5 / 0.75, 0.2 / 0.75, 0.05 / 0.75, 0.0))
    assert missing == pytest.approx(0.25)


def test_label_probs_none_when_no_label_in_top():
    probs, missing = label_probs([("I", -0.1), ("The", -3.0)], ["A", "B"])
    assert probs is None and missing == 1.0


def test_label_probs_numbers_do_not_match_prefixes():
    # "1" must not collect the mass of "10" (exact match for short labels)
    top = [("1", math.log(0.3)), ("10", math.log(0.2))]
    probs, _ = label_probs(top, [str(i) for i in range(1, 11)])
    assert probs[0] == pytest.approx(0.6) and probs[9] == pytest.approx(0.4)


def test_label_probs_text_labels_prefix_and_ambiguity():
    labels = ["Strongly agree", "Strongly disagree", "Neutral"]
    top = [("Strong", math.log(0.5)), (" Neut", math.log(0.3)), ("I", math.log(0.2))]
    probs, missing = label_probs(top, labels)
    # "Strong" starts two labels: ambiguous, counted as missing; "Neut" -> Neutral only
    assert probs == pytest.approx((0.0, 0.0, 1.0))
    assert missing == pytest.approx(0.7)


# -- against the fake server ---------------------------------------------------------------
def _expected(messages, labels):
    """Independent computation from the fake's token distribution."""
    mass = {lab: 0.0 for lab in labels}
    for tok, lp in token_logprobs(list(messages)):
        if tok.strip() in mass:
            mass[tok.strip()] += math.exp(lp)
    total = sum(mass.values())
    return tuple(mass[lab] / total for lab in labels), 1 - total


@pytest.mark.parametrize("transport", ["http", "litellm"])
@pytest.mark.parametrize("elicitation", ["logprobs", "both", "sample"])
def test_backend_reads_logprobs_and_text(server, fake, transport, elicitation):
    backend = LiteLLMBackend(_cfg(server.url, transport, elicitation=elicitation))
    assert backend.transport == transport
    req = Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation=elicitation, seed=7, max_tokens=5)
    (res,) = _run(backend, req)
    probs, missing = _expected(MESSAGES, ("A", "B", "C"))
    top_label = ("A", "B", "C")[max(range(3), key=lambda i: probs[i])]
    if elicitation == "sample":
        assert res.label_probs is None and res.missing_mass is None
    else:
        assert res.label_probs == pytest.approx(probs)
        assert sum(res.label_probs) == pytest.approx(1.0)
        assert res.missing_mass == pytest.approx(missing) and res.missing_mass == pytest.approx(0.25)
    assert res.text == (None if elicitation == "logprobs" else top_label)
    assert res.prompt_tokens > 0 and res.completion_tokens == 1
    assert res.cost_usd is None  # the fake model has no price: null, not invented
    assert len(fake.log) == 1  # litellm's and the SDK's own retries are off


@pytest.mark.parametrize("transport", ["http", "litellm"])
def test_backend_sends_elicitation_params(server, fake, transport):
    seen = []
    orig = fake.completion

    def spy(body, kind="ok"):
        seen.append(body)
        return orig(body, kind)

    fake.completion = spy
    backend = LiteLLMBackend(_cfg(server.url, transport, top_logprobs=20))
    _run(backend, Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="logprobs", seed=3))
    body = seen[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    assert body["seed"] == 3


@pytest.mark.parametrize("transport", ["http", "litellm"])
@pytest.mark.parametrize("kind,exc", [("429", RetryableError), ("500", RetryableError), ("malformed", RetryableError),
                                      ("401", FatalBackendError), ("404", FatalBackendError)])
def test_backend_maps_errors(server, fake, transport, kind, exc):
    fake.schedule = {0: kind}
    fake.retry_after = 1.5
    backend = LiteLLMBackend(_cfg(server.url, transport))
    req = Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="logprobs")
    with pytest.raises(exc) as info:
        _run(backend, req)
    if kind == "429":
        assert info.value.retry_after == pytest.approx(1.5)
    (res,) = _run(backend, req)  # the next call succeeds (schedule hit only request 0)
    assert res.label_probs is not None


@pytest.mark.parametrize("transport", ["http", "litellm"])
def test_prompt_too_long_is_an_error_row_not_a_run_stop(server, fake, transport):
    fake.schedule = {0: "context"}
    (res,) = _run(LiteLLMBackend(_cfg(server.url, transport)), Request(messages=MESSAGES, labels=("A", "B"), elicitation="logprobs"))
    assert res.error is not None and "context length" in res.error and res.label_probs is None


@pytest.mark.parametrize("body", [[], {"choices": "x"}, {"choices": [{"logprobs": {"content": [{"top_logprobs": [{"token": "A"}]}]}}]}])
def test_unexpected_body_shapes_are_retryable(body):
    backend = LiteLLMBackend(_cfg("http://x/v1", "http"))
    with pytest.raises(RetryableError, match="malformed response"):
        backend._parse(body, Request(messages=MESSAGES, labels=("A", "B"), elicitation="logprobs"), 0.1, None)


@pytest.mark.parametrize("transport", ["http", "litellm"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1", "http://no-such-host.invalid/v1"])
def test_connection_refused_and_unknown_host_are_not_transient(transport, url):
    # Nothing is listening / the name does not resolve: waiting will not help.
    backend = LiteLLMBackend(_cfg(url, transport))
    with pytest.raises(UnreachableError, match="cannot connect to"):
        _run(backend, Request(messages=MESSAGES, labels=("A", "B"), elicitation="logprobs"))


@pytest.mark.parametrize("url", ["localhost:8000/v1", "ftp://x/v1", "http:///v1", "not a url"])
def test_an_invalid_api_base_is_a_user_error(url):
    with pytest.raises(UserError, match=r"^model.api_base: .* is not an http\(s\) URL"):
        LiteLLMBackend(_cfg(url, "http"))


@pytest.mark.parametrize("transport", ["http", "litellm"])
def test_a_400_is_that_requests_error_not_the_runs(server, fake, transport):
    # A content filter rejects one prompt: that request's error; the next request is fine.
    fake.schedule = {0: "400"}
    backend = LiteLLMBackend(_cfg(server.url, transport))
    req = Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="logprobs")
    (res,) = _run(backend, req)
    assert res.error is not None and "content management policy" in res.error and res.label_probs is None
    (res,) = _run(backend, req)
    assert res.error is None and res.label_probs is not None


@pytest.mark.parametrize("transport", ["http", "litellm"])
def test_logprob_results_keep_the_top_tokens(server, fake, transport):
    (res,) = _run(LiteLLMBackend(_cfg(server.url, transport, top_logprobs=5)),
                  Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="logprobs"))
    want = token_logprobs(list(MESSAGES))[:5]
    assert [t for t, _ in res.top_tokens] == [t for t, _ in want]
    assert [lp for _, lp in res.top_tokens] == pytest.approx([lp for _, lp in want])


def test_litellm_cost_is_read_from_the_response_not_recomputed(server, fake, monkeypatch):
    import litellm

    def boom(*a, **k):
        raise AssertionError("completion_cost must not be called (it raises and prints for unpriced models)")

    monkeypatch.setattr(litellm, "completion_cost", boom)
    req = Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="logprobs")
    priced = LiteLLMBackend(ModelConfig(backend="litellm", name="openai/gpt-4o-mini", api_base=server.url, transport="litellm"))
    (res,) = _run(priced, req)
    p, c = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens)
    assert res.cost_usd == pytest.approx(p + c)
    (res,) = _run(LiteLLMBackend(_cfg(server.url, "litellm")), req)
    assert res.error is None and res.cost_usd is None  # unpriced: null, not invented


def test_warm_up_imports_litellm_and_reads_the_price_once():
    import subprocess

    code = ("import sys; from simsurvey.respondents.config import ModelConfig; "
            "from simsurvey.respondents.litellm_backend import LiteLLMBackend; "
            "b = LiteLLMBackend(ModelConfig(backend='litellm', name='openai/m', api_base='http://x/v1', transport='litellm')); "
            "assert 'litellm' not in sys.modules; b.warm_up(); assert 'litellm' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    http = LiteLLMBackend(ModelConfig(backend="litellm", name="openai/gpt-4o-mini", api_base="http://x/v1"))
    http.warm_up()
    assert isinstance(http._prices, tuple)


@pytest.mark.parametrize("transport", ["http", "litellm"])
def test_api_key_from_named_env_var(server, fake, monkeypatch, transport):
    monkeypatch.setenv("SIMSURVEY_TEST_KEY", "sk-test-123")
    backend = LiteLLMBackend(_cfg(server.url, transport, api_key_env="SIMSURVEY_TEST_KEY"))
    (res,) = _run(backend, Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="logprobs"))
    assert [e.authorization for e in fake.log] == ["Bearer sk-test-123"]
    assert "sk-test-123" not in repr(res)


def test_unset_key_env_is_a_user_error(monkeypatch):
    monkeypatch.delenv("SIMSURVEY_NO_SUCH_KEY", raising=False)
    with pytest.raises(UserError, match="model.api_key_env: environment variable SIMSURVEY_NO_SUCH_KEY is not set"):
        LiteLLMBackend(ModelConfig(backend="litellm", name="openai/gpt-4o-mini", api_key_env="SIMSURVEY_NO_SUCH_KEY"))


def test_transport_auto_and_http_needs_api_base():
    assert LiteLLMBackend(ModelConfig(backend="litellm", name="anthropic/claude-x")).transport == "litellm"
    assert LiteLLMBackend(ModelConfig(backend="litellm", name="openai/m", api_base="http://x/v1")).transport == "http"
    with pytest.raises(UserError, match="model.transport"):
        LiteLLMBackend(ModelConfig(backend="litellm", name="openai/m", transport="http"))


def test_http_cost_from_the_bundled_cost_map():
    # gpt-4o-mini is priced in litellm's bundled map; compare with litellm's own arithmetic.
    import litellm

    backend = LiteLLMBackend(ModelConfig(backend="litellm", name="openai/gpt-4o-mini", api_base="http://x/v1"))
    p, c = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=10)
    assert backend._cost(1000, 10) == pytest.approx(p + c)
    assert LiteLLMBackend(_cfg("http://x/v1", "http"))._cost(1000, 10) is None


def test_no_module_global_litellm_settings(server):
    import litellm

    before = {k: getattr(litellm, k, None) for k in ("suppress_debug_info", "drop_params", "num_retries", "set_verbose")}
    _run(LiteLLMBackend(_cfg(server.url, "litellm")), Request(messages=MESSAGES, labels=("A", "B", "C"), elicitation="logprobs"))
    assert {k: getattr(litellm, k, None) for k in before} == before
