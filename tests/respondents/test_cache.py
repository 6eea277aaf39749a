"""The persistent response cache."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from simsurvey.errors import UserError
from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.cache import (
    CACHE_FILE,
    CacheError,
    ResponseCache,
    cache_key,
    resolve_cache_dir,
)

MSG = ({"role": "user", "content": "Pick A or B.\nA. x\nB. y"},)


def _req(**kw) -> Request:
    base = dict(messages=MSG, labels=("A", "B"), elicitation="sample", temperature=1.0, seed=1)
    base.update(kw)
    return Request(**base)


def _key(req: Request, **kw) -> str:
    return cache_key(req, model=kw.get("model", "m"), backend=kw.get("backend", "litellm"), params=kw.get("params"))


def test_sampled_requests_are_keyed_per_seed_never_collapsed():
    # Like lm-eval's CachingLM: replicate 2 of a sampled request is a distinct call.
    assert _key(_req(seed=1)) != _key(_req(seed=2))
    assert _key(_req(seed=1, elicitation="both")) != _key(_req(seed=2, elicitation="both"))


def test_deterministic_requests_ignore_the_seed():
    assert _key(_req(seed=1, elicitation="logprobs")) == _key(_req(seed=2, elicitation="logprobs"))
    assert _key(_req(seed=1, temperature=0.0)) == _key(_req(seed=2, temperature=0.0))
    # logprobs-only calls ignore sampling params they do not use
    assert _key(_req(elicitation="logprobs", temperature=0.3, max_tokens=5)) == _key(_req(elicitation="logprobs"))


def test_key_covers_model_backend_params_messages_labels():
    k = _key(_req())
    assert k != _key(_req(), model="other")
    assert k != _key(_req(), backend="local")
    assert k != _key(_req(), params={"top_logprobs": 5})
    assert k != _key(_req(messages=({"role": "user", "content": "Pick A or B. "},)))
    assert k != _key(_req(labels=("1", "2")))
    assert k != _key(_req(temperature=0.7))
    # context is what baselines answer from, not what an LLM sees: not part of the key
    assert k == _key(Request(messages=MSG, labels=("A", "B"), elicitation="sample", seed=1, context={"x": 1}))


def test_key_is_sha256_of_canonical_json_independent_of_dict_order():
    a = _req(messages=({"role": "user", "content": "hi"},))
    b = _req(messages=({"content": "hi", "role": "user"},))
    assert _key(a) == _key(b)
    assert len(_key(a)) == 64 and int(_key(a), 16) >= 0
    assert _key(a) != hashlib.sha256(json.dumps(a.messages).encode()).hexdigest()


def test_roundtrip_persists_and_skips_errors(tmp_path):
    res = Result(text="A", label_probs=(0.25, 0.75), missing_mass=0.1, prompt_tokens=12, completion_tokens=1,
                 cost_usd=0.0003, latency_s=0.5, extra={"first_token": "A"}, top_tokens=(("A", -0.2), (" B", -1.5)))
    with ResponseCache(tmp_path / CACHE_FILE) as cache:
        cache.put("k1", res)
        cache.put("k2", Result(error="HTTP 500"))
        assert cache.get("k1") == res
        assert cache.get("k2") is None
    with ResponseCache(tmp_path / CACHE_FILE) as cache:
        assert cache.get("k1") == res
        assert cache.get("k2") is None and len(cache) == 1
        assert cache.get_many(["k1", "zz"]) == {"k1": res}


def test_wal_mode_and_every_put_is_committed_at_once(tmp_path):
    # A SIGKILL right after put() returns must not lose the answer: another connection sees it.
    path = tmp_path / CACHE_FILE
    cache = ResponseCache(path)
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    count = lambda: other.execute("SELECT COUNT(*) FROM responses").fetchone()[0]  # noqa: E731
    cache.put("a", Result(text="A"))
    assert count() == 1
    asyncio.run(cache.aput("b", Result(text="B")))
    assert count() == 2
    cache.close()


def test_sqlite_work_runs_off_the_event_loop_thread(tmp_path, monkeypatch):
    cache = ResponseCache(tmp_path / CACHE_FILE)
    seen: list[str] = []
    real = cache._put_many

    def spy(rows):
        seen.append(threading.current_thread().name)
        return real(rows)

    monkeypatch.setattr(cache, "_put_many", spy)

    async def main() -> dict:
        await cache.aput("a", Result(text="A"))
        return await cache.aget_many(["a"])

    assert asyncio.run(main())["a"].text == "A"
    assert seen and all(name.startswith("simsurvey-cache") for name in seen)
    cache.close()


def test_a_held_write_lock_does_not_freeze_the_event_loop(tmp_path):
    # Another process (a sweep's job) holds the write lock: the put waits on the cache thread
    # while the loop keeps running other tasks, and it commits once the lock is released.
    path = tmp_path / CACHE_FILE
    cache = ResponseCache(path, busy_timeout_s=30)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        put = asyncio.create_task(cache.aput("a", Result(text="A")))
        while ticks < 20:  # the loop is free while the put waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert not put.done()
        other.execute("COMMIT")
        await put

    asyncio.run(main())
    assert cache.get("a").text == "A"
    cache.close()
    other.close()


def test_concurrent_asyncio_writers(tmp_path):
    cache = ResponseCache(tmp_path / CACHE_FILE)

    async def writer(i: int) -> None:
        for j in range(50):
            await cache.aput(f"{i}-{j}", Result(text=str(j)))

    async def main() -> None:
        await asyncio.gather(*(writer(i) for i in range(20)))

    asyncio.run(main())
    cache.close()
    with ResponseCache(tmp_path / CACHE_FILE) as again:
        assert len(again) == 1000
        assert again.get("19-49").text == "49"


def test_two_caches_on_one_file_share_answers(tmp_path):
    a, b = ResponseCache(tmp_path / CACHE_FILE), ResponseCache(tmp_path / CACHE_FILE)
    a.put("k", Result(text="A"))
    assert b.get("k").text == "A"
    a.close()
    b.close()


def test_many_caches_created_at_once_on_one_new_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    for trial in range(5):
        path = tmp_path / f"c{trial}" / CACHE_FILE
        with ThreadPoolExecutor(8) as pool:
            caches = list(pool.map(lambda _: ResponseCache(path), range(8)))
        for i, cache in enumerate(caches):
            cache.put(f"k{i}", Result(text=str(i)))
        assert all(len(c) == 8 for c in caches)
        for cache in caches:
            cache.close()
        assert sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")) == []


def _damaged(path: Path, how: str) -> None:
    with ResponseCache(path) as cache:
        for i in range(300):
            cache.put(f"k{i}", Result(text="x" * 200))
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how, says", [("truncated", "is damaged"), ("garbage", "is damaged"), ("empty", "is empty (0 bytes)")])
def test_a_damaged_cache_is_one_line_naming_the_file(tmp_path, how, says):
    path = tmp_path / CACHE_FILE
    _damaged(path, how)
    with pytest.raises(CacheError) as info, ResponseCache(path) as cache:
        cache.get_many([f"k{i}" for i in range(300)])  # truncation may only show when pages are read
    msg = str(info.value)
    assert isinstance(info.value, UserError)
    assert "\n" not in msg and str(path) in msg and says in msg and msg.startswith("runner.cache_dir: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_cache_dir_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(CacheError, match=r"^runner.cache_dir: cannot write the response cache .*ro/responses.sqlite"):
            ResponseCache(ro / CACHE_FILE)
    finally:
        ro.chmod(0o700)


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CacheError, match=r"^runner.cache_dir: cannot create the cache directory .*/f/sub \("):
        ResponseCache(tmp_path / "f" / "sub" / CACHE_FILE)


def test_a_new_cache_file_is_never_empty(tmp_path):
    path = tmp_path / CACHE_FILE
    ResponseCache(path).close()
    assert path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    ResponseCache(path).close()  # and it opens again


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMSURVEY_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "cfg") == tmp_path / "cfg"
    assert resolve_cache_dir(None) == tmp_path / "env"
    monkeypatch.delenv("SIMSURVEY_CACHE_DIR")
    import platformdirs

    assert str(resolve_cache_dir(None)) == platformdirs.user_cache_dir("simsurvey")
    monkeypatch.setenv("SIMSURVEY_CACHE_DIR", str(tmp_path / "env"))
    with ResponseCache.open() as cache:
        assert cache.path == tmp_path / "env" / CACHE_FILE and cache.path.exists()
