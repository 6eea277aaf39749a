"""Parquet, JSON and byte I/O at the edges: atomic writes and schema versions.

Every file simsurvey writes goes to a temporary file beside its target first and is renamed
into place, so a crash never leaves a half-written file under its final name; files are 0644
(mkstemp's 0600 would hide outputs from collaborators). Every parquet file carries
``simsurvey.kind`` and ``simsurvey.schema_version`` in its schema metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import yaml

from simsurvey.errors import DamagedStateError, UserError

#: Version of the parquet contracts in DESIGN.md; bump when a column changes meaning.
SCHEMA_VERSION = "1"
#: Kinds whose contract moved past SCHEMA_VERSION. metrics / order_effects 2: the split-half
#: ``noise_floor`` column was replaced by the sampling null (null_mean, null_q95, p_value, excess,
#: n_eff_*), diversity and association statistics became bias-corrected (issue 8).
#: treatment_effects 1: new in issue 10 (survey experiments), listed so its version is explicit.
#: context_effects 1: question-order effects of sequential questionnaires (issue 10).
KIND_SCHEMA_VERSIONS: dict[str, str] = {"metrics": "2", "order_effects": "2", "treatment_effects": "1",
                                        "context_effects": "1"}


def kind_schema_version(kind: str) -> str:
    """The current schema version of files of ``kind``."""
    return KIND_SCHEMA_VERSIONS.get(kind, SCHEMA_VERSION)


# Temporary files are ``.<stem>.<random><_TMP><suffix>`` (``.part-00001.k2j3l4.tmp.parquet``).
_TMP = ".tmp"


def stray_temps(directory: str | os.PathLike, stem: str = "*") -> list[Path]:
    """Temporary files :func:`atomic_path` left in ``directory`` for targets named ``<stem>.*``
    (a process killed between creating one and renaming it into place)."""
    return sorted(Path(directory).glob(f".{stem}.*{_TMP}*"))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else is removed.

    The temporary name keeps ``path``'s suffix, for writers that infer the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{_TMP}{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def write_table(table: pa.Table, path: str | os.PathLike, *, kind: str) -> Path:
    """Write an arrow table atomically with simsurvey's schema metadata."""
    meta = dict(table.schema.metadata or {})
    meta[b"simsurvey.kind"] = kind.encode()
    meta[b"simsurvey.schema_version"] = kind_schema_version(kind).encode()
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    return Path(path)


def write_parquet(
    df: pd.DataFrame, path: str | os.PathLike, *, kind: str, schema: pa.Schema | None = None,
    metadata: dict[bytes, bytes] | None = None,
) -> Path:
    """Write a data frame atomically as parquet (no pandas index) with schema metadata (and
    ``metadata``, e.g. the population's variables beside the personas)."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    # Drop pandas' own metadata blob: the files are for R/Stata/DuckDB users too.
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"} | (metadata or {})
    return write_table(table.replace_schema_metadata(meta), path, kind=kind)


def read_stored_parquet(path: str | os.PathLike, *, fix: str) -> pd.DataFrame:
    """Read a parquet file an earlier stage wrote, diagnosing a damaged one.

    Args:
        path: The file.
        fix: What the user can do about a damaged file (ends the error line).

    Raises:
        DamagedStateError: ``<path>: damaged parquet file (<reason>); <fix>``.
    """
    try:
        return pd.read_parquet(path)
    except (OSError, pa.ArrowException, ValueError) as err:
        raise _damaged(path, err, fix) from None


def _damaged(path: str | os.PathLike, err: BaseException, fix: str) -> DamagedStateError:
    reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
    return DamagedStateError(f"{path}: damaged parquet file ({reason}); {fix}")


#: What a user can do about a damaged responses.parquet (ends the error line).
RESPONSES_FIX = ("delete it and rerun with 'administer' in stages: it is rebuilt from the checkpoint parts "
                 "without new calls")


def _nested_stays_arrow(typ: pa.DataType) -> pd.ArrowDtype | None:
    # A list or map column converted by pandas becomes one Python object per row (lists of
    # tuples for a map): kept as arrow, it stays a few contiguous buffers.
    return pd.ArrowDtype(typ) if pa.types.is_nested(typ) else None


def read_responses(path: str | os.PathLike, columns: Sequence[str] | None = None, *,
                   fix: str = RESPONSES_FIX) -> pd.DataFrame:
    """Read ``responses.parquet`` (a file, or a directory of parquet files written as one dataset)
    with pyarrow, reading only ``columns``.

    Nested columns (``probs``, a map, and ``option_order``, a list) stay arrow-backed
    (``pd.ArrowDtype``): no Python object per row; every other column converts as
    :func:`pandas.read_parquet` converts it. Every consumer of responses (the analyzer, the
    report, the exports) reads through here and accepts such a frame as well as one with
    ``probs`` as dicts.

    Args:
        path: The file or dataset directory.
        columns: The columns to read (None: all). Those the file lacks are left out (a run made
            before a column existed); the consumers treat an absent column as they always have.
        fix: What the user can do about a damaged file (ends the error line).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DamagedStateError: ``<path>: damaged parquet file (<reason>); <fix>``.
    """
    if not Path(path).exists():
        raise FileNotFoundError(str(path))
    try:
        data = pads.dataset(path, format="parquet")
        names = data.schema.names
        wanted = names if columns is None else [c for c in dict.fromkeys(columns) if c in names]
        table = data.to_table(columns=wanted)
        # self_destruct frees each arrow column once converted: the peak is not table + frame.
        return table.to_pandas(types_mapper=_nested_stays_arrow, split_blocks=True, self_destruct=True)
    except (OSError, pa.ArrowException, ValueError) as err:
        raise _damaged(path, err, fix) from None


def check_stored_parquet(path: str | os.PathLike, *, fix: str) -> None:
    """Decode every page of a parquet file (or dataset directory) an earlier stage wrote, one
    record batch at a time (memory bounded by a batch, no pandas frame), diagnosing a damaged one.

    Raises:
        DamagedStateError: as :func:`read_stored_parquet`.
    """
    try:
        for _ in pads.dataset(path, format="parquet").to_batches(batch_size=65_536):
            pass
    except (OSError, pa.ArrowException, ValueError) as err:
        raise _damaged(path, err, fix) from None


def schema_version(path: str | os.PathLike) -> str | None:
    """The ``simsurvey.schema_version`` of a parquet file, or None if absent."""
    meta = pq.read_schema(path).metadata or {}
    value = meta.get(b"simsurvey.schema_version")
    return value.decode() if value is not None else None


def require_current(path: str | os.PathLike, kind: str) -> None:
    """Refuse a parquet file of ``kind`` written under an older contract, with one line saying how
    to bring the run up to date (its columns would be misread otherwise).

    Raises:
        UserError: the file's schema_version is older than :func:`kind_schema_version`.
    """
    have, want = schema_version(path), kind_schema_version(kind)
    if have is not None and int(have) < int(want):
        raise UserError(f"{path}: {kind} schema {have} was written by an older simsurvey (current: {want}); "
                        "re-analyse the run: python -m simsurvey <same overrides> stages=[analyze,report] "
                        "hydra.run.dir=<run dir>")


def write_json(data: Any, path: str | os.PathLike) -> Path:
    """Write JSON atomically (indent 2)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    return write_bytes(path, text.encode("utf-8"))


def read_yaml(path: str | os.PathLike, *, what: str) -> Any:
    """Parse a user's YAML file.

    Args:
        path: The file.
        what: What the file is, for the error message ("instrument file", "population spec").

    Raises:
        UserError: ``<path>: <what> not found`` or ``<path>: YAML syntax error at line L,
            column C: <problem>``.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: {what} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                        f"{err.start}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path}: YAML syntax error{where}: {problem}") from None
