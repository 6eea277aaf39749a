"""The batch executor against the fake batch server: the sync rows at the batch price, every path of
a batch's life (failed, expired, partial, malformed), the budget guard, Anthropic, the file provider."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fake_batch import BatchServerThread, FakeBatch, run_batch_file
from runner_data import make_personas

from simsurvey.errors import RunFailedError, RunPendingError, UserError
from simsurvey.instruments import build_design
from simsurvey.instruments.config import DesignConfig
from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.respondents.cache import ResponseCache
from simsurvey.respondents.config import BatchConfig, ModelConfig, RunnerConfig
from simsurvey.respondents.litellm_backend import _price_entry
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

N = 4
ROW_COLUMNS = ["persona_id", "question_id", "condition_id", "replicate", "option_order", "prompt_hash",
               "raw_text", "answer_code", "valid", "probs", "prompt_tokens", "completion_tokens", "error"]
PRICED = "openai/gpt-4o-mini"  # in litellm's cost map, with a batch price
KEY = "sk-fakebatch-0123456789abcdef"


def _instrument() -> Instrument:
    def q(qid, text, labels, kind="single_choice"):
        return Question(id=qid, text=text, kind=kind,
                        options=tuple(Option(code=str(i), label=lbl) for i, lbl in enumerate(labels)))

    return Instrument(id="batch", title="Batch", questions=(
        q("trust", "How much do you trust the government?", ["A great deal", "Somewhat", "Not much"], "ordinal"),
        q("vote", "Did you vote in the last election?", ["Yes", "No"]),
        q("news", "How often do you follow the news?", ["Daily", "Weekly", "Rarely"], "ordinal"),
    ))


def _trials(context: str = "independent") -> pd.DataFrame:
    cfg = DesignConfig(context=context, question_order="randomized" if context == "sequential" else "fixed",
                       no_persona=True, replicates=2)
    return build_design(make_personas(N), _instrument(), cfg, seed=3)


@pytest.fixture
def bfake() -> FakeBatch:
    return FakeBatch()


@pytest.fixture
def bserver(bfake: FakeBatch):
    srv = BatchServerThread(bfake).start()
    yield srv
    srv.stop()


def _run(tmp_path: Path, url: str, trials: pd.DataFrame | None = None, *, run: str = "run", executor: str = "batch",
         name: str = PRICED, elicitation: str = "both", batch: dict | None = None, model: dict | None = None,
         **runner_kw):
    runner = RunnerConfig(**{"executor": executor, "concurrency": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.02,
                             "timeout_s": 10, "max_retries": 2, "cache_dir": str(tmp_path / "cache"),
                             "flush_every": 5, "flush_seconds": 0.1,
                             "batch": BatchConfig(**{"poll_interval_s": 0.01, **(batch or {})}), **runner_kw})
    cfg = ModelConfig(**{"backend": "litellm", "name": name, "api_base": url, "elicitation": elicitation,
                         "temperature": 0.7, **(model or {})})
    return administer(_trials() if trials is None else trials, make_personas(N), _instrument(), model=cfg,
                      prompt=PromptConfig(), runner=runner, run_dir=tmp_path / run, seed=5, progress=False)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[ROW_COLUMNS].copy()
    out["probs"] = out["probs"].map(lambda p: None if p is None else tuple(sorted(p.items())))
    out["option_order"] = out["option_order"].map(tuple)
    return out.reset_index(drop=True)


def _cache_keys(cache_dir: Path) -> set[str]:
    with ResponseCache.open(cache_dir) as cache:
        return {k for (k,) in cache._run(lambda: cache._conn.execute("SELECT key FROM responses").fetchall())}


def test_a_batch_run_gives_the_sync_rows_and_cache_keys_at_the_batch_price(tmp_path, bserver, bfake):
    trials = _trials()
    sync = _run(tmp_path / "s", bserver.url, trials, executor="local")
    got = _run(tmp_path / "b", bserver.url, trials)
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(sync.frame))
    assert _cache_keys(tmp_path / "b" / "cache") == _cache_keys(tmp_path / "s" / "cache")
    # Identical calls (the no-persona replicates under logprobs are not: sampled) go once each.
    assert not bfake.duplicates() and len(bfake.submissions) == sync.stats["calls"]
    # This run's own calls, at the batch price of litellm's cost map (read here independently).
    entry = _price_entry(PRICED)
    pin, pout = entry["input_cost_per_token_batches"], entry["output_cost_per_token_batches"]
    want = got.frame["prompt_tokens"] * pin + got.frame["completion_tokens"] * pout
    assert not got.frame["cached"].any() and got.stats["calls"] == 0
    assert got.frame["cost_usd"].to_numpy() == pytest.approx(want.to_numpy(), rel=1e-12)
    assert got.frame["cost_usd"].sum() == pytest.approx(0.5 * sync.frame["cost_usd"].sum(), rel=1e-9)
    assert got.stats["batch_price_source"] == "cost_map_batches" and got.stats["batches_submitted"] == 1
    # The job state: one collected batch holding every key; a rerun pays nothing and submits nothing.
    state = json.loads((tmp_path / "b" / "run" / "batches" / "openai_gpt-4o-mini" / "state.json").read_text())
    assert [(j["stage"], j["status"], j["collected_ok"]) for j in state["jobs"]] == [("collected", "completed", len(bfake.submissions))]
    again = _run(tmp_path / "b", bserver.url, trials, run="run2")
    assert again.frame["cached"].all() and len(bfake.batches) == 1


def test_a_sync_cache_is_never_submitted(tmp_path, bserver, bfake):
    trials = _trials()
    _run(tmp_path, bserver.url, trials.head(10), executor="local", run="sync")
    got = _run(tmp_path, bserver.url, trials, run="batch")
    assert len(got.frame) == len(trials) and not bfake.duplicates()
    assert got.frame["cached"].sum() == 10
    assert sum(bfake.submissions.values()) == len(trials) - 10  # sampled at 0.7: every trial its own call


def test_sequential_conversations_take_one_round_per_turn(tmp_path, bserver, bfake):
    trials = _trials("sequential")
    sync = _run(tmp_path / "s", bserver.url, trials, executor="local")
    got = _run(tmp_path / "b", bserver.url, trials)
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(sync.frame))
    assert len(bfake.batches) == len(_instrument().questions) and not bfake.duplicates()


@pytest.mark.parametrize("outcome", ["failed", "expired"])
def test_a_failed_or_expired_batch_is_resubmitted_and_every_row_answered(tmp_path, bserver, bfake, outcome):
    bfake.outcomes = [outcome]
    bfake.expire_fraction = 0.5
    got = _run(tmp_path, bserver.url)
    assert got.frame["error"].isna().all() and len(got.frame) == len(_trials())
    counts = sorted(bfake.submissions.values())
    n = len(counts)
    if outcome == "failed":
        assert counts == [2] * n  # the whole batch again
    else:  # the answered half collected, only the rest again
        assert counts.count(2) == n - int(n * 0.5) and counts.count(1) == int(n * 0.5)
    assert got.stats["batch_resubmitted"] == counts.count(2)


def test_partial_failures_and_malformed_lines_are_resubmitted_once(tmp_path, bserver, bfake):
    sync = _run(tmp_path / "s", bserver.url, executor="local")
    keys = sorted(_cache_keys(tmp_path / "s" / "cache"))
    faults = dict(zip(keys, ["error", "missing", "malformed", "badbody"]))
    bfake.line_faults = faults
    got = _run(tmp_path / "b", bserver.url)
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(sync.frame))
    assert {k: bfake.submissions[k] for k in faults} == dict.fromkeys(faults, 2)
    assert sum(n == 1 for n in bfake.submissions.values()) == len(bfake.submissions) - 4
    assert got.stats["batch_malformed"] == 2


def test_past_max_resubmits_rows_are_kept_with_the_error(tmp_path, bserver, bfake):
    _run(tmp_path / "s", bserver.url, executor="local")
    keys = sorted(_cache_keys(tmp_path / "s" / "cache"))
    bfake.line_faults = {keys[0]: "malformed", keys[1]: "400"}
    bfake.outcomes = []
    bfake.answers.rates = {}
    # max_resubmits=0: a malformed line is kept with its error; a 400 is the row's own error (not resubmitted).
    got = _run(tmp_path / "b", bserver.url, batch={"max_resubmits": 0}, max_consecutive_failures=0)
    errors = got.frame["error"].dropna().tolist()
    assert len(got.frame) == len(_trials()) and len(errors) == 2
    assert any(e.startswith("malformed batch output line") and "gave up after 1 batch submissions" in e for e in errors)
    assert any("HTTP 400" in e for e in errors)
    assert not bfake.duplicates()
    assert not got.frame.loc[got.frame["error"].notna(), "valid"].any()
    assert got.stats["batch_gave_up"] == 1 and got.stats["batch_malformed"] == 1


def test_the_budget_guard_refuses_before_anything_is_submitted(tmp_path, bserver, bfake):
    n = len(_trials())
    with pytest.raises(UserError, match=rf"runner.batch.max_calls=10: submitting {n} calls would make {n} batch calls"):
        _run(tmp_path, bserver.url, batch={"max_calls": 10})
    with pytest.raises(UserError, match=r"runner.batch.max_cost_usd=1e-06: this round is estimated at \$0\.0"):
        _run(tmp_path, bserver.url, batch={"max_cost_usd": 1e-6})
    with pytest.raises(UserError, match="litellm's cost map has no price for openai/fake"):
        _run(tmp_path, bserver.url, name="openai/fake", batch={"max_cost_usd": 1.0})
    assert not bfake.files and not bfake.batches  # nothing uploaded, nothing submitted
    bdir = tmp_path / "run" / "batches"
    assert not list(bdir.rglob("*.jsonl")) and not list((tmp_path / "run").rglob("*.parquet"))
    # Within the limit it goes (the limit counts the whole run directory's calls).
    got = _run(tmp_path, bserver.url, batch={"max_calls": n, "max_cost_usd": 1.0})
    assert got.frame["error"].isna().all()


def test_credentials_and_refused_files_are_one_line_and_the_key_is_never_written(tmp_path, bserver, bfake, monkeypatch):
    monkeypatch.setenv("FAKE_BATCH_KEY", KEY)
    bfake.api_key = KEY
    got = _run(tmp_path, bserver.url, model={"api_key_env": "FAKE_BATCH_KEY"})
    assert got.frame["error"].isna().all() and f"Bearer {KEY}" in bfake.auth_seen
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text(errors="replace"), f
    monkeypatch.setenv("FAKE_BATCH_KEY", "sk-wrong-0123456789abcdef")
    with pytest.raises(UserError) as err:
        _run(tmp_path, bserver.url, run="bad", model={"api_key_env": "FAKE_BATCH_KEY"}, cache=False)
    msg = str(err.value)
    assert msg.startswith(f"model: {PRICED}: uploading req-00001.jsonl: the batch API rejected the credentials")
    assert "$FAKE_BATCH_KEY" in msg and "sk-wrong" not in msg and "\n" not in msg
    bfake.api_key = None
    bfake.reject_files = True
    with pytest.raises(UserError, match=rf"model: {PRICED}: uploading req-00001.jsonl: the batch API refused it \(HTTP 400"):
        _run(tmp_path, bserver.url, run="refused", cache=False)


def test_anthropic_message_batches(tmp_path, bserver, bfake, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", KEY)
    bfake.api_key = KEY
    model = {"api_key_env": "FAKE_ANTHROPIC_KEY", "temperature": 0.0}
    with pytest.raises(UserError, match="model.elicitation: 'both' cannot be used with Anthropic's Message Batches"):
        _run(tmp_path, bserver.root, name="anthropic/claude-fake", model=model)
    bfake.line_faults = {}
    bfake.outcomes = ["expired"]
    got = _run(tmp_path, bserver.root, name="anthropic/claude-fake", elicitation="sample", model=model)
    assert got.frame["error"].isna().all() and got.frame["valid"].all()
    assert all(b.kind == "anthropic" for b in bfake.batches.values()) and len(bfake.batches) == 2
    assert KEY in bfake.auth_seen  # x-api-key
    # The answers are the fake's (the same the sync fake gives for these messages).
    first = next(iter(bfake.batches.values())).requests[0]["params"]
    msgs = [{"role": "system", "content": first["system"]}] if first.get("system") else []
    want = bfake.answers.completion({"messages": msgs + first["messages"]})["choices"][0]["message"]["content"]
    assert want in set(got.frame["raw_text"])
    counts = sorted(bfake.submissions.values())  # the expired half (and only it) went twice
    assert counts.count(2) == len(counts) - int(len(counts) * 0.5) and counts.count(1) == int(len(counts) * 0.5)


def test_the_file_provider_writes_the_vllm_input_and_collects_its_output(tmp_path, bserver, bfake):
    with pytest.raises(RunPendingError, match=r"requests written for an offline batch run; run: vllm run-batch -i "):
        _run(tmp_path, bserver.url, name="openai/fake", batch={"provider": "file"})
    bdir = tmp_path / "run" / "batches" / "openai_fake"
    src = bdir / "req-00001.jsonl"
    run_batch_file(bfake, src, bdir / "req-00001.out.jsonl")  # what `vllm run-batch` does
    got = _run(tmp_path, bserver.url, name="openai/fake", batch={"provider": "file"})
    assert got.frame["error"].isna().all() and len(got.frame) == len(_trials())
    sync = _run(tmp_path / "s", bserver.url, name="openai/fake", executor="local")
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(sync.frame))


def test_wait_false_submits_and_the_rerun_collects(tmp_path, bserver, bfake):
    with pytest.raises(RunPendingError, match=r"1 batch\(es\) with \d+ requests submitted"):
        _run(tmp_path, bserver.url, batch={"wait": False})
    assert not list((tmp_path / "run").rglob("part-*.parquet"))  # no row yet
    # Each rerun without waiting takes one look (the fake moves one status a look) until it has ended.
    for attempt in range(5):
        try:
            got = _run(tmp_path, bserver.url, batch={"wait": False})
            break
        except RunPendingError:
            continue
    assert attempt == 1  # the first run saw in_progress; one look: finalizing; the next: completed
    assert got.frame["error"].isna().all() and len(got.frame) == len(_trials())
    assert len(bfake.batches) == 1 and not bfake.duplicates()


def test_an_error_after_submitting_keeps_the_run_directory(tmp_path, bfake):
    """Batches live at the provider: a later refusal is exit 3 (the run dir and its state stay), not 2."""
    trials = _trials("sequential")
    bfake.reject_files = False
    original = bfake.upload
    calls = {"n": 0}

    async def upload(request):
        calls["n"] += 1
        if calls["n"] == 2:
            bfake.reject_files = True
        try:
            return await original(request)
        finally:
            bfake.reject_files = False

    bfake.upload = upload  # type: ignore[method-assign]
    srv = BatchServerThread(bfake).start()
    try:
        with pytest.raises(RunFailedError, match="batches already submitted are in"):
            _run(tmp_path, srv.url, trials)
        got = _run(tmp_path, srv.url, trials)
    finally:
        srv.stop()
    assert got.frame["error"].isna().all() and not bfake.duplicates()
