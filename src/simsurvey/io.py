"""Parquet and JSON I/O at the edges: atomic writes and schema versions.

Every parquet file simsurvey writes carries ``simsurvey.kind`` and ``simsurvey.schema_version``
in its schema metadata, and is written to a temporary file first and renamed into place, so a
crash never leaves a half-written file under its final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

#: Version of the parquet contracts in DESIGN.md; bump when a column changes meaning.
SCHEMA_VERSION = "1"


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600 files; outputs are meant to be shared like any other data file.
    os.chmod(tmp, 0o644)
    return fd, tmp


def write_table(table: pa.Table, path: str | os.PathLike, *, kind: str) -> Path:
    """Write an arrow table atomically with simsurvey's schema metadata."""
    path = Path(path)
    meta = dict(table.schema.metadata or {})
    meta[b"simsurvey.kind"] = kind.encode()
    meta[b"simsurvey.schema_version"] = SCHEMA_VERSION.encode()
    table = table.replace_schema_metadata(meta)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_parquet(
    df: pd.DataFrame, path: str | os.PathLike, *, kind: str, schema: pa.Schema | None = None
) -> Path:
    """Write a data frame atomically as parquet (no pandas index) with schema metadata."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    # Drop pandas' own metadata blob: the files are for R/Stata/DuckDB users too.
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
    return write_table(table.replace_schema_metadata(meta), path, kind=kind)


def schema_version(path: str | os.PathLike) -> str | None:
    """The ``simsurvey.schema_version`` of a parquet file, or None if absent."""
    meta = pq.read_schema(path).metadata or {}
    value = meta.get(b"simsurvey.schema_version")
    return value.decode() if value is not None else None


def write_json(data: Any, path: str | os.PathLike) -> Path:
    """Write JSON atomically (indent 2, sorted keys kept as given)."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
