"""Checkpoint parts: atomic writes, stray tmp files, schema round trip, damaged parts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from simsurvey.errors import DamagedStateError
from simsurvey.io import atomic_path, schema_version
from simsurvey.runner._checkpoint import (
    RESPONSE_COLUMNS,
    RESPONSE_SCHEMA,
    PartWriter,
    check_parts,
    model_slug,
    part_paths,
    read_parts,
    row_key,
)

PART_NAME = re.compile(r"^part-(\d{5})-[0-9a-f]{12}\.parquet$")


def _numbers(d: Path) -> list[int]:
    return [int(PART_NAME.match(p.name).group(1)) for p in part_paths(d)]


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
    parts = part_paths(tmp_path)
    assert _numbers(tmp_path) == [0, 1]
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
    # A write killed between creating its temporary file and renaming it: the temporary file is
    # made by the real code (atomic_path), not named by hand.
    killed = atomic_path(tmp_path / "part-00001-0123456789ab.parquet")
    stray = Path(killed.__enter__())
    stray.write_bytes(b"PAR1 torn")
    assert stray.name.startswith(".part-00001") and stray.exists()
    w2 = PartWriter(tmp_path, flush_every=1, flush_seconds=3600)
    assert not stray.exists()
    w2.add(_row(1))
    assert _numbers(tmp_path) == [0, 1] and len(list(tmp_path.iterdir())) == 2
    assert len(read_parts(tmp_path)) == 2


def test_old_part_names_are_still_read(tmp_path):
    w = PartWriter(tmp_path, flush_every=1, flush_seconds=3600)
    w.add(_row(0))
    part_paths(tmp_path)[0].rename(tmp_path / "part-00000.parquet")
    w2 = PartWriter(tmp_path, flush_every=1, flush_seconds=3600)
    w2.add(_row(1))
    names = [p.name for p in part_paths(tmp_path)]
    assert names[0] == "part-00000.parquet" and PART_NAME.match(names[1]).group(1) == "00001"
    assert read_parts(tmp_path)["persona_id"].tolist() == [0, 1]


_WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from runner.test_checkpoint import _row
from simsurvey.runner._checkpoint import PartWriter
w = PartWriter(Path(sys.argv[1]), flush_every=1, flush_seconds=3600)
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # both writers opened the directory (and read the same counter)
for i in range(5):
    w.add(_row(int(sys.argv[2]) * 100 + i))
"""


def test_two_writer_processes_never_overwrite_each_others_parts(tmp_path):
    code = _WRITER.format(tests=str(Path(__file__).resolve().parents[1]))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(k)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for k in (1, 2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    # Both started from part 0: the numbers collide, the names do not; no row is lost.
    assert sorted(_numbers(tmp_path)) == sorted([0, 1, 2, 3, 4] * 2)
    assert sorted(read_parts(tmp_path)["persona_id"].tolist()) == [*range(100, 105), *range(200, 205)]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_part_is_named_and_can_be_dropped(tmp_path, damage):
    part_dir = tmp_path / "parts" / "responses" / "m_x"
    w = PartWriter(part_dir, flush_every=1, flush_seconds=3600)
    w.add(_row(0))
    w.add(_row(1))
    bad = part_paths(part_dir)[1]
    data = bad.read_bytes()
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"x" * len(data), "empty": b""}[damage])
    with pytest.raises(DamagedStateError) as err:
        read_parts(part_dir)
    assert str(bad) in str(err.value) and "runner.drop_damaged_parts=true" in str(err.value)
    with pytest.raises(DamagedStateError):
        check_parts(tmp_path)
    assert bad.exists()  # nothing is deleted unless asked
    assert check_parts(tmp_path, drop=True) == [bad]
    assert read_parts(part_dir)["persona_id"].tolist() == [0]


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
