"""A persistent response cache: a rerun or a resumed run never repeats a call.

One SQLite file (``responses.sqlite``) in the cache directory, in WAL mode so several runs can
share it. Within a run one connection is used from the event loop's thread only; writes are
buffered and committed in batches (:meth:`ResponseCache.flush`, called with every checkpoint),
so concurrent asyncio tasks never interleave transactions.

The cache directory is ``runner.cache_dir`` when set, else ``$SIMSURVEY_CACHE_DIR``, else
``platformdirs.user_cache_dir("simsurvey")``.

Keys (:func:`cache_key`) follow lm-evaluation-harness's ``CachingLM``: a sampled request
(``sample``/``both`` at temperature > 0) is keyed with its seed, which the runner derives from
the row's replicate, so replicate 2 is a distinct call and never collapses onto replicate 0; a
deterministic request (logprobs only, or temperature 0) is keyed without it. Only successful
results are stored; an error is never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from simsurvey.respondents.base import Request, Result

CACHE_FILE = "responses.sqlite"
#: Bump when the stored value's meaning changes: old entries are then simply not found.
CACHE_VERSION = "1"


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: the argument, else ``$SIMSURVEY_CACHE_DIR``, else the user cache dir."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("SIMSURVEY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("simsurvey"))


def is_sampled(request: Request) -> bool:
    """True when the request draws a random answer (its seed matters)."""
    return request.elicitation in ("sample", "both") and request.temperature > 0


def canonical_json(obj: object) -> str:
    """Compact JSON with sorted keys: the same object always hashes the same."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def cache_key(request: Request, *, model: str, backend: str, params: dict | None = None) -> str:
    """sha256 of everything that determines a response.

    Args:
        request: The rendered request (messages, labels, elicitation params, seed).
        model: Model id.
        backend: Backend name (``litellm``, ``local``, ...).
        params: Other backend parameters that change the answer (e.g. ``top_logprobs``).
    """
    sampled = is_sampled(request)
    payload = {
        "v": CACHE_VERSION,
        "model": model,
        "backend": backend,
        "params": params or {},
        "messages": request.messages,
        "labels": request.labels,
        "elicitation": request.elicitation,
        "temperature": request.temperature if request.elicitation != "logprobs" else None,
        "max_tokens": request.max_tokens if request.elicitation != "logprobs" else None,
        "seed": request.seed if sampled else None,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _encode(result: Result) -> str:
    d = asdict(result)
    d.pop("error", None)
    return canonical_json(d)


def _decode(value: str) -> Result:
    d = json.loads(value)
    if d.get("label_probs") is not None:
        d["label_probs"] = tuple(d["label_probs"])
    return Result(**d)


class ResponseCache:
    """Persistent key -> :class:`Result` store (SQLite, WAL).

    Args:
        path: The SQLite file (its directory is created).
        batch: Buffered writes are committed once this many are pending (and on ``flush``).
    """

    def __init__(self, path: str | os.PathLike, *, batch: int = 256) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._batch = batch
        self._pending: dict[str, str] = {}
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )

    @classmethod
    def open(cls, cache_dir: str | os.PathLike | None = None) -> ResponseCache:
        """Open the cache in :func:`resolve_cache_dir` ``(cache_dir)``."""
        return cls(resolve_cache_dir(cache_dir) / CACHE_FILE)

    def get(self, key: str) -> Result | None:
        """The cached result, or None."""
        if key in self._pending:
            return _decode(self._pending[key])
        row = self._conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return _decode(row[0]) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, Result]:
        """Cached results of the keys that are present."""
        return {k: r for k in keys if (r := self.get(k)) is not None}

    def put(self, key: str, result: Result) -> None:
        """Store a successful result (errors are not cached); committed in batches."""
        if result.error is not None:
            return
        self._pending[key] = _encode(result)
        if len(self._pending) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Commit pending writes in one transaction."""
        if not self._pending:
            return
        now = time.time()
        rows = [(k, v, now) for k, v in self._pending.items()]
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)", rows)
        self._pending.clear()

    def __len__(self) -> int:
        self.flush()
        return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Flush and close."""
        try:
            self.flush()
        finally:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
