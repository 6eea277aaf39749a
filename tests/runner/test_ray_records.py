"""The Ray executor's pure parts: requests/results as Dataset rows, blocks, the vLLM mapping.

No Ray needed: these run everywhere.
"""

from __future__ import annotations

import math

import pytest

from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.litellm_backend import label_probs
from simsurvey.runner.ray_executor._records import (
    REQUEST_COLUMNS,
    blocks,
    call_groups,
    request_from_row,
    request_row,
    result_from_json,
    result_json,
    result_row,
    vllm_request,
    vllm_result,
)


def _req(persona: int | None, q: str = "q1", elicitation: str = "logprobs", seed: int | None = 7) -> Request:
    cue = f"You are person {persona}." if persona is not None else "Answer the question."
    return Request(messages=({"role": "system", "content": cue},
                             {"role": "user", "content": f"{q}?\nA. Yes\nB. No\nAnswer with a letter."}),
                   labels=("A", "B"), elicitation=elicitation, temperature=0.7, max_tokens=5, seed=seed,
                   prefix_key=f"persona-{persona}" if persona is not None else None,
                   context={"question_id": q, "option_order": ["yes", "no"]})


@pytest.mark.parametrize("elicitation", ["logprobs", "sample", "both"])
def test_request_round_trip(elicitation: str) -> None:
    req = _req(3, elicitation=elicitation)
    row = request_row(req, key="k1", call=4)
    assert set(row) == set(REQUEST_COLUMNS)
    assert row["persona"] == "persona-3" and row["call"] == 4 and isinstance(row["request"], str)
    back = request_from_row(row)
    assert back == req  # context is not compared (and not carried: no model reads it)
    assert back.messages == req.messages and back.seed == 7 and back.max_tokens == 5


def test_request_round_trip_no_persona_no_seed() -> None:
    req = _req(None, seed=None)
    row = request_row(req, key="k", call=0)
    assert row["persona"] == ""
    assert request_from_row(row) == req


def test_result_round_trip_keeps_every_field() -> None:
    res = Result(text="A", label_probs=(0.25, 0.75), missing_mass=0.1, prompt_tokens=12, completion_tokens=1,
                 cost_usd=1.5e-6, latency_s=0.03, extra={"first_token": "A"}, top_tokens=(("A", -0.1), (" B", -2.0)))
    assert result_from_json(result_json(res)) == res
    err = Result(error="HTTP 400: filtered", latency_s=0.2)
    assert result_from_json(result_json(err)) == err  # unlike the cache, the error travels
    row = result_row("k", res, calls=2, retries=1, identity={"dtype": "float32"})
    assert row["calls"] == 2 and row["retries"] == 1 and row["fatal"] == ""
    assert row["identity"] == '{"dtype":"float32"}'


def _rows(spec: list[tuple[int | None, int]]) -> list[dict]:
    """Request rows from (persona, call) pairs, in that order."""
    return [request_row(_req(p, q=f"q{i}"), key=f"k{i}", call=c) for i, (p, c) in enumerate(spec)]


def test_call_groups_are_consecutive_calls() -> None:
    rows = _rows([(0, 0), (0, 0), (0, 1), (1, 2), (1, 2)])
    assert [[r["key"] for r in g] for g in call_groups(rows)] == [["k0", "k1"], ["k2"], ["k3", "k4"]]


def test_blocks_never_split_a_persona_under_the_target() -> None:
    # Three personas of 3 requests (one call each); target 4: a block closes at the first persona
    # boundary at or past 4 rows.
    rows = _rows([(p, p) for p in range(3) for _ in range(3)])
    got = blocks(rows, 4)
    assert [[r["persona"] for r in b] for b in got] == [["persona-0"] * 3 + ["persona-1"] * 3, ["persona-2"] * 3]
    assert sum(len(b) for b in got) == len(rows)


def test_blocks_cut_a_huge_persona_between_calls_only() -> None:
    rows = _rows([(0, i // 2) for i in range(10)])  # one persona, five calls of two
    got = blocks(rows, 2)
    assert all(len(b) % 2 == 0 for b in got)  # never inside a call
    assert [r["key"] for b in got for r in b] == [f"k{i}" for i in range(10)]
    assert len(got) > 1
    for b in got:
        calls = [r["call"] for r in b]
        assert calls == sorted(calls)


def test_blocks_no_persona_rows_each_close_a_block_at_the_target() -> None:
    rows = _rows([(None, i) for i in range(5)])
    assert [len(b) for b in blocks(rows, 2)] == [2, 2, 1]


# -- vLLM mapping ---------------------------------------------------------------------------
def test_vllm_request_parameters_match_the_http_path() -> None:
    row = request_row(_req(1, elicitation="logprobs"), key="k", call=0)
    got = vllm_request(row, top_logprobs=20)
    assert got["sampling_params"] == {"logprobs": 20, "max_tokens": 1, "temperature": 0.0, "seed": 7}
    assert got["messages"][0]["content"] == "You are person 1." and got["key"] == "k"
    both = vllm_request(request_row(_req(1, elicitation="both"), key="k", call=0), top_logprobs=5)
    assert both["sampling_params"] == {"logprobs": 5, "max_tokens": 5, "temperature": 0.7, "seed": 7}
    sample = vllm_request(request_row(_req(1, elicitation="sample", seed=None), key="k", call=0), top_logprobs=5)
    assert sample["sampling_params"] == {"max_tokens": 5, "temperature": 0.7}


def _vllm_out(elicitation: str, position: object, text: str = "A") -> dict:
    row = vllm_request(request_row(_req(1, elicitation=elicitation), key="k", call=0), top_logprobs=20)
    return {**row, "generated_text": text, "num_input_tokens": 40, "num_generated_tokens": 1,
            "logprobs": [position] if position is not None else None}


def test_vllm_result_reads_logprobs_with_the_http_label_probs() -> None:
    # vLLM's stage gives token id -> {logprob, rank, decoded_token}; after Arrow the ids may be
    # strings and absent ones None.
    position = {"32": {"logprob": math.log(0.5), "rank": 1, "decoded_token": "A"},
                "33": {"logprob": math.log(0.2), "rank": 2, "decoded_token": " B"},
                "34": {"logprob": math.log(0.1), "rank": 3, "decoded_token": "I"},
                "35": None}
    res = vllm_result(_vllm_out("logprobs", position), top_logprobs=20)
    expect, missing = label_probs([("A", math.log(0.5)), (" B", math.log(0.2)), ("I", math.log(0.1))], ("A", "B"))
    assert res.label_probs == pytest.approx(expect) and res.label_probs[0] == pytest.approx(0.5 / 0.7)
    assert res.missing_mass == pytest.approx(missing) and res.missing_mass == pytest.approx(0.3)
    assert res.text is None and res.extra == {"first_token": "A"}
    assert res.top_tokens[0] == ("A", pytest.approx(math.log(0.5)))
    assert res.prompt_tokens == 40 and res.completion_tokens == 1 and res.error is None


def test_vllm_result_list_form_and_no_label_mass() -> None:
    lst = [{"logprob": math.log(0.9), "rank": 1, "decoded_token": "The"}]
    res = vllm_result(_vllm_out("both", lst, text="The answer is B"), top_logprobs=20)
    assert res.label_probs is None and res.missing_mass == 1.0 and res.text == "The answer is B"
    none = vllm_result(_vllm_out("logprobs", None), top_logprobs=20)
    assert none.label_probs is None and none.missing_mass == 1.0


def test_vllm_result_keeps_only_top_k_best_first() -> None:
    position = {str(i): {"logprob": math.log(p), "rank": i + 1, "decoded_token": tok}
                for i, (tok, p) in enumerate([("I", 0.05), ("B", 0.3), ("A", 0.6)])}
    res = vllm_result(_vllm_out("logprobs", position), top_logprobs=2)
    assert [t for t, _ in res.top_tokens] == ["A", "B"]  # sorted by logprob, cut at k
    assert res.label_probs == pytest.approx((0.6 / 0.9, 0.3 / 0.9))


def test_vllm_engine_error_is_the_rows_error() -> None:
    row = {**_vllm_out("logprobs", None), "__inference_error__": "prompt too long\nTraceback..."}
    res = vllm_result(row, top_logprobs=20)
    assert res.error == "vllm: prompt too long" and res.label_probs is None


def test_split_pending_keeps_personas_and_conversations_whole() -> None:
    from simsurvey.runner._conversation import Conversation
    from simsurvey.runner._executors import Pending
    from simsurvey.runner.ray_executor._drive import split_pending

    singles = [{"persona_id": p, "i": i} for i, p in enumerate([1, 1, 1, 2, 2, 3, None, None])]
    convs = [Conversation(persona_id=p, replicate=0, turns=[{"persona_id": p}] * 3) for p in range(3)]
    parts = list(split_pending(Pending(singles, convs), 2))
    assert [[t["persona_id"] for t in p.singles] for p in parts if p.singles] == [[1, 1, 1], [2, 2], [3, None], [None]]
    assert [len(p.conversations) for p in parts if p.conversations] == [1, 1, 1]  # 3 turns each >= 2
    assert [t["i"] for p in parts for t in p.singles] == list(range(8))


def test_a_pipeline_failure_is_one_line_naming_the_workers_error() -> None:
    from simsurvey.errors import UserError
    from simsurvey.runner.ray_executor._drive import _worker_failure

    class RayTaskErrorLike(Exception):  # Ray wraps the worker's exception; `.cause` is the original
        def __init__(self, cause: BaseException) -> None:
            super().__init__("ray traceback\n  File ...\nModuleNotFoundError: No module named 'simsurvey'")
            self.cause = cause

    err = _worker_failure(RayTaskErrorLike(ModuleNotFoundError("No module named 'simsurvey'")))
    assert isinstance(err, UserError) and "\n" not in str(err)
    assert str(err) == "runner.executor: ray: the pipeline failed: ModuleNotFoundError: No module named 'simsurvey'"
    mine = UserError("runner.ray.address: cannot connect")
    assert _worker_failure(mine) is mine
