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
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simsurvey.errors import DamagedStateError
from simsurvey.io import stray_temps, write_table

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
