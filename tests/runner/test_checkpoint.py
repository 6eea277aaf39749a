"""Checkpoint parts: atomic writes, stray tmp files, schema round trip."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from simsurvey.io import schema_version
from simsurvey.runner._checkpoint import RESPONSE_COLUMNS, RESPONSE_SCHEMA, PartWriter, model_slug, read_parts, row_key


def _row(pid, q="q1", rep=0, **kw):
    row = {c: None for c in RESPONSE_COLUMNS}
    row.update(persona_id=pid, question_id=q, condition_id="as_is|letters", replicate=rep, order_mode="as_is",
               label_style="letters", neutral_option=False, cue_style="attributes", option_order=["a", "b"],
               model="m/x", backend="litellm", elicitation="both", prompt_hash="h", raw_text="A",
               answer_code="a", valid=True, refusal=False, probs={"a": 0.7, "b": 0.3}, missing_mass=0.1,
               latency_s=0.2, prompt_tokens=10, completion_tokens=1, cost_usd=None, cached=False, error=None)
    row.update(kw)
    return row


def test_model_slug():
    assert model_slug("openai/gpt-4o-mini") == "openai_gpt-4o-mini"
    assert model_slug("baseline/uniform") == "baseline_uniform"
    assert model_slug("openai/Qwen/Qwen2.5-1.5B-Instruct") == "openai_Qwen_Qwen2.5-1.5B-Instruct"
    assert model_slug("../..") == "model"


def test_parts_round_trip_the_contract_schema(tmp_path):
    w = PartWriter(tmp_path, flush_every=2, flush_seconds=3600)
    w.add(_row(0))
    assert not list(tmp_path.glob("part-*"))
    w.add(_row(None, probs=None, valid=False, answer_code=None, error="HTTP 500 (gave up after 6 retries)"))
    w.add(_row(1, rep=1))
    w.flush()
    parts = sorted(tmp_path.glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet"]
    assert schema_version(parts[0]) == "1"
    assert pq.read_schema(parts[0]).remove_metadata().equals(RESPONSE_SCHEMA)
    df = read_parts(tmp_path)
    assert list(df.columns) == list(RESPONSE_COLUMNS)
    assert str(df["persona_id"].dtype) == "Int64" and df["persona_id"].isna().sum() == 1
    assert df.loc[0, "probs"] == {"a": 0.7, "b": 0.3} and df.loc[1, "probs"] is None
    assert df.loc[0, "option_order"] == ["a", "b"]
    assert [row_key(r) for r in df.to_dict("records")] == [
        (0, "q1", "as_is|letters", 0, "m/x"), (None, "q1", "as_is|letters", 0, "m/x"), (1, "q1", "as_is|letters", 1, "m/x")]


def test_reopening_continues_numbering_and_removes_stray_tmp(tmp_path):
    w = PartWriter(tmp_path, flush_every=1, flush_seconds=3600)
    w.add(_row(0))
    stray = tmp_path / ".part-00001.parquet.abc123.tmp"
    stray.write_bytes(b"PAR1 torn")
    w2 = PartWriter(tmp_path, flush_every=1, flush_seconds=3600)
    assert not stray.exists()
    w2.add(_row(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert len(read_parts(tmp_path)) == 2


def test_flush_calls_on_flush_first_and_time_threshold(tmp_path, monkeypatch):
    calls = []
    now = [0.0]
    monkeypatch.setattr("simsurvey.runner._checkpoint.time.monotonic", lambda: now[0])
    w = PartWriter(tmp_path, flush_every=100, flush_seconds=5, on_flush=lambda: calls.append(len(list(tmp_path.glob("part-*")))))
    w.add(_row(0))
    assert not w.due() and calls == []
    now[0] = 5.0
    assert w.due()
    w.add(_row(1))  # the time threshold writes the part
    assert calls == [0] and len(read_parts(tmp_path)) == 2


def test_read_parts_of_missing_dir_is_empty_with_schema(tmp_path):
    df = read_parts(tmp_path / "nope")
    assert len(df) == 0 and list(df.columns) == list(RESPONSE_COLUMNS)


def test_failed_write_leaves_no_part(tmp_path):
    w = PartWriter(tmp_path, flush_every=10, flush_seconds=3600)
    w.add(_row(0, probs={"a": "not a number"}))
    with pytest.raises(Exception):
        w.flush()
    assert list(tmp_path.iterdir()) == []


def test_a_part_written_before_invalid_reason_existed_reads_back_with_nulls(tmp_path):
    import pyarrow as pa

    old_schema = pa.schema([f for f in RESPONSE_SCHEMA if f.name != "invalid_reason"])
    rows = [{k: v for k, v in _row(i).items() if k != "invalid_reason"} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows, schema=old_schema), tmp_path / "part-00000.parquet")
    df = read_parts(tmp_path)
    assert list(df.columns) == list(RESPONSE_COLUMNS) and len(df) == 3
    assert df["invalid_reason"].isna().all() and df["answer_code"].tolist() == ["a"] * 3
