"""The persistent response cache."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3


from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.cache import CACHE_FILE, ResponseCache, cache_key, resolve_cache_dir

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
                 cost_usd=0.0003, latency_s=0.5, extra={"first_token": "A"})
    with ResponseCache(tmp_path / CACHE_FILE, batch=100) as cache:
        cache.put("k1", res)
        cache.put("k2", Result(error="HTTP 500"))
        assert cache.get("k1") == res  # pending writes are visible before the commit
        assert cache.get("k2") is None
    with ResponseCache(tmp_path / CACHE_FILE) as cache:
        assert cache.get("k1") == res
        assert cache.get("k2") is None and len(cache) == 1
        assert cache.get_many(["k1", "zz"]) == {"k1": res}


def test_wal_mode_and_batched_commits(tmp_path):
    path = tmp_path / CACHE_FILE
    cache = ResponseCache(path, batch=3)
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    count = lambda: other.execute("SELECT COUNT(*) FROM responses").fetchone()[0]  # noqa: E731
    cache.put("a", Result(text="A"))
    cache.put("b", Result(text="B"))
    assert count() == 0  # buffered
    cache.put("c", Result(text="C"))
    assert count() == 3  # one batch committed
    cache.put("d", Result(text="D"))
    cache.flush()
    assert count() == 4
    cache.close()


def test_concurrent_asyncio_writers(tmp_path):
    cache = ResponseCache(tmp_path / CACHE_FILE, batch=7)

    async def writer(i: int) -> None:
        for j in range(50):
            cache.put(f"{i}-{j}", Result(text=str(j)))
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(writer(i) for i in range(20)))

    asyncio.run(main())
    cache.close()
    with ResponseCache(tmp_path / CACHE_FILE) as again:
        assert len(again) == 1000
        assert again.get("19-49").text == "49"


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
