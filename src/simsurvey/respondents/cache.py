"""A persistent response cache: a rerun or a resumed run never repeats a call.

One SQLite file (``responses.sqlite``) in the cache directory, in WAL mode so several runs (a
sweep's jobs) can share it. Every answer is committed in its own small transaction as soon as it
is stored (:meth:`ResponseCache.put`), before the runner uses it, so a process killed at any
moment re-pays at most the calls that were in flight. All SQLite work runs on one dedicated
thread owned by the cache: the event loop never blocks on disk or on another process's lock
(``busy_timeout_s`` is spent on that thread), and transactions of concurrent tasks never
interleave. The async methods (:meth:`aget_many`, :meth:`aput`) are for the runner; the sync ones
are the same operations waited for.

Damage is reported, not a traceback: a file that is not a SQLite database, a truncated one, a
0-byte one (its answers are gone; SQLite would silently start afresh) or a directory that cannot
be written raises :class:`CacheError` — one line naming the file and what to do. A new cache file
is built under a temporary name and linked into place, so a cache file never legitimately exists
with 0 bytes.

The cache directory is ``runner.cache_dir`` when set, else ``$SIMSURVEY_CACHE_DIR``, else
``platformdirs.user_cache_dir("simsurvey")``.

Keys (:func:`cache_key`) follow lm-evaluation-harness's ``CachingLM``: a sampled request
(``sample``/``both`` at temperature > 0) is keyed with its seed, which the runner derives from
the row's replicate, so replicate 2 is a distinct call and never collapses onto replicate 0; a
deterministic request (logprobs only, or temperature 0) is keyed without it. Only successful
results are stored; an error is never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from simsurvey.errors import UserError
from simsurvey.respondents.base import Request, Result

T = TypeVar("T")

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


class CacheError(UserError):
    """The response cache cannot be used (damaged file, unwritable directory, held locked)."""


def _encode(result: Result) -> str:
    d = asdict(result)
    d.pop("error", None)
    return canonical_json(d)


def _decode(value: str) -> Result:
    d = json.loads(value)
    if d.get("label_probs") is not None:
        d["label_probs"] = tuple(d["label_probs"])
    if d.get("top_tokens") is not None:
        d["top_tokens"] = tuple((str(t), float(lp)) for t, lp in d["top_tokens"])
    return Result(**d)


_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"


class ResponseCache:
    """Persistent key -> :class:`Result` store (SQLite, WAL, one commit per answer).

    Args:
        path: The SQLite file (its directory is created).
        busy_timeout_s: How long a write waits for another process holding the write lock
            (spent on the cache's own thread, never on the event loop).

    Raises:
        CacheError: The file is damaged or empty, or the directory cannot be written.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_s
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsurvey-cache")
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = self._run(self._open)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    @classmethod
    def open(cls, cache_dir: str | os.PathLike | None = None, *, busy_timeout_s: float = 60.0) -> ResponseCache:
        """Open the cache in :func:`resolve_cache_dir` ``(cache_dir)``."""
        return cls(resolve_cache_dir(cache_dir) / CACHE_FILE, busy_timeout_s=busy_timeout_s)

    # -- errors ------------------------------------------------------------------------
    def _error(self, err: BaseException) -> CacheError:
        """One line naming the file and what to do."""
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        low = text.lower()
        if isinstance(err, PermissionError) or "readonly" in low or "read-only" in low or "unable to open" in low:
            return CacheError(f"runner.cache_dir: cannot write the response cache {self.path} ({text}); "
                              "set runner.cache_dir to a writable directory, or runner.cache=false")
        if "locked" in low or "busy" in low:
            return CacheError(f"runner.cache_dir: the response cache {self.path} stayed locked by another process for "
                              f"over {self._busy:g} s; wait for it or set runner.cache_dir to another directory")
        return CacheError(f"runner.cache_dir: the response cache {self.path} is damaged ({text}); move it away "
                          "(or delete it) to start an empty cache; the answers it held will be asked again")

    def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the cache thread and wait for it (sync callers)."""
        try:
            return self._thread.submit(fn).result()
        except CacheError:
            raise
        except (sqlite3.Error, OSError) as err:
            raise self._error(err) from None

    async def _arun(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the cache thread without blocking the event loop."""
        try:
            return await asyncio.wrap_future(self._thread.submit(fn))
        except CacheError:
            raise
        except (sqlite3.Error, OSError) as err:
            raise self._error(err) from None

    # -- on the cache thread -------------------------------------------------------------
    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=self._busy, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process (not a power cut) without an fsync.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CacheError(f"runner.cache_dir: cannot create the cache directory {self.path.parent} "
                             f"({err.strerror or err}); set runner.cache_dir to a writable directory, "
                             "or runner.cache=false") from None
        if not self.path.exists():
            self._create()
        if self.path.stat().st_size == 0:
            raise CacheError(f"runner.cache_dir: the response cache {self.path} is empty (0 bytes): the answers it "
                             "held are gone; delete it to start an empty cache")
        conn = self._connect(self.path)
        try:
            conn.execute(_SCHEMA)  # a no-op on a sound file; reads the schema (catches most damage)
            conn.execute("SELECT key FROM responses LIMIT 1").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn

    def _create(self) -> None:
        """Build an empty cache under a temporary name and link it into place (atomic)."""
        # A unique name: two caches opened at once (in one process or two) never share it.
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        tmp = Path(name)
        conn = self._connect(tmp)
        try:
            conn.execute(_SCHEMA)
            conn.execute("PRAGMA journal_mode=DELETE")  # fold the WAL into the file before linking
        finally:
            conn.close()
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    def _get_many(self, keys: list[str]) -> dict[str, Result]:
        assert self._conn is not None
        out: dict[str, Result] = {}
        for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._conn.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk):
                out[key] = _decode(value)
        return out

    def _put_many(self, rows: list[tuple[str, str]]) -> None:
        assert self._conn is not None
        now = time.time()
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                                   [(k, v, now) for k, v in rows])

    # -- public --------------------------------------------------------------------------
    def get(self, key: str) -> Result | None:
        """The cached result, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Result]:
        """Cached results of the keys that are present."""
        keys = list(keys)
        return self._run(lambda: self._get_many(keys))

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Result]:
        """:meth:`get_many`, off the event loop."""
        keys = list(keys)
        return await self._arun(lambda: self._get_many(keys))

    def put(self, key: str, result: Result) -> None:
        """Store a successful result and commit it (an error is not cached)."""
        if result.error is None:
            rows = [(key, _encode(result))]
            self._run(lambda: self._put_many(rows))

    async def aput(self, key: str, result: Result) -> None:
        """:meth:`put`, off the event loop: committed when this returns."""
        if result.error is None:
            rows = [(key, _encode(result))]
            await self._arun(lambda: self._put_many(rows))

    async def aput_many(self, items: Iterable[tuple[str, Result]]) -> None:
        """Store several results in one transaction, off the event loop (errors are skipped)."""
        rows = [(k, _encode(r)) for k, r in items if r.error is None]
        if rows:
            await self._arun(lambda: self._put_many(rows))

    def __len__(self) -> int:
        assert self._conn is not None
        conn = self._conn
        return int(self._run(lambda: conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]))

    def close(self) -> None:
        """Close the connection and stop the cache thread (every put is already committed)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                self._run(conn.close)
            finally:
                self._thread.shutdown(wait=True)

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
