"""Failed calls: fail fast, never final, one row's problem stays that row's (issue 9, rows 4, 7, 10, 12)."""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from runner_data import make_instrument, make_personas, make_trials

from simsurvey.errors import RunFailedError, UserError
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.parsing import INVALID_REASONS
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer, read_parts
from simsurvey.secrets import MARK, scrub

KEY = ["persona_id", "question_id", "condition_id", "replicate", "model"]
PARTS = Path("run") / "parts" / "responses" / "openai_fake"


def _run(tmp_path: Path, url: str, *, n: int = 3, replicates: int = 1, elicitation: str = "sample", run: str = "run",
         **runner_kw) -> pd.DataFrame:
    inst = make_instrument()
    base = dict(concurrency=4, backoff_base_s=0.01, backoff_max_s=0.05, cache_dir=str(tmp_path / "cache"),
                flush_every=5, flush_seconds=0.2, timeout_s=5)
    base.update(runner_kw)
    return administer(make_trials(inst, n, replicates), make_personas(n), inst,
                      model=ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation=elicitation),
                      prompt=PromptConfig(), runner=RunnerConfig(**base), run_dir=tmp_path / run, seed=11,
                      progress=False).frame


def _dead_url() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame[KEY].itertuples(index=False)]


# -- row 4: a dead server ends the run at once; failed rows are retried by a resume ----------

def test_a_dead_server_stops_the_run_at_once_and_a_resume_asks_every_row(tmp_path, server, fake):
    # 4 personas + no_persona: 20 rows. Nothing listening: no retries, the breaker stops the run.
    with pytest.raises(RunFailedError) as info:
        _run(tmp_path, _dead_url(), n=4, max_consecutive_failures=5, max_retries=6, backoff_base_s=5)
    msg = str(info.value)
    assert "\n" not in msg
    m = re.search(r"stopped after (\d+) calls in a row failed \(runner.max_consecutive_failures=5\)", msg)
    assert m and 5 <= int(m.group(1)) < 5 + 4  # the calls already in flight (concurrency 4) finish
    assert "last error: cannot connect to http://127.0.0.1:" in msg and "not asked" in msg
    assert info.value.failed_rows == 20
    stats = info.value.stats
    assert stats["retries"] == 0 and stats["errors"] >= 5 and stats["calls"] < 20  # it stopped early
    parts = read_parts(tmp_path / PARTS)
    assert len(parts) == stats["errors"] and parts["error"].notna().all()  # kept for the record
    assert set(parts["invalid_reason"]) == {"error"} and not parts["valid"].any()

    # the server is back: the resume asks every row again (error rows are not done), once each
    df = _run(tmp_path, server.url, n=4)
    assert df["error"].isna().all() and df["valid"].all() and len(df) == 20
    keys = _keys(df)
    assert len(set(keys)) == len(keys) == 20
    assert len(fake.log) == 20 and set(Counter(fake.keys()).values()) == {1}


def test_error_rows_are_never_final(tmp_path, server, fake):
    fake.schedule = {0: "500", 3: "500", 7: "500"}
    first = _run(tmp_path, server.url, max_retries=0)
    failed = first.loc[first["error"].notna()]
    assert len(failed) == 3 and (failed["invalid_reason"] == "error").all()
    fake.schedule = {}
    n_before = len(fake.log)
    again = _run(tmp_path, server.url, max_retries=0)
    assert len(fake.log) - n_before == 3  # only the failed rows are asked again
    assert again["error"].isna().all() and len(again) == len(first) and len(set(_keys(again))) == len(again)
    assert again.drop(columns=["cached", "latency_s", "error", "raw_text", "answer_code", "valid", "invalid_reason",
                               "probs", "prompt_tokens", "completion_tokens", "cost_usd"]).equals(
        first.drop(columns=["cached", "latency_s", "error", "raw_text", "answer_code", "valid", "invalid_reason",
                            "probs", "prompt_tokens", "completion_tokens", "cost_usd"]))
    # a third run has nothing left to do
    n_before = len(fake.log)
    _run(tmp_path, server.url)
    assert len(fake.log) == n_before


def test_the_breaker_counts_only_failures_in_a_row(tmp_path, server, fake):
    # Failures that are not consecutive never trip it; the run finishes with its error rows.
    fake.schedule = {i: "500" for i in range(0, 16, 2)}
    df = _run(tmp_path, server.url, max_retries=0, max_consecutive_failures=2, concurrency=1)
    assert df["error"].notna().sum() == 8 and len(df) == 16


def test_the_breaker_can_be_turned_off(tmp_path, server, fake):
    df = _run(tmp_path, _dead_url(), max_consecutive_failures=0)
    assert df["error"].notna().all() and len(df) == 16


def test_a_baselines_unanswerable_rows_never_trip_the_breaker(tmp_path):
    # baseline/majority has no reference answers for 'vote': error rows, but no call failed.
    inst = make_instrument()
    reference = pd.DataFrame({"respondent_id": range(4), "weight": 1.0, "question_id": "trust",
                              "answer_code": ["1", "2", "2", "3"]})
    res = administer(make_trials(inst, 6), make_personas(6), inst,
                     model=ModelConfig(backend="baseline/majority", name="baseline/majority", elicitation="both"),
                     prompt=PromptConfig(), runner=RunnerConfig(max_consecutive_failures=1), run_dir=tmp_path / "run",
                     seed=5, reference=reference, progress=False)
    df = res.frame
    assert (df["question_id"] == "vote").sum() == df["error"].notna().sum() == 14
    assert df.loc[df["question_id"] == "trust", "valid"].all()


def test_the_last_error_is_scrubbed_of_credentials(tmp_path, server, fake, monkeypatch):
    key = "sk-test-SECRETSECRET123"
    monkeypatch.setenv("FAKE_KEY_9B", key)
    fake.echo_auth = True
    fake.rates = {"500": 1.0}
    inst = make_instrument()
    with pytest.raises(RunFailedError) as info:
        administer(make_trials(inst, 3), make_personas(3), inst,
                   model=ModelConfig(backend="litellm", name="openai/fake", api_base=server.url, elicitation="sample",
                                     api_key_env="FAKE_KEY_9B"),
                   prompt=PromptConfig(), run_dir=tmp_path / "run", seed=11, progress=False,
                   runner=RunnerConfig(max_retries=0, max_consecutive_failures=3, cache_dir=str(tmp_path / "c")))
    assert "HTTP 500" in str(info.value) and "Authorization: <redacted>" in str(info.value)
    assert key not in str(info.value) and "SECRETSECRET" not in str(info.value)
    parts = read_parts(tmp_path / PARTS)
    assert parts["error"].notna().all() and not parts["error"].str.contains("SECRET").any()


def test_scrub():
    # The runner masks error bodies with the project's one scrubber (simsurvey.secrets).
    assert scrub("bad key sk-abcdefghijkl here", ()) == f"bad key {MARK} here"
    assert MARK in scrub("Authorization: Bearer abc.def", ()) and "abc.def" not in scrub("Authorization: Bearer abc.def", ())
    assert scrub('{"api_key": "hunter2"}', ()) == f'{{"api_key": "{MARK}"}}'
    assert scrub("the value xyz123 leaked", ("xyz123",)) == f"the value {MARK} leaked"
    assert scrub("nothing to hide", ("",)) == "nothing to hide"


# -- row 7: a 400 (content filter) is one row's error ------------------------------------

def test_a_400_is_that_rows_error_and_the_run_goes_on(tmp_path, server, fake):
    fake.schedule = {2: "400"}
    df = _run(tmp_path, server.url, max_retries=6)
    failed = df.loc[df["error"].notna()]
    assert len(df) == 16 and len(failed) == 1
    assert "HTTP 400" in failed["error"].iloc[0] and "content management policy" in failed["error"].iloc[0]
    assert df.loc[df["error"].isna(), "valid"].all()
    assert len(fake.log) == 16  # not retried: the same prompt would be refused again


def test_a_401_still_stops_the_run(tmp_path, server, fake):
    fake.schedule = {1: "401"}
    with pytest.raises(UserError, match="401"):
        _run(tmp_path, server.url)


# -- row 10: invalid answers keep what came back, and can be asked again ------------------

def test_invalid_logprob_answers_keep_the_top_tokens_and_a_reason(tmp_path, server, fake):
    fake.schedule = {0: "offlabel"}
    df = _run(tmp_path, server.url, elicitation="logprobs", concurrency=1)
    bad = df.loc[~df["valid"]]
    assert len(bad) == 1 and bad["invalid_reason"].iloc[0] == "no_mass_on_options"
    assert bad["raw_text"].iloc[0] == '"I" 0.500, "The" 0.300, "Well" 0.100'
    assert df["raw_text"].notna().all()
    assert df.loc[df["valid"], "invalid_reason"].isna().all()
    assert set(df["invalid_reason"].dropna()) <= set(INVALID_REASONS)


def test_invalid_sampled_answers_have_a_reason(tmp_path, server, fake):
    fake.schedule = {0: "garbage", 1: "refusal"}
    df = _run(tmp_path, server.url, concurrency=1)
    reasons = Counter(df["invalid_reason"].dropna())
    assert reasons == {"unparseable": 1, "refusal": 1}
    assert (df["valid"] == df["invalid_reason"].isna()).all()
    assert df.loc[df["invalid_reason"] == "unparseable", "raw_text"].iloc[0] == "I think maybe"


def test_retry_invalid_asks_only_the_invalid_rows_again_past_the_cache(tmp_path, server, fake):
    fake.schedule = {0: "garbage", 1: "refusal", 5: "garbage"}
    first = _run(tmp_path, server.url, concurrency=1)
    assert (~first["valid"]).sum() == 3
    n = len(fake.log)
    again = _run(tmp_path, server.url, concurrency=1)  # default retry=errors: nothing to do
    assert len(fake.log) == n and again.equals(first)
    fixed = _run(tmp_path, server.url, concurrency=1, retry="invalid")
    assert len(fake.log) == n + 3  # exactly the invalid rows were asked again
    assert fixed["valid"].all() and len(fixed) == len(first) and len(set(_keys(fixed))) == len(fixed)
    # their new answers replaced the invalid cache entries: a fresh run dir is served from the cache
    fresh = _run(tmp_path, server.url, concurrency=1, run="fresh")
    assert len(fake.log) == n + 3 and fresh["valid"].all() and fresh["cached"].all()


def test_retry_invalid_bypasses_invalid_cache_entries_in_a_new_run_dir(tmp_path, server, fake):
    fake.schedule = {0: "garbage"}
    _run(tmp_path, server.url, concurrency=1)
    n = len(fake.log)
    df = _run(tmp_path, server.url, concurrency=1, run="other", retry="invalid")
    assert len(fake.log) == n + 1 and df["valid"].all()


# -- row 12: no blocking I/O on the event loop ------------------------------------------

def test_cache_and_part_io_never_run_on_the_event_loop_thread(tmp_path, server, fake, monkeypatch):
    from simsurvey.respondents.cache import ResponseCache
    from simsurvey.respondents.litellm_backend import LiteLLMBackend
    from simsurvey.runner._checkpoint import PartWriter

    threads: dict[str, set[str]] = {"cache_open": set(), "cache_get": set(), "cache_put": set(), "part": set(),
                                    "warm_up": set()}

    def spy(name, real):
        def wrapper(*a, **k):
            threads[name].add(threading.current_thread().name)
            return real(*a, **k)
        return wrapper

    monkeypatch.setattr(ResponseCache, "_get_many", spy("cache_get", ResponseCache._get_many))
    monkeypatch.setattr(ResponseCache, "_put_many", spy("cache_put", ResponseCache._put_many))
    monkeypatch.setattr(PartWriter, "flush", spy("part", PartWriter.flush))
    monkeypatch.setattr(ResponseCache, "_open", spy("cache_open", ResponseCache._open))
    monkeypatch.setattr(LiteLLMBackend, "warm_up", spy("warm_up", LiteLLMBackend.warm_up))
    _run(tmp_path, server.url, n=4, flush_every=3)
    loop_thread = threading.main_thread().name  # administer() runs its loop here
    assert all(threads.values()), threads
    assert loop_thread not in set().union(*threads.values()), threads


LITELLM_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {support!r})
from runner_data import make_instrument, make_personas, make_trials
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

inst = make_instrument()
res = administer(make_trials(inst, 3), make_personas(3), inst,
    model=ModelConfig(backend="litellm", name="openai/fake", api_base=sys.argv[1], elicitation="sample", transport="litellm"),
    prompt=PromptConfig(), run_dir=Path(sys.argv[2]), seed=1, progress=False,
    runner=RunnerConfig(concurrency=4, cache_dir=sys.argv[3], backoff_base_s=0.01, backoff_max_s=0.02))
print("ROWS", len(res.frame), int(res.frame["cost_usd"].notna().sum()))
"""


@pytest.mark.slow
def test_a_litellm_run_of_an_unpriced_model_prints_no_provider_list(tmp_path, server, fake):
    # litellm.completion_cost raised and printed its "Provider List" banner twice per call for a
    # model without a price; the cost litellm attached to the response is read instead.
    import os
    import subprocess
    import sys

    script = tmp_path / "run_litellm.py"
    script.write_text(LITELLM_RUN.format(support=str(Path(__file__).resolve().parents[1] / "support")))
    proc = subprocess.run([sys.executable, str(script), server.url, str(tmp_path / "run"), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert proc.returncode == 0, proc.stderr
    assert "ROWS 16 0" in proc.stdout  # every row answered; no price: cost null, not invented
    assert "Provider List" not in proc.stderr and "Provider List" not in proc.stdout
    assert proc.stderr.strip() == ""


# -- the command line: exit 3 and one line say how many rows failed ------------------------

def _cli(tmp_path: Path, *overrides: str):
    import os
    import subprocess
    import sys

    from simsurvey.config import PROJECT_ROOT

    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "CI": "true", "SIMSURVEY_CACHE_DIR": str(tmp_path / "cache"),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-m", "simsurvey", "+experiment=politics", "model=litellm",
                           "model.name=openai/fake", "population.n=10", "stages=[sample,administer]",
                           "baselines=[]", f"hydra.run.dir={tmp_path / 'run'}", *overrides],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_cli_a_dead_server_exits_3_with_one_line(tmp_path):
    proc = _cli(tmp_path, f"model.api_base={_dead_url()}")
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("simsurvey: error: openai/fake: stopped after ")
    assert "cannot connect to" in lines[0] and f"resume with hydra.run.dir={tmp_path / 'run'}" in lines[0]
    assert (tmp_path / "run" / "parts").exists()  # the failed rows are kept, the run dir too
    assert not (tmp_path / "run" / "responses.parquet").exists()  # nothing is built on error rows


@pytest.mark.slow
def test_cli_some_failed_rows_exit_3_and_say_how_many(tmp_path, server, fake):
    fake.schedule = {3: "400", 9: "400"}
    proc = _cli(tmp_path, f"model.api_base={server.url}")
    assert proc.returncode == 3, proc.stderr
    assert "; 2 rows failed (kept with their error)" in proc.stdout
    assert proc.stderr.strip().splitlines() == [
        (f"simsurvey: 2 rows failed (see the error column of responses.parquet); ask them again with "
         f"hydra.run.dir={tmp_path / 'run'}")]
    fake.schedule = {}
    again = _cli(tmp_path, f"model.api_base={server.url}")
    assert again.returncode == 0, again.stderr
    df = pd.read_parquet(tmp_path / "run" / "responses.parquet")
    assert df["error"].isna().all()


def test_two_runs_sharing_one_cache_at_once(tmp_path, server, fake):
    # Two runs (a sweep's jobs) on one cache file, concurrently: both complete, every answer is
    # stored once, and a third run is served entirely from the shared cache.
    import asyncio

    from simsurvey.runner import administer_async

    inst = make_instrument()
    trials, personas = make_trials(inst, 6, 2), make_personas(6)
    model = ModelConfig(backend="litellm", name="openai/fake", api_base=server.url, elicitation="sample")
    runner = RunnerConfig(concurrency=8, cache_dir=str(tmp_path / "cache"), flush_every=5, flush_seconds=0.2)

    async def both():
        return await asyncio.gather(*(administer_async(trials, personas, inst, model=model, prompt=PromptConfig(),
                                                       runner=runner, run_dir=tmp_path / name, seed=11, progress=False)
                                      for name in ("a", "b")))

    a, b = asyncio.run(both())
    assert a.frame["error"].isna().all() and b.frame["error"].isna().all()
    assert a.frame["answer_code"].tolist() == b.frame["answer_code"].tolist()
    n = len(fake.log)
    c = administer(trials, personas, inst, model=model, prompt=PromptConfig(), runner=runner, run_dir=tmp_path / "c",
                   seed=11, progress=False)
    assert len(fake.log) == n and c.frame["cached"].all()
