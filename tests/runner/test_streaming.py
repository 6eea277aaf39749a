"""The streaming readers of the checkpoint parts: compact done keys, the selection of a model's
final rows, and responses.parquet written from the parts (issue 12, "a runner that streams").

Every reader is checked against an independent computation: the in-memory algorithm the runner
used before (read every part into one frame, dedupe, sort), written out here on its own.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from runner_data import make_instrument, make_personas, make_trials

from simsurvey.errors import DamagedStateError
from simsurvey.io import write_parquet
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer
from simsurvey.runner._checkpoint import (
    KEY_COLUMNS,
    RESPONSE_COLUMNS,
    RESPONSE_SCHEMA,
    SORT_COLUMNS,
    KeySet,
    PartWriter,
    done_keys,
    final_rows,
    key_hashes,
    model_slug,
    read_parts,
    read_selected,
    row_key,
    select_rows,
    write_responses,
)

MODEL = "openai/fake"


# -- the independent computation: today's in-memory algorithm ---------------------------------

def _old_done(part_dir: Path, valid_only: bool = False) -> set[tuple]:
    done = read_parts(part_dir)
    final = done["error"].isna()
    if valid_only:
        final &= done["valid"].astype(bool)
    return {row_key(r) for r in done.loc[final, list(KEY_COLUMNS)].to_dict("records")}


def _old_frame(part_dir: Path, wanted: set[tuple] | None) -> pd.DataFrame:
    frame = read_parts(part_dir)
    keys = [row_key(dict(zip(KEY_COLUMNS, k))) for k in zip(*(frame[c].tolist() for c in KEY_COLUMNS))]
    keep = np.array([wanted is None or k in wanted for k in keys], dtype=bool)
    rank = pd.DataFrame({"ok": frame["error"].isna().to_numpy(), "n": np.arange(len(frame))}, index=frame.index)
    order = rank.loc[keep].sort_values(["ok", "n"], kind="stable").index
    frame = frame.loc[order].drop_duplicates(subset=list(KEY_COLUMNS), keep="last")
    return frame.sort_values(SORT_COLUMNS, kind="stable", na_position="first").reset_index(drop=True)


def _wanted(trials: pd.DataFrame, model: str) -> tuple[set[tuple], KeySet]:
    keys = {row_key({**r, "model": model}) for r in trials[list(KEY_COLUMNS[:-1])].to_dict("records")}
    return keys, KeySet.of(trials["persona_id"], trials["question_id"], trials["condition_id"], trials["replicate"],
                           model)


def _run(tmp_path: Path, url: str, trials: pd.DataFrame, *, n: int, model: str = MODEL, run_dir: str = "run",
         frame: bool = True, **runner_kw):
    inst = make_instrument()
    base = {"concurrency": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "cache_dir": str(tmp_path / "cache"),
            "flush_every": 4, "flush_seconds": 0.2, "timeout_s": 5, "max_retries": 0}
    base.update(runner_kw)
    cfg = (ModelConfig(backend=model, name=model, elicitation="both") if model.startswith("baseline/")
           else ModelConfig(backend="litellm", name=model, api_base=url, elicitation="sample"))
    return administer(trials, make_personas(n), inst, model=cfg, prompt=PromptConfig(),
                      runner=RunnerConfig(**base), run_dir=tmp_path / run_dir, seed=11, progress=False, frame=frame)


# -- key hashes and the key set ----------------------------------------------------------------

def test_key_hashes_do_not_depend_on_the_column_types():
    pids = [3, None, 12]
    as_int64 = key_hashes(pd.array(pids, dtype="Int64"), ["a", "b", "a"], ["x", "x", "y"], [0, 1, 0], "m")
    as_arrow = key_hashes(pa.chunked_array([pa.array(pids, pa.int64())]), pa.array(["a", "b", "a"]),
                          pa.array(["x", "x", "y"]).dictionary_encode(), pa.array([0, 1, 0]),
                          pa.array(["m", "m", "m"]))
    as_float = key_hashes(pd.Series([3.0, np.nan, 12.0]), pd.Categorical(["a", "b", "a"]),
                          np.array(["x", "x", "y"], dtype=object), np.array([0, 1, 0]), ["m", "m", "m"])
    for a, b in ((as_int64, as_arrow), (as_int64, as_float)):
        assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    # a null persona is not persona 0, replicate 0 is not replicate 1, the model is part of the key
    h = key_hashes([None, 0, 0, 0], ["a"] * 4, ["x"] * 4, [0, 0, 1, 0], ["m", "m", "m", "n"])
    assert len(set(h[0].tolist())) == 4 and len(set(h[1].tolist())) == 4


def test_key_set_membership_matches_a_python_set():
    rng = random.Random(5)
    universe = [(rng.choice([None, *range(300)]), f"q{rng.randrange(40)}", rng.choice(["as_is|letters", "reversed|numbers"]),
                 rng.randrange(3), rng.choice(["m/a", "m/b"])) for _ in range(20_000)]
    members = set(universe[:12_000])
    ks = KeySet.of(*zip(*universe[:12_000]))
    assert len(ks) == len(members) and ks.nbytes == 16 * len(members)  # duplicates were dropped
    got = ks.contains(*zip(*universe))
    assert got.tolist() == [k in members for k in universe]
    assert universe[0] in ks and (10**6, "q0", "x", 0, "m/a") not in ks
    assert not KeySet().contains([1], ["q"], ["c"], [0], ["m"]).any()


def test_key_set_resolves_a_shared_first_hash():
    # Force a collision of the first hash: membership falls back to the second.
    h1 = np.array([7, 7, 9], dtype=np.uint64)
    h2 = np.array([1, 2, 3], dtype=np.uint64)
    ks = KeySet.from_hashes(h1, h2)
    q1, q2 = np.array([7, 7, 7, 9, 9], dtype=np.uint64), np.array([1, 2, 3, 3, 1], dtype=np.uint64)
    assert ks.contains_hashes(q1, q2).tolist() == [True, True, False, True, False]


# -- parts written by the runner: done keys, selection, responses.parquet ---------------------

@pytest.fixture
def messy_run(tmp_path, server, fake):
    """One run directory with resumed, errored, re-asked and stale rows, and a baseline."""
    inst = make_instrument()
    trials = make_trials(inst, 5, replicates=3)  # 5 personas + no_persona, 2 questions x 2 conditions x 3 reps
    bigger = make_trials(inst, 6, replicates=2)  # a persona the final design no longer has: stale rows
    def faults(**at: str) -> dict[int, str]:  # arrival index (counted over the whole test) -> fault
        return {len(fake.log) + int(i[1:]): kind for i, kind in at.items()}

    fake.schedule = faults(i0="500", i4="garbage", i9="500", i13="refusal", i20="500")
    _run(tmp_path, server.url, bigger.iloc[: len(bigger) // 2], n=6)  # killed half-way: a part only
    fake.schedule = faults(i2="500", i5="garbage")
    _run(tmp_path, server.url, bigger, n=6)  # resume: asks the errors again, finishes
    fake.schedule = faults(i1="garbage")
    _run(tmp_path, server.url, bigger, n=6, retry="invalid")  # re-asks the invalid ones
    fake.schedule = faults(i0="500", i1="500")  # the third replicates are new: two fail and stay failed
    res = _run(tmp_path, server.url, trials.iloc[::-1], n=5, flush_every=1)
    assert res.frame["error"].notna().sum() == 2 and len(res.frame) == len(trials)
    base = _run(tmp_path, server.url, trials, n=5, model="baseline/uniform")
    return tmp_path / "run", trials, res, base


def test_done_keys_are_the_final_rows(messy_run):
    run_dir, _, _, _ = messy_run
    part_dir = run_dir / "parts" / "responses" / model_slug(MODEL)
    errors = read_parts(part_dir)["error"].notna().sum()
    assert errors >= 3  # the fixture made errored rows, and later answers for some of them
    for valid_only in (False, True):
        old = _old_done(part_dir, valid_only)
        ks = done_keys(part_dir, valid_only=valid_only)
        assert len(ks) == len(old)
        assert ks.contains(*zip(*old)).all()
        # every key of a row in the parts that is not final is not in the set
        every = {row_key(r) for r in read_parts(part_dir)[list(KEY_COLUMNS)].to_dict("records")}
        rest = sorted(every - old, key=str)
        assert rest and not ks.contains(*zip(*rest)).any()


def test_select_rows_is_the_old_in_memory_frame(messy_run):
    run_dir, trials, res, base = messy_run
    for model, result in ((MODEL, res), ("baseline/uniform", base)):
        part_dir = run_dir / "parts" / "responses" / model_slug(model)
        keys, wanted = _wanted(trials, model)
        old = _old_frame(part_dir, keys)
        sel = select_rows(part_dir, wanted)
        new = read_selected(sel)
        pd.testing.assert_frame_equal(new, old)
        pd.testing.assert_frame_equal(new, result.frame)
        assert len(old) == len(trials)
        assert sel.stats() == {"rows": len(old), "valid": int(old["valid"].sum()),
                               "invalid": int((~old["valid"].astype(bool)).sum()),
                               "refusals": int(old["refusal"].sum()), "errors": int(old["error"].notna().sum())}
        assert {k: result.stats[k] for k in sel.stats()} == sel.stats()
    # without a design: every key of the parts, the stale persona's too
    part_dir = run_dir / "parts" / "responses" / model_slug(MODEL)
    pd.testing.assert_frame_equal(read_selected(select_rows(part_dir)), _old_frame(part_dir, None))


def test_streamed_responses_parquet_is_the_file_of_the_concatenated_frames(messy_run, tmp_path):
    run_dir, trials, _, _ = messy_run
    old_path, new_path = tmp_path / "old.parquet", tmp_path / "new.parquet"
    frames = []
    sels = []
    for model in (MODEL, "baseline/uniform"):
        part_dir = run_dir / "parts" / "responses" / model_slug(model)
        keys, wanted = _wanted(trials, model)
        frames.append(_old_frame(part_dir, keys))
        sels.append(select_rows(part_dir, wanted))
    write_parquet(pd.concat(frames, ignore_index=True), old_path, kind="responses", schema=RESPONSE_SCHEMA)
    # small row groups: several per model, and one across the boundary of two parts
    n = write_responses(new_path, sels, row_group_rows=7)
    old, new = pq.read_table(old_path), pq.read_table(new_path)
    assert n == len(old) == 2 * len(trials)
    assert new.schema.equals(old.schema, check_metadata=True)
    assert new.equals(old)
    assert pq.ParquetFile(new_path).metadata.num_row_groups > 2
    pd.testing.assert_frame_equal(pd.read_parquet(new_path), pd.read_parquet(old_path))
    assert not list(tmp_path.glob(".new.*"))  # written atomically


def test_empty_selection_writes_the_empty_contract(tmp_path):
    sel = select_rows(tmp_path / "none")
    assert len(sel) == 0 and sel.stats()["rows"] == 0
    path = tmp_path / "responses.parquet"
    assert write_responses(path, [sel]) == 0
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.schema.equals(RESPONSE_SCHEMA) and table.schema.metadata[b"simsurvey.kind"] == b"responses"
    assert list(read_selected(sel).columns) == list(RESPONSE_COLUMNS)


# -- hand-made parts: NaN, conversations, damage ------------------------------------------------

def _row(pid, q="q1", rep=0, **kw):
    row = {c: None for c in RESPONSE_COLUMNS}
    row.update(persona_id=pid, question_id=q, condition_id="as_is|letters", replicate=rep, order_mode="as_is",
               label_style="letters", neutral_option=False, cue_style="attributes", option_order=["a", "b"],
               model="m/x", backend="litellm", elicitation="both", prompt_hash="h", raw_text="A",
               answer_code="a", valid=True, refusal=False, probs={"a": 0.7, "b": 0.3}, missing_mass=0.1,
               latency_s=0.2, prompt_tokens=10, completion_tokens=1, cost_usd=None, cached=False, error=None)
    row.update(kw)
    return row


def test_nan_is_written_as_null_as_from_a_frame(tmp_path):
    w = PartWriter(tmp_path / "p", flush_every=10, flush_seconds=3600)
    w.add(_row(1, missing_mass=float("nan"), cost_usd=float("nan")))
    w.add(_row(0, q="q2"))
    w.flush()
    sel = select_rows(tmp_path / "p")
    write_responses(tmp_path / "new.parquet", [sel])
    write_parquet(_old_frame(tmp_path / "p", None), tmp_path / "old.parquet", kind="responses", schema=RESPONSE_SCHEMA)
    assert pq.read_table(tmp_path / "new.parquet").equals(pq.read_table(tmp_path / "old.parquet"))
    assert pq.read_table(tmp_path / "new.parquet").column("missing_mass").null_count == 1


def test_final_rows_are_the_latest_final_turns(tmp_path):
    w = PartWriter(tmp_path, flush_every=100, flush_seconds=3600)
    w.add(_row(1, q="q1", question_position=0, raw_text="A", answer_code="a"))
    w.add(_row(1, q="q2", question_position=1, error="HTTP 500", valid=False, raw_text=None, answer_code=None))
    w.flush()
    w.add(_row(1, q="q2", question_position=1, raw_text="B", answer_code="b"))
    w.add(_row(1, q="q1", question_position=0, raw_text="garbage", answer_code=None, valid=False))  # re-asked
    w.add(_row(2, q="q1"))  # not a conversation turn
    w.flush()
    got = final_rows(tmp_path)
    assert set(got) == {(1, "q1", "as_is|letters", 0, "m/x"), (1, "q2", "as_is|letters", 0, "m/x")}
    assert got[(1, "q2", "as_is|letters", 0, "m/x")]["raw_text"] == "B"
    assert got[(1, "q1", "as_is|letters", 0, "m/x")]["raw_text"] == "garbage"  # the latest answered row
    valid = final_rows(tmp_path, valid_only=True)
    assert valid[(1, "q1", "as_is|letters", 0, "m/x")]["raw_text"] == "A"  # the latest valid one


def test_a_damaged_part_is_named(tmp_path):
    w = PartWriter(tmp_path, flush_every=100, flush_seconds=3600)
    w.add(_row(1))
    w.flush()
    (bad := tmp_path / "part-00007.parquet").write_bytes(b"PAR1 torn")
    for read in (done_keys, select_rows, final_rows):
        with pytest.raises(DamagedStateError, match="part-00007.parquet: damaged checkpoint part"):
            read(tmp_path)
    assert bad.exists()


# -- the runner on the streaming readers ---------------------------------------------------------

def test_a_run_reads_the_parts_by_projection_only(tmp_path, server, fake, monkeypatch):
    """No read of every column of every part during administer(): the done keys, the histories
    and the result's rows are projections; the frame is read only when asked for."""
    inst = make_instrument()
    trials = make_trials(inst, 4)
    fake.schedule = {3: "500"}
    _run(tmp_path, server.url, trials.iloc[:10], n=4)  # parts to resume from, one error among them
    reads: list[list[str] | None] = []
    real = pq.read_table

    def spy(source, *args, columns=None, **kw):
        reads.append(None if columns is None else list(columns))
        return real(source, *args, columns=columns, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    res = _run(tmp_path, server.url, trials, n=4, frame=False)  # as the pipeline calls it
    allowed = {*KEY_COLUMNS, "error", "valid", "refusal"}
    assert reads and all(cols is not None and set(cols) <= allowed for cols in reads), reads
    assert res.stats["resumed_rows"] == 9 and res.stats["new_rows"] == len(trials) - 9
    n_before = len(reads)
    assert len(res.frame) == len(trials) and res.frame["error"].isna().all()
    assert None in reads[n_before:]  # the frame: whole parts, read now


def test_the_library_result_keeps_its_rows_after_the_run_directory_is_gone(tmp_path, server):
    """administer() (frame=True, the default) reads the rows before it returns: a caller that
    removes a temporary run directory still has them."""
    import shutil

    trials = make_trials(make_instrument(), 3)
    res = _run(tmp_path, server.url, trials, n=3)
    shutil.rmtree(tmp_path / "run")
    assert len(res.frame) == len(trials) and res.frame["error"].isna().all()


def test_trials_become_dicts_a_persona_chunk_at_a_time(tmp_path, server, fake, monkeypatch):
    from simsurvey.runner import _administer as adm

    inst = make_instrument()
    trials = make_trials(inst, 6, replicates=2)  # 8 trials a persona
    sizes: list[int] = []
    real = adm._records
    monkeypatch.setattr(adm, "_records", lambda t: sizes.append(len(t)) or real(t))
    res = _run(tmp_path, server.url, trials, n=6, chunk_size=10)
    assert sum(sizes) == len(trials) and max(sizes) <= 10 + 8 - 1 and len(sizes) >= 4
    assert len(res.frame) == len(trials)
    # the same rows as one chunk of the whole design (a fresh run dir, everything from the cache)
    sizes.clear()
    whole = _run(tmp_path, server.url, trials, n=6, chunk_size=10**6, run_dir="other")
    assert sizes == [len(trials)]
    cols = [c for c in RESPONSE_COLUMNS if c not in ("latency_s", "cached", "cost_usd")]
    pd.testing.assert_frame_equal(whole.frame[cols], res.frame[cols])


def test_chunk_bounds_are_the_persona_chunks():
    from simsurvey.runner import _administer as adm

    rng = random.Random(3)
    for _ in range(200):
        pids = sorted(rng.choice(range(6)) for _ in range(rng.randrange(0, 30))) + [None] * rng.randrange(0, 4)
        size = rng.randrange(1, 9)
        expect = [len(c) for c in adm._persona_chunks([{"persona_id": p} for p in pids], size)]
        got = [hi - lo for lo, hi in adm._chunk_bounds(pd.Series(pd.array(pids, dtype="Int64")), size)]
        assert got == expect, (pids, size)


def test_this_runs_keys_are_a_compact_log():
    from simsurvey.runner._checkpoint import KeyLog

    log = KeyLog()
    keys = [(p, f"q{p % 7}", "c", r, "m") for p in range(70_000) for r in (0, 1)][:100_000]
    for k in keys:
        log.add(k)
    assert keys[5] in log and (5, "q5", "c", 3, "m") not in log and (None, "q0", "c", 0, "m") not in log
    probe = keys[::997] + [(p, "q0", "c", 9, "m") for p in range(50)]
    assert log.contains_keys(probe).tolist() == [True] * len(keys[::997]) + [False] * 50
    assert len(log) == len(keys)


def _cli(run_dir: Path, cache: Path, *extra: str) -> None:
    import os
    import subprocess
    import sys

    from simsurvey.config import PROJECT_ROOT

    env = {**os.environ, "CI": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "simsurvey", "+experiment=politics", "model=baseline/uniform",
         "baselines=[majority,reference]", "population.n=5", "stages=[sample,administer]", "runner.flush_every=7",
         f"runner.cache_dir={cache}", f"hydra.run.dir={run_dir}", *extra],
        check=False, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_pipelines_streamed_responses_parquet_is_the_concatenated_frames(tmp_path):
    """responses.parquet of the pipeline = the frames of each model (the old in-memory algorithm
    over its parts) concatenated and written as one frame, also after a resume re-asked rows."""
    run_dir = tmp_path / "run"
    _cli(run_dir, tmp_path / "cache")
    parts = run_dir / "parts" / "responses"
    models = ["baseline/uniform", "baseline/majority", "baseline/reference"]

    def expected() -> pa.Table:
        frames = [_old_frame(parts / model_slug(m), None) for m in models]
        write_parquet(pd.concat(frames, ignore_index=True), tmp_path / "old.parquet", kind="responses",
                      schema=RESPONSE_SCHEMA)
        return pq.read_table(tmp_path / "old.parquet")

    got = pq.read_table(run_dir / "responses.parquet")
    assert got.equals(expected()) and got.schema.equals(expected().schema, check_metadata=True)
    assert set(got.column("model").to_pylist()) == set(models)
    # a part lost: its rows are asked again by the resume, in a later part; the file is rebuilt
    lost = sorted((parts / "baseline_majority").glob("part-*.parquet"))[1]
    lost.unlink()
    _cli(run_dir, tmp_path / "cache")
    again = pq.read_table(run_dir / "responses.parquet")
    assert again.equals(expected()) and again.num_rows == got.num_rows
    manifest = __import__("json").loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["administer"]["rows"] == got.num_rows
