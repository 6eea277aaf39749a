"""What a Ray worker runs, without Ray: the runner's retry loop around simsurvey's own client.

The worker answers call groups with ``_Run.call`` (retries with backoff, an error that survives
kept as the row's error, a fatal error reported once) against the fake OpenAI server; its results
are the direct backend's, field for field.
"""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest
from fake_openai import CONTENT_FILTER

from simsurvey.respondents.base import Request
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.litellm_backend import LiteLLMBackend
from simsurvey.runner.ray_executor._records import (
    REQUEST_COLUMNS,
    RESULT_COLUMNS,
    request_row,
    result_from_json,
)
from simsurvey.runner.ray_executor._workers import (
    WorkerSpec,
    answer_block,
    answer_groups,
    build_backend,
)


def _req(i: int, elicitation: str = "logprobs") -> Request:
    return Request(messages=({"role": "system", "content": f"You are person {i // 2}."},
                             {"role": "user", "content": f"Question {i}?\nA. Yes\nB. No\nC. Maybe"}),
                   labels=("A", "B", "C"), elicitation=elicitation, temperature=0.0, max_tokens=4, seed=i,
                   prefix_key=f"persona-{i // 2}")


def _spec(url: str, **kw) -> WorkerSpec:
    model = ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="both")
    runner = RunnerConfig(backoff_base_s=0.01, backoff_max_s=0.02, max_retries=2, timeout_s=5)
    return WorkerSpec(processor="http", model=model.model_dump(mode="json"), runner=runner.model_dump(mode="json"),
                      seed=3, concurrency=kw.pop("concurrency", 4), **kw)


def _strip(res):  # latency differs call to call
    return res.__class__(**{**res.__dict__, "latency_s": 0.0})


def test_worker_results_equal_the_direct_backend(server) -> None:
    reqs = [_req(i, "both") for i in range(6)]
    spec = _spec(server.url)
    results, counts, identity, fatal = asyncio.run(answer_groups(spec, [[r] for r in reqs]))
    direct = LiteLLMBackend(ModelConfig(**spec.model))

    async def ask():
        try:
            return await direct.generate(reqs)
        finally:
            await direct.aclose()

    want = asyncio.run(ask())
    assert [_strip(g[0]) for g in results] == [_strip(w) for w in want]
    assert counts == [(1, 0)] * 6 and identity == {} and fatal == ""
    assert all(r[0].label_probs is not None and r[0].text for r in results)


def test_worker_retries_like_the_runner_and_keeps_what_survives(server, fake) -> None:
    # One call at a time: arrival 0 a 500 (retried: arrival 1), arrival 2 a content-filter 400
    # (that row's error, not retried).
    fake.schedule = {0: "500", 2: "400"}
    spec = _spec(server.url, concurrency=1)
    results, counts, _, fatal = asyncio.run(answer_groups(spec, [[_req(0)], [_req(1)], [_req(2)]]))
    assert fatal == ""
    assert results[0][0].error is None and counts[0] == (2, 1)  # two calls, one retry
    assert results[1][0].error is not None and CONTENT_FILTER[:20] in results[1][0].error and counts[1] == (1, 0)
    assert results[2][0].error is None


def test_worker_gives_up_after_max_retries_with_the_runners_message(server, fake) -> None:
    fake.rates = {"500": 1.0}
    results, counts, _, fatal = asyncio.run(answer_groups(_spec(server.url), [[_req(0)]]))
    assert results[0][0].error.endswith("(gave up after 2 retries)") and counts[0] == (3, 2) and fatal == ""


def test_worker_reports_a_fatal_error_once(server, fake) -> None:
    fake.rates = {"401": 1.0}
    results, _, _, fatal = asyncio.run(answer_groups(_spec(server.url, concurrency=1), [[_req(0)], [_req(1)]]))
    assert "401" in fatal and "\n" not in fatal
    assert all(g[0].error for g in results)
    assert len(fake.log) == 1  # nothing more is asked once the run must stop


def test_answer_block_one_result_row_per_request_in_order(server) -> None:
    reqs = [_req(i) for i in range(4)]
    rows = [request_row(r, key=f"k{i}", call=i // 2) for i, r in enumerate(reqs)]
    out = answer_block(pd.DataFrame(rows, columns=list(REQUEST_COLUMNS)), _spec(server.url))
    assert list(out.columns) == list(RESULT_COLUMNS)
    assert out["key"].tolist() == ["k0", "k1", "k2", "k3"]
    assert out["calls"].tolist() == [1, 0, 1, 0]  # one backend call per group (as the runner counts), on its first row
    assert all(result_from_json(t).label_probs is not None for t in out["result"])


def test_worker_sets_the_api_key_it_was_given(server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMSURVEY_TEST_KEY", raising=False)
    model = ModelConfig(backend="litellm", name="openai/fake", api_base=server.url, api_key_env="SIMSURVEY_TEST_KEY")
    spec = WorkerSpec(processor="http", model=model.model_dump(mode="json"),
                      runner=RunnerConfig().model_dump(mode="json"), seed=0, api_key="sk-worker-secret")
    assert "sk-worker-secret" not in repr(spec)
    backend = build_backend(spec)
    assert backend._api_key == "sk-worker-secret"
