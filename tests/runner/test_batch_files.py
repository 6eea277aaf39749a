"""The batch executor's files: the request JSONL and its splits, output lines, state.json, providers' mapping."""

from __future__ import annotations

import json

import pytest

from simsurvey.errors import DamagedStateError
from simsurvey.runner.batch._jsonl import (
    CHAT_URL,
    MALFORMED,
    RequestFileWriter,
    meta_keys,
    parse_output_line,
    read_meta,
)
from simsurvey.runner.batch._providers import (
    BatchAuthError,
    BatchRefusedError,
    TransientBatchError,
    anthropic_params,
    anthropic_result_line,
    classify,
)
from simsurvey.runner.batch._state import BatchState, Job

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Q?\nA. yes\nB. no"}], "max_tokens": 1}


def _add(w: RequestFileWriter, i: int) -> None:
    w.add(f"k{i:03d}", BODY, elicitation="logprobs", labels=("A", "B"), est_prompt_tokens=10, max_tokens=1)


def test_request_lines_are_openai_batch_lines_and_files_split_at_the_line_limit(tmp_path):
    w = RequestFileWriter(tmp_path, max_requests=4, max_bytes=10**9)
    for i in range(10):
        _add(w, i)
    files = w.close()
    assert [f.n for f in files] == [4, 4, 2] and [f.name for f in files] == ["req-00001", "req-00002", "req-00003"]
    lines = [json.loads(x) for x in files[0].path.read_bytes().splitlines()]
    assert lines[0] == {"custom_id": "k000", "method": "POST", "url": CHAT_URL, "body": BODY}
    assert list(meta_keys(files[2].meta)) == ["k008", "k009"]
    assert read_meta(files[1].meta)["k004"] == ("logprobs", ("A", "B"))
    assert files[0].bytes == files[0].path.stat().st_size and files[0].est_prompt_tokens == 40
    assert not list(tmp_path.glob("*.tmp"))  # complete files only under their final names


def test_files_split_at_the_byte_limit_and_a_line_never_straddles(tmp_path):
    one = len(json.dumps({"custom_id": "k000", "method": "POST", "url": CHAT_URL, "body": BODY},
                         separators=(",", ":")).encode()) + 1
    w = RequestFileWriter(tmp_path, max_requests=1000, max_bytes=3 * one + 5)
    for i in range(7):
        _add(w, i)
    files = w.close()
    assert [f.n for f in files] == [3, 3, 1]
    assert all(f.path.stat().st_size <= 3 * one + 5 for f in files)
    w2 = RequestFileWriter(tmp_path / "x", max_requests=10, max_bytes=one - 1)
    with pytest.raises(ValueError, match="over the file limit"):
        _add(w2, 0)


def test_discard_leaves_nothing(tmp_path):
    w = RequestFileWriter(tmp_path, max_requests=2, max_bytes=10**9)
    for i in range(3):
        _add(w, i)
    w.discard()
    assert list(tmp_path.iterdir()) == []


def test_output_lines_are_read_answer_error_expired_malformed():
    ok = parse_output_line(b'{"custom_id":"a","response":{"status_code":200,"body":{"choices":[]}},"error":null}')
    assert ok.custom_id == "a" and ok.body == {"choices": []} and ok.error is None
    err = parse_output_line(b'{"custom_id":"b","response":{"status_code":500,"body":{"error":{"message":"boom"}}}}')
    assert err.status == 500 and err.error == "HTTP 500: boom" and err.body is None
    exp = parse_output_line(b'{"custom_id":"c","response":null,"error":{"code":"batch_expired","message":"late"}}')
    assert exp.code == "batch_expired" and exp.error == "batch_expired: late"
    cut = parse_output_line(b'{"custom_id":"d","response":{"status_code":200,"bo')
    assert cut.custom_id == "d" and cut.error == MALFORMED  # the key is recovered: its row says why
    assert parse_output_line(b"garbage").custom_id is None
    assert parse_output_line(b"[1, 2]").error == MALFORMED


def test_state_round_trips_and_is_scrubbed(tmp_path):
    st = BatchState(tmp_path, secrets=("sk-live-abcdefghijkl",))
    st.jobs.append(Job(name="req-00001", n=3, bytes=10, provider="litellm:openai", batch_id="batch_1",
                       errors="bad key sk-live-abcdefghijkl"))
    st.save()
    text = (tmp_path / "state.json").read_text()
    assert "sk-live-abcdefghijkl" not in text and "<redacted>" in text
    again = BatchState.load(tmp_path)
    assert again.jobs[0].batch_id == "batch_1" and again.jobs[0].live and again.next_number() == 2
    (tmp_path / "state.json").write_text('{"version": 1, "jobs": [{"nam')
    with pytest.raises(DamagedStateError, match="state.json: not a readable batch state"):
        BatchState.load(tmp_path)


def test_anthropic_mapping_both_ways():
    body = {"model": "claude-x", "messages": [{"role": "system", "content": "You are P."},
                                             {"role": "user", "content": "Q?"}],
            "max_tokens": 8, "temperature": 1.5, "seed": 3, "logprobs": True, "top_logprobs": 5}
    assert anthropic_params(body) == {"model": "claude-x", "max_tokens": 8, "system": "You are P.",
                                      "messages": [{"role": "user", "content": "Q?"}], "temperature": 1.0}
    line = anthropic_result_line({"custom_id": "k", "result": {"type": "succeeded", "message": {
        "id": "m", "content": [{"type": "text", "text": "B"}], "usage": {"input_tokens": 7, "output_tokens": 1}}}})
    body = line["response"]["body"]
    assert body["choices"][0]["message"]["content"] == "B" and body["usage"] == {"prompt_tokens": 7, "completion_tokens": 1}
    assert anthropic_result_line({"custom_id": "k", "result": {"type": "expired"}})["error"]["code"] == "batch_expired"
    errored = anthropic_result_line({"custom_id": "k", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "invalid_request_error", "message": "too long"}}}})
    assert errored["response"]["status_code"] == 400


def test_http_statuses_map_to_the_batch_error_classes():
    assert isinstance(classify(401, "x"), BatchAuthError) and isinstance(classify(403, "x"), BatchAuthError)
    assert isinstance(classify(400, "x"), BatchRefusedError) and isinstance(classify(404, "x"), BatchRefusedError)
    for status in (429, 500, 503, None):
        assert isinstance(classify(status, "x"), TransientBatchError)


def test_the_embedded_model_cannot_go_through_a_batch_api(tmp_path):
    """A local model's requests in a batch file would be answered by another model under its keys."""
    from types import SimpleNamespace

    from simsurvey.errors import UserError
    from simsurvey.respondents.config import ModelConfig, RunnerConfig
    from simsurvey.runner.batch._drive import make_provider

    ctx = SimpleNamespace(model=ModelConfig(backend="local", name="SmolLM2-135M-Instruct"),
                          runner=RunnerConfig(executor="batch"), backend=None)
    with pytest.raises(UserError, match=r"^runner.executor: 'batch' .* model.backend 'local' .* runs in this process"):
        make_provider(ctx, tmp_path)
