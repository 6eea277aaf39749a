"""Checkpoints: completed response rows appended as parquet parts, read back on resume.

Layout: ``run_dir/parts/responses/<model-slug>/part-<n>-<writer>.parquet``, where ``<writer>``
is random per :class:`PartWriter`, so two writers on one directory (two processes that got
past the run-directory lock) never overwrite each other's parts; readers accept the older
``part-<n>.parquet`` too. Each part is written to a temporary file and renamed into place
(:func:`simsurvey.io.write_table`), so a run killed at any moment leaves whole parts only; a
stray temporary file from a kill during a write is removed when the writer opens the
directory. A row's key is ``(persona_id, question_id, condition_id, replicate, model)``; on
resume the keys already in the parts are skipped (a key in two parts is read once).

A part damaged after it was written (a disk error, a truncated copy) is diagnosed by
:func:`check_parts`, which names it and, on request, drops it so its rows are asked again.

Reading the parts back never needs them all in memory at once (a million-row run):

- :func:`done_keys` projects the key columns (and ``error``, ``valid``) of every part into a
  :class:`KeySet`, two 64-bit hashes per key (16 bytes a key, 16 MB for a million);
- :func:`select_rows` projects the key columns, ``error``, ``valid`` and ``refusal`` into a
  :class:`Selection`: which row of which part is a key's final row, in ``responses.parquet``
  order (the rule of :func:`select_rows`), with its counts (:meth:`Selection.stats`);
- :func:`iter_selected` / :func:`read_selected` gather those rows from the parts, a block at a
  time, and :func:`write_responses` streams the selections of all models into
  ``responses.parquet`` by row groups with :class:`pyarrow.parquet.ParquetWriter`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simsurvey.errors import DamagedStateError
from simsurvey.io import atomic_path, kind_schema_version, stray_temps, write_table

#: Arrow schema of ``responses.parquet`` (the shared contract), in column order.
RESPONSE_SCHEMA = pa.schema([
    ("persona_id", pa.int64()),
    ("question_id", pa.string()),
    ("condition_id", pa.string()),
    ("replicate", pa.int64()),
    ("order_mode", pa.string()),
    ("label_style", pa.string()),
    ("neutral_option", pa.bool_()),
    ("cue_style", pa.string()),
    ("option_order", pa.list_(pa.string())),
    ("experiment", pa.string()),
    ("arm", pa.string()),
    ("question_position", pa.int64()),
    ("previous_question", pa.string()),
    ("item_position", pa.int64()),
    ("model", pa.string()),
    ("backend", pa.string()),
    ("elicitation", pa.string()),
    ("prompt_hash", pa.string()),
    ("raw_text", pa.string()),
    ("answer_code", pa.string()),
    ("answer_value", pa.float64()),
    ("valid", pa.bool_()),
    ("refusal", pa.bool_()),
    ("invalid_reason", pa.string()),
    ("probs", pa.map_(pa.string(), pa.float64())),
    ("missing_mass", pa.float64()),
    ("latency_s", pa.float64()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("cost_usd", pa.float64()),
    ("cached", pa.bool_()),
    ("error", pa.string()),
])
RESPONSE_COLUMNS: tuple[str, ...] = tuple(RESPONSE_SCHEMA.names)
KEY_COLUMNS: tuple[str, ...] = ("persona_id", "question_id", "condition_id", "replicate", "model")
SORT_COLUMNS: list[str] = ["persona_id", "question_id", "condition_id", "replicate"]
_PART = re.compile(r"^part-(\d+)(?:-[0-9a-f]+)?\.parquet$")

RowKey = tuple[int | None, str, str, int, str]


def model_slug(name: str) -> str:
    """A file-system-safe directory name for a model id (``openai/gpt-4o`` -> ``openai_gpt-4o``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def row_key(row: dict[str, Any]) -> RowKey:
    """The identity of a response row."""
    pid = row["persona_id"]
    return (None if pid is None or pd.isna(pid) else int(pid), str(row["question_id"]),
            str(row["condition_id"]), int(row["replicate"]), str(row["model"]))


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """Responses arrow table -> DataFrame (nullable Int64 persona_id, probs as dicts)."""
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    df["replicate"] = df["replicate"].astype("int64")
    df["probs"] = [dict(p) if p is not None else None for p in df["probs"]]
    df["option_order"] = [list(o) if o is not None else None for o in df["option_order"]]
    return df


def frame_to_table(df: pd.DataFrame) -> pa.Table:
    """Responses DataFrame -> arrow table with :data:`RESPONSE_SCHEMA` (for ``write_table``)."""
    return pa.Table.from_pandas(df[list(RESPONSE_COLUMNS)], schema=RESPONSE_SCHEMA, preserve_index=False)


def part_paths(part_dir: Path) -> list[Path]:
    """The checkpoint parts in ``part_dir``, in write order."""
    found = [(int(m.group(1)), p.name, p) for p in Path(part_dir).glob("part-*.parquet") if (m := _PART.match(p.name))]
    return [p for _, _, p in sorted(found)]


def _read_part(path: Path) -> pa.Table:
    return _conform(pq.read_table(path))


def read_parts(part_dir: Path) -> pd.DataFrame:
    """All rows checkpointed in ``part_dir`` (an empty frame with the schema when none).

    Raises:
        DamagedStateError: a part is unreadable (see :func:`check_parts`).
    """
    paths = part_paths(part_dir)
    if not paths:
        return table_to_frame(RESPONSE_SCHEMA.empty_table())
    tables = []
    for p in paths:
        try:
            tables.append(_read_part(p))
        except (OSError, pa.ArrowException, ValueError, KeyError) as err:
            raise _damaged(p, err) from None
    return table_to_frame(pa.concat_tables(tables))


def _damaged(path: Path, err: BaseException) -> DamagedStateError:
    reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
    return DamagedStateError(
        f"{path}: damaged checkpoint part ({reason}); rerun with runner.drop_damaged_parts=true to delete it "
        "and ask its rows again (calls already in the response cache are not paid twice)"
    )


def check_parts(run_dir: Path, *, drop: bool = False) -> list[Path]:
    """Read every checkpoint part of a run directory; report or drop the damaged ones.

    Args:
        run_dir: The run directory (parts under ``parts/responses/<model-slug>/``).
        drop: Delete damaged parts (their rows are then asked again on resume) instead of
            raising.

    Returns:
        The parts that were dropped.

    Raises:
        DamagedStateError: a part is damaged and ``drop`` is False (names the first one).
    """
    dropped: list[Path] = []
    for part_dir in sorted(p for p in (Path(run_dir) / "parts" / "responses").glob("*") if p.is_dir()):
        for path in part_paths(part_dir):
            try:
                _read_part(path)
            except (OSError, pa.ArrowException, ValueError, KeyError) as err:
                if not drop:
                    raise _damaged(path, err) from None
                path.unlink()
                dropped.append(path)
    return dropped


def _conform(table: pa.Table) -> pa.Table:
    """A part in :data:`RESPONSE_SCHEMA`; a column added since it was written is null."""
    for name in RESPONSE_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(len(table), RESPONSE_SCHEMA.field(name).type))
    return table.select(list(RESPONSE_COLUMNS)).cast(RESPONSE_SCHEMA)


class PartWriter:
    """Buffers completed rows and writes them as numbered parquet parts.

    Args:
        part_dir: ``run_dir/parts/responses/<model-slug>``.
        flush_every: Write a part once this many rows are buffered...
        flush_seconds: ...or this many seconds after the last write.
        on_flush: Called before each part is written (the runner commits the cache there, so
            a row is never in a part without its call being in the cache).
    """

    def __init__(self, part_dir: Path, *, flush_every: int, flush_seconds: float, on_flush: Any = None) -> None:
        self.dir = Path(part_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        # Leftovers of a write interrupted by a kill (never renamed into place).
        for tmp in stray_temps(self.dir, "part-*"):
            tmp.unlink(missing_ok=True)
        numbers = [int(m.group(1)) for p in self.dir.iterdir() if (m := _PART.match(p.name))]
        self._next = max(numbers, default=-1) + 1
        # Unique per writer: another writer's part can never have this name, whatever its counter.
        self._token = uuid.uuid4().hex[:12]
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._on_flush = on_flush
        self._rows: list[dict[str, Any]] = []
        self._last = time.monotonic()
        self.written = 0

    def add(self, row: dict[str, Any]) -> None:
        """Buffer one completed row; writes a part when a flush threshold is reached."""
        self._rows.append(row)
        if len(self._rows) >= self.flush_every or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def due(self) -> bool:
        """True when buffered rows are older than ``flush_seconds``."""
        return bool(self._rows) and time.monotonic() - self._last >= self.flush_seconds

    def flush(self) -> None:
        """Write buffered rows as the next part (atomic: tmp file + rename)."""
        if self._on_flush is not None:
            self._on_flush()
        self._last = time.monotonic()
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        try:
            table = pa.Table.from_pylist(rows, schema=RESPONSE_SCHEMA)
            write_table(table, self.dir / f"part-{self._next:05d}-{self._token}.parquet", kind="responses_part")
        except BaseException:
            self._rows = rows + self._rows  # keep them for the next attempt
            raise
        self._next += 1
        self.written += len(rows)


# -- reading the parts by column projection --------------------------------------------------
#: Stands for a null persona_id (the no-persona control) in a key hash; no persona has this id.
_NO_PERSONA = -(2**63)
# Two independent 64-bit hashes per key: a false "done" needs both to collide (about n²/2¹²⁹).
_KEY_A, _KEY_B = "simsurvey-keys-a", "simsurvey-keys-b"  # 16 bytes each (pandas' hash_key)
_INT_B = np.uint64(0x9E3779B97F4A7C15)
_MUL = np.uint64(0x100000001B3)
_FLOAT_COLUMNS = [f.name for f in RESPONSE_SCHEMA if f.type == pa.float64()]
_PROJECTED = (*KEY_COLUMNS, "error", "valid", "refusal")


def _as_series(values: Any) -> pd.Series:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.to_pandas()
    return values if isinstance(values, pd.Series) else pd.Series(values)


def _ints(values: Any) -> np.ndarray:
    """An int64 key column as uint64 (a null persona_id is :data:`_NO_PERSONA`)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return pc.fill_null(values.cast(pa.int64()), _NO_PERSONA).to_numpy().astype(np.int64).view(np.uint64)
    arr = pd.array(_as_series(values).to_numpy(dtype=object, na_value=None), dtype="Int64")
    return arr.fillna(_NO_PERSONA).to_numpy("int64").view(np.uint64)


def _factorized(values: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values as an object array) of a string key column (or one string)."""
    if isinstance(values, str):
        return np.zeros(n, dtype=np.intp), np.array([values], dtype=object)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        enc = pc.dictionary_encode(values).combine_chunks() if isinstance(values, pa.ChunkedArray) \
            else pc.dictionary_encode(values)
        codes = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy(zero_copy_only=False)
        return codes, np.array([*enc.dictionary.to_pylist(), None], dtype=object)
    codes, uniques = pd.factorize(_as_series(values), use_na_sentinel=False)
    return codes, np.asarray(uniques, dtype=object)


def key_hashes(persona_id: Any, question_id: Any, condition_id: Any, replicate: Any,
               model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes of each row key (columns as arrow, pandas or numpy; ``model`` may be one
    string for all rows). The same key gives the same hashes whatever the column types."""
    n = len(persona_id)
    ints = [_ints(persona_id), _ints(replicate)]
    strs = [_factorized(v, n) for v in (question_id, condition_id, model)]
    out = []
    for key, salt in ((_KEY_A, None), (_KEY_B, _INT_B)):
        pid, rep = (pd.util.hash_array(x if salt is None else x ^ salt) for x in ints)
        q, c, m = (pd.util.hash_array(u, hash_key=key, categorize=False)[codes] for codes, u in strs)
        h = np.zeros(n, dtype=np.uint64)
        for part in (pid, q, c, rep, m):
            h = (h ^ part) * _MUL
            h ^= h >> np.uint64(29)
        out.append(h)
    return out[0], out[1]


@dataclass(frozen=True)
class KeySet:
    """A set of row keys held as two sorted 64-bit hashes a key (16 bytes per key).

    Build it with :meth:`of` (key columns) or :func:`done_keys` (the final rows of the parts).
    """

    h1: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    h2: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))

    @classmethod
    def from_hashes(cls, h1: np.ndarray, h2: np.ndarray) -> KeySet:
        """The set of the given hash pairs (sorted, duplicates dropped)."""
        order = np.lexsort((h2, h1))
        h1, h2 = h1[order], h2[order]
        if len(h1) > 1:
            new = np.r_[True, (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])]
            h1, h2 = h1[new], h2[new]
        return cls(h1, h2)

    @classmethod
    def of(cls, persona_id: Any, question_id: Any, condition_id: Any, replicate: Any, model: Any) -> KeySet:
        """The set of the keys given as columns (see :func:`key_hashes`)."""
        return cls.from_hashes(*key_hashes(persona_id, question_id, condition_id, replicate, model))

    def __len__(self) -> int:
        return len(self.h1)

    @property
    def nbytes(self) -> int:
        return self.h1.nbytes + self.h2.nbytes

    def contains_hashes(self, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
        """Whether each hash pair is in the set (a boolean array)."""
        left = np.searchsorted(self.h1, q1, "left")
        count = np.searchsorted(self.h1, q1, "right") - left
        found = np.zeros(len(q1), dtype=bool)
        one = count == 1
        found[one] = self.h2[left[one]] == q2[one]
        for i in np.flatnonzero(count > 1):  # the first hash shared by several keys: rare
            found[i] = bool((self.h2[left[i]:left[i] + count[i]] == q2[i]).any())
        return found

    def contains(self, persona_id: Any, question_id: Any, condition_id: Any, replicate: Any,
                 model: Any) -> np.ndarray:
        """Whether each key (given as columns) is in the set."""
        return self.contains_hashes(*key_hashes(persona_id, question_id, condition_id, replicate, model))

    def __contains__(self, key: object) -> bool:
        pid, qid, cond, rep, model = key  # type: ignore[misc]
        return bool(self.contains([pid], [qid], [cond], [rep], [model])[0])


class KeyLog:
    """Row keys added one at a time (the rows a run writes), held as :class:`KeySet` hashes.

    A key is buffered as a tuple until 65,536 are, then hashed in bulk into a sorted segment
    (segments are merged when there are more than eight), so a million keys cost about 16 MB and
    a microsecond each to add; :meth:`contains` answers for many keys at once.
    """

    _SEAL = 65_536

    def __init__(self) -> None:
        self._buf: list[RowKey] = []
        self._sets: list[KeySet] = []

    def add(self, key: RowKey) -> None:
        """Add one key ``(persona_id, question_id, condition_id, replicate, model)``."""
        self._buf.append(key)
        if len(self._buf) >= self._SEAL:
            self._seal()

    def _seal(self) -> None:
        if self._buf:
            self._sets.append(KeySet.of(*zip(*self._buf)))
            self._buf = []
        if len(self._sets) > 8:
            self._sets = [KeySet.from_hashes(np.concatenate([k.h1 for k in self._sets]),
                                             np.concatenate([k.h2 for k in self._sets]))]

    def __len__(self) -> int:
        self._seal()
        return sum(len(k) for k in self._sets)  # a key added twice (two segments) counts twice

    def contains(self, persona_id: Any, question_id: Any, condition_id: Any, replicate: Any,
                 model: Any) -> np.ndarray:
        """Whether each key (given as columns) was added."""
        self._seal()
        if not self._sets or not len(persona_id):
            return np.zeros(len(persona_id), dtype=bool)
        h1, h2 = key_hashes(persona_id, question_id, condition_id, replicate, model)
        found = np.zeros(len(h1), dtype=bool)
        for ks in self._sets:
            found |= ks.contains_hashes(h1, h2)
        return found

    def contains_keys(self, keys: Sequence[RowKey]) -> np.ndarray:
        """Whether each key tuple was added."""
        if not keys:
            return np.zeros(0, dtype=bool)
        return self.contains(*zip(*keys))

    def __contains__(self, key: object) -> bool:
        return bool(self.contains_keys([key])[0])  # type: ignore[list-item]


def _read_columns(path: Path, columns: Sequence[str]) -> pa.Table:
    """Some columns of one part, in :data:`RESPONSE_SCHEMA` types (a column the part lacks is null)."""
    try:
        have = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in columns if c in have])
        cols = [table.column(c) if c in have else pa.nulls(len(table), RESPONSE_SCHEMA.field(c).type)
                for c in columns]
        return pa.table(cols, schema=pa.schema([RESPONSE_SCHEMA.field(c) for c in columns]))
    except (OSError, pa.ArrowException, ValueError, KeyError) as err:
        raise _damaged(path, err) from None


def _final_mask(table: pa.Table, valid_only: bool) -> np.ndarray:
    # A failed row is never final; under retry=invalid neither is an invalid one (null = invalid).
    mask = table.column("error").is_null()
    if valid_only:
        mask = pc.and_(mask, pc.fill_null(table.column("valid"), False))
    return mask.to_numpy(zero_copy_only=False)


def _key_hashes_of(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    return key_hashes(*(table.column(c) for c in KEY_COLUMNS))


def done_keys(part_dir: Path, *, valid_only: bool = False) -> KeySet:
    """The keys with a final row in ``part_dir``: an answered one (``valid_only``: a valid one).

    Reads the key columns, ``error`` and ``valid`` of each part, nothing else.

    Raises:
        DamagedStateError: a part is unreadable.
    """
    h1s, h2s = [], []
    for path in part_paths(part_dir):
        table = _read_columns(path, (*KEY_COLUMNS, "error", "valid"))
        mask = _final_mask(table, valid_only)
        h1, h2 = _key_hashes_of(table)
        h1s.append(h1[mask])
        h2s.append(h2[mask])
    if not h1s:
        return KeySet()
    return KeySet.from_hashes(np.concatenate(h1s), np.concatenate(h2s))


def final_rows(part_dir: Path, *, valid_only: bool = False) -> dict[RowKey, dict[str, Any]]:
    """The final rows of conversation turns (rows with a ``question_position``), by row key: the
    key columns, ``raw_text`` and ``answer_code`` of a key's latest final row (the history a
    resumed conversation is rebuilt from).

    Raises:
        DamagedStateError: a part is unreadable.
    """
    out: dict[RowKey, dict[str, Any]] = {}
    cols = (*KEY_COLUMNS, "raw_text", "answer_code")
    for path in part_paths(part_dir):
        table = _read_columns(path, (*cols, "error", "valid", "question_position"))
        mask = pc.and_(pa.array(_final_mask(table, valid_only)), table.column("question_position").is_valid())
        for r in table.filter(mask).select(list(cols)).to_pylist():
            out[row_key(r)] = r
    return out


@dataclass(frozen=True)
class Selection:
    """The rows of ``responses.parquet`` one model contributes: row ``rows[i]`` of part
    ``paths[parts[i]]``, in file order, with the flags the counts need (see :func:`select_rows`)."""

    paths: list[Path]
    parts: np.ndarray
    rows: np.ndarray
    valid: np.ndarray
    refusal: np.ndarray
    error: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def stats(self) -> dict[str, int]:
        """rows, valid, invalid, refusals, errors over the selected rows."""
        valid = int(self.valid.sum())
        return {"rows": len(self), "valid": valid, "invalid": len(self) - valid,
                "refusals": int(self.refusal.sum()), "errors": int(self.error.sum())}


def _codes(column: pa.ChunkedArray, table: dict[str, int]) -> np.ndarray:
    """Codes of a string column in a run-wide table of the values seen so far (few distinct)."""
    enc = pc.dictionary_encode(column).combine_chunks()
    lookup = np.array([table.setdefault(v, len(table)) for v in enc.dictionary.to_pylist()] + [-1], dtype=np.int64)
    idx = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy(zero_copy_only=False)
    return lookup[idx]


def _sorted_categorical(codes: np.ndarray, table: dict[str, int]) -> pd.Categorical:
    cats = list(table)
    return pd.Categorical.from_codes(codes, categories=cats).reorder_categories(sorted(cats), ordered=True)


def select_rows(part_dir: Path, wanted: KeySet | None = None) -> Selection:
    """Which checkpointed rows make up this model's share of ``responses.parquet``, in its order.

    The rule (the one :func:`~simsurvey.runner.administer` has always applied): only the keys in
    ``wanted`` (the design's; all when None); of a key's rows an answered one over an error, and
    of those the latest (a row asked again, after an error or under ``runner.retry: invalid``, is
    in a later part); sorted by persona_id (nulls first), question_id, condition_id, replicate,
    stable. Reads the key columns, ``error``, ``valid`` and ``refusal`` of each part only.

    Raises:
        DamagedStateError: a part is unreadable.
    """
    paths = part_paths(part_dir)
    strings: dict[str, dict[str, int]] = {"question_id": {}, "condition_id": {}}
    chunks: list[dict[str, np.ndarray]] = []
    for i, path in enumerate(paths):
        table = _read_columns(path, _PROJECTED)
        h1, h2 = _key_hashes_of(table)
        keep = wanted.contains_hashes(h1, h2) if wanted is not None else np.ones(len(table), dtype=bool)
        if not keep.any():
            continue
        table = table.filter(pa.array(keep))
        chunks.append({
            "h1": h1[keep], "h2": h2[keep],
            "persona_id": pc.fill_null(table.column("persona_id"), _NO_PERSONA).to_numpy(),
            "question_id": _codes(table.column("question_id"), strings["question_id"]),
            "condition_id": _codes(table.column("condition_id"), strings["condition_id"]),
            "replicate": pc.fill_null(table.column("replicate"), 0).to_numpy(),
            "ok": table.column("error").is_null().to_numpy(zero_copy_only=False),
            "valid": pc.fill_null(table.column("valid"), False).to_numpy(zero_copy_only=False),
            "refusal": pc.fill_null(table.column("refusal"), False).to_numpy(zero_copy_only=False),
            "part": np.full(len(table), i, dtype=np.int32),
            "row": np.flatnonzero(keep).astype(np.int32),
        })
    if not chunks:
        empty = np.empty(0, dtype=np.int64)
        return Selection(paths, empty, empty, empty.astype(bool), empty.astype(bool), empty.astype(bool))
    df = pd.DataFrame({k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]})
    del chunks
    pid = df["persona_id"].to_numpy()
    df["persona_id"] = pd.array(np.where(pid == _NO_PERSONA, 0, pid), dtype="Int64")
    df.loc[pid == _NO_PERSONA, "persona_id"] = pd.NA
    for c in ("question_id", "condition_id"):
        df[c] = _sorted_categorical(df[c].to_numpy(), strings[c])
    # Rows are in part order: sort by (answered, position) and keep a key's last row, then
    # order the file; both sorts stable, as the in-memory frame has always been built.
    df = df.sort_values("ok", kind="stable").drop_duplicates(subset=["h1", "h2"], keep="last")
    df = df.sort_values(SORT_COLUMNS, kind="stable", na_position="first")
    return Selection(paths, df["part"].to_numpy(), df["row"].to_numpy(), df["valid"].to_numpy(),
                     df["refusal"].to_numpy(), ~df["ok"].to_numpy())


def _normalized(table: pa.Table) -> pa.Table:
    """NaN in a float column is null, as in a file written from a pandas frame."""
    for name in _FLOAT_COLUMNS:
        col = table.column(name)
        if col.null_count < len(col) and pc.any(pc.is_nan(col)).as_py():
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col))
    return table


def iter_selected(selection: Selection, *, block_rows: int = 65_536) -> Iterator[pa.Table]:
    """The selected rows as arrow tables of at most ``block_rows`` rows, in file order.

    Each block reads the parts its rows are in (a part the previous block read is reused), so
    memory is one block plus the parts it touches; parts written in persona order (the runner
    works a persona chunk at a time) are read about once.

    Raises:
        DamagedStateError: a part is unreadable.
    """
    held: dict[int, pa.Table] = {}
    for start in range(0, len(selection), block_rows):
        parts = selection.parts[start:start + block_rows]
        rows = selection.rows[start:start + block_rows]
        needed = np.unique(parts)
        fresh: dict[int, pa.Table] = {}
        pieces, positions = [], []
        for p in needed:
            table = held.get(int(p))
            if table is None:
                try:
                    table = _read_part(selection.paths[int(p)])
                except (OSError, pa.ArrowException, ValueError, KeyError) as err:
                    raise _damaged(selection.paths[int(p)], err) from None
            fresh[int(p)] = table
            at = np.flatnonzero(parts == p)
            pieces.append(table.take(pa.array(rows[at])))
            positions.append(at)
        held = fresh
        block = pa.concat_tables(pieces)
        yield _normalized(block.take(pa.array(np.argsort(np.concatenate(positions), kind="stable"))))


def read_selected(selection: Selection) -> pd.DataFrame:
    """The selected rows as a responses DataFrame (see :func:`table_to_frame`)."""
    tables = list(iter_selected(selection))
    return table_to_frame(pa.concat_tables(tables) if tables else RESPONSE_SCHEMA.empty_table())


def write_responses(path: Path, selections: Iterable[Selection], *, row_group_rows: int = 65_536) -> int:
    """Write ``responses.parquet`` from the parts: the selections of each model in turn, streamed
    by row groups (atomic: a temporary file renamed into place). Same schema and metadata as a
    file written from the concatenated frames.

    Returns:
        The number of rows written.
    """
    meta = {b"simsurvey.kind": b"responses", b"simsurvey.schema_version": kind_schema_version("responses").encode()}
    schema = RESPONSE_SCHEMA.with_metadata(meta)
    n = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as out:
        for sel in selections:
            for block in iter_selected(sel, block_rows=row_group_rows):
                out.write_table(block.replace_schema_metadata(meta), row_group_size=row_group_rows)
                n += len(block)
    return n
