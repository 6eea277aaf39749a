"""Atomic writes for the report's non-parquet files (html, svg/png, dta/sav, csv).

Like :mod:`simsurvey.io`: write a temporary file beside the target and rename it into place,
so a crash never leaves a half-written file under its final name; files are 0644 (mkstemp's
0600 would hide outputs from collaborators).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else is removed.

    The temporary name keeps ``path``'s suffix, for writers that infer the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (0644)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)
