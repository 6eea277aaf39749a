"""The runner end to end against the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from runner_data import make_instrument, make_personas, make_trials
from fake_openai import GARBAGE_TEXT, token_logprobs

from simsurvey.errors import UserError
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.prompts import render_request
from simsurvey.runner import RESPONSE_COLUMNS, administer, administer_async
from simsurvey.runner._administer import row_seed

KEY = ["persona_id", "question_id", "condition_id", "replicate", "model"]


def _model(url: str, **kw) -> ModelConfig:
    return ModelConfig(backend="litellm", name="openai/fake", api_base=url, **kw)


def _runner(tmp_path: Path, **kw) -> RunnerConfig:
    base = dict(concurrency=4, backoff_base_s=0.01, backoff_max_s=0.05, cache_dir=str(tmp_path / "cache"),
                flush_every=5, flush_seconds=0.2, timeout_s=5)
    base.update(kw)
    return RunnerConfig(**base)


def _run(tmp_path, url, *, n=3, replicates=1, run="run", model_kw=None, trials=None, **runner_kw):
    inst = make_instrument()
    trials = trials if trials is not None else make_trials(inst, n, replicates)
    return administer(trials, make_personas(n), inst, model=_model(url, **(model_kw or {})), prompt=PromptConfig(),
                      runner=_runner(tmp_path, **runner_kw), run_dir=tmp_path / run, seed=11, progress=False)


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame[KEY].itertuples(index=False)]


def _assert_complete(frame: pd.DataFrame, trials: pd.DataFrame) -> None:
    keys = _keys(frame)
    assert len(keys) == len(set(keys)), "duplicate rows"
    want = {(None if pd.isna(t.persona_id) else int(t.persona_id), t.question_id, t.condition_id, int(t.replicate), "openai/fake")
            for t in trials.itertuples()}
    assert set(keys) == want, "lost rows"


def test_rows_follow_the_contract_and_the_fake_distribution(tmp_path, server, fake):
    inst = make_instrument()
    trials = make_trials(inst, 3)
    res = _run(tmp_path, server.url, model_kw={"elicitation": "both"})
    df = res.frame
    _assert_complete(df, trials)
    assert list(df.columns) == list(RESPONSE_COLUMNS)
    assert df[["persona_id", "question_id", "condition_id", "replicate"]].equals(
        df.sort_values(["persona_id", "question_id", "condition_id", "replicate"], na_position="first")[
            ["persona_id", "question_id", "condition_id", "replicate"]])
    assert df["valid"].all() and not df["cached"].any() and df["error"].isna().all()
    personas = make_personas(3)
    for row in df.itertuples():
        pid = None if pd.isna(row.persona_id) else int(row.persona_id)
        q = inst.question(row.question_id)
        req = render_request(cue=None if pid is None else personas.cue[pid], question=q, option_order=row.option_order,
                             label_style=row.label_style, prompt=PromptConfig(), model=_model(server.url, elicitation="both"),
                             seed=row_seed(11, pid, row.question_id, row.condition_id, row.replicate),
                             prefix_key=None, context={})
        mass = {lab: 0.0 for lab in req.labels}
        for tok, lp in token_logprobs(list(req.messages)):
            if tok.strip() in mass:
                mass[tok.strip()] += math.exp(lp)
        total = sum(mass.values())
        expect = {code: mass[lab] / total for code, lab in zip(row.option_order, req.labels)}
        assert row.probs == pytest.approx(expect)
        assert row.missing_mass == pytest.approx(1 - total)
        # the fake answers its top label; parsed back to the canonical code
        assert row.answer_code == max(expect, key=expect.get)
    s = res.stats
    assert s["rows"] == len(df) == s["new_rows"] == s["valid"] and s["errors"] == 0
    assert s["prompt_tokens"] == df["prompt_tokens"].sum() and s["cost_usd"] == 0.0
    assert df["cost_usd"].isna().all()  # the fake model has no price: null, not invented


def test_logprobs_only_answer_is_the_argmax(tmp_path, server):
    df = _run(tmp_path, server.url, model_kw={"elicitation": "logprobs"}).frame
    assert df["valid"].all() and df["invalid_reason"].isna().all()
    # raw_text shows what came back: the top tokens with their probabilities
    assert df["raw_text"].str.contains('"I" 0.120').all()
    for row in df.itertuples():
        assert row.answer_code == max(row.probs, key=row.probs.get)


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "malformed", "garbage", "refusal"])
def test_every_fault_kind_keeps_every_row_once(tmp_path, server, fake, kind):
    fake.schedule = {i: kind for i in range(0, 200, 3)}
    fake.retry_after = 0.01
    fake.timeout_sleep_s = 1.0
    inst = make_instrument()
    trials = make_trials(inst, 4)
    res = _run(tmp_path, server.url, n=4, model_kw={"elicitation": "sample"}, timeout_s=0.3)
    df = res.frame
    _assert_complete(df, trials)
    answered = Counter(e.key for e in fake.log if e.answered)
    assert max(answered.values()) == 1, "a call was answered twice"
    if kind in ("garbage", "refusal"):
        bad = df[~df["valid"]]
        assert 0 < len(bad) == len(range(0, len(trials), 3))  # kept, not dropped, not retried
        assert bad["answer_code"].isna().all() and bad["error"].isna().all()
        if kind == "garbage":
            assert (bad["raw_text"] == GARBAGE_TEXT).all() and not bad["refusal"].any()
        else:
            assert bad["refusal"].all() and res.stats["refusals"] == len(bad)
    else:
        assert df["valid"].all() and res.stats["retries"] > 0
        assert res.stats["calls"] == len(fake.log)


def test_retry_after_is_honoured(tmp_path, server, fake):
    fake.schedule = {0: "429"}
    fake.retry_after = 0.5
    _run(tmp_path, server.url, n=1, concurrency=1, backoff_base_s=0.001, backoff_max_s=0.001)
    assert fake.log[0].key == fake.log[1].key  # the same call, retried...
    assert fake.times[1] - fake.times[0] >= 0.5  # ...after the server's Retry-After, not the 1 ms backoff


def test_gives_up_after_max_retries_and_keeps_the_row(tmp_path, server, fake):
    fake.rates = {"500": 1.0}
    inst = make_instrument()
    trials = make_trials(inst, 1)
    res = _run(tmp_path, server.url, n=1, max_retries=2)
    df = res.frame
    _assert_complete(df, trials)
    assert not df["valid"].any() and df["answer_code"].isna().all()
    assert df["error"].str.contains("HTTP 500").all() and df["error"].str.contains("after 2 retries").all()
    assert len(fake.log) == 3 * len(trials)
    assert res.stats["errors"] == len(df) and res.stats["retries"] == 2 * len(trials)
    # errors are not cached: a rerun asks again
    fake.rates = {}
    again = _run(tmp_path, server.url, n=1, run="run2")
    assert again.frame["valid"].all() and len(fake.log) == 4 * len(trials)


def test_rerun_is_served_from_the_cache(tmp_path, server, fake):
    first = _run(tmp_path, server.url, model_kw={"elicitation": "both"})
    calls = len(fake.log)
    second = _run(tmp_path, server.url, run="other", model_kw={"elicitation": "both"})
    assert len(fake.log) == calls  # no call repeated
    assert second.frame["cached"].all() and (second.frame["cost_usd"] == 0).all()
    assert second.stats["cached"] == len(second.frame) and second.stats["calls"] == 0
    cols = ["answer_code", "raw_text", "prompt_hash", "missing_mass"]
    assert first.frame[cols].equals(second.frame[cols])
    assert first.frame["probs"].tolist() == second.frame["probs"].tolist()


def test_cache_key_covers_the_server_and_params(tmp_path, server, fake):
    _run(tmp_path, server.url)
    n = len(fake.log)
    _run(tmp_path, server.url, run="r2", model_kw={"params": {"user": "x"}})  # other params: new calls
    assert len(fake.log) == 2 * n


def test_cache_can_be_turned_off(tmp_path, server, fake):
    _run(tmp_path, server.url, cache=False)
    n = len(fake.log)
    _run(tmp_path, server.url, cache=False, run="again")
    assert len(fake.log) == 2 * n and not (tmp_path / "cache").exists()


def test_sampled_replicates_are_distinct_calls_logprobs_are_shared(tmp_path, server, fake):
    res = _run(tmp_path, server.url, replicates=3, model_kw={"elicitation": "sample", "temperature": 1.0})
    assert len(fake.log) == len(res.frame) == len(set(fake.keys()))
    assert res.frame["prompt_hash"].nunique() == len(res.frame)
    fake.log.clear()
    res = _run(tmp_path, server.url, replicates=3, run="lp", model_kw={"elicitation": "logprobs"})
    # logprobs-only requests are deterministic: one call per distinct prompt, whatever the replicate
    assert len(fake.log) == len(res.frame) // 3
    assert res.stats["cached"] == len(res.frame) - len(fake.log)


def test_resume_skips_checkpointed_rows(tmp_path, server, fake):
    inst = make_instrument()
    trials = make_trials(inst, 4)
    half = trials.iloc[: len(trials) // 2]
    _run(tmp_path, server.url, n=4, trials=half, cache=False)
    assert len(fake.log) == len(half)
    parts = tmp_path / "run" / "parts" / "responses" / "openai_fake"
    (parts / ".part-00099.parquet.xyz.tmp").write_bytes(b"torn")
    res = _run(tmp_path, server.url, n=4, trials=trials, cache=False)
    _assert_complete(res.frame, trials)
    assert len(fake.log) == len(trials) and len(set(fake.keys())) == len(trials)
    assert res.stats["resumed_rows"] == len(half) and res.stats["new_rows"] == len(trials) - len(half)
    assert not list(parts.glob("*.tmp"))


def test_fatal_error_stops_with_a_user_error_after_checkpointing(tmp_path, server, fake):
    fake.schedule = {6: "401"}
    with pytest.raises(UserError, match=r"^model: openai/fake: .*401") as err:
        _run(tmp_path, server.url, concurrency=1)
    assert str(err.value).count("openai/fake") == 1  # the model is named once, not by the runner and the backend
    from simsurvey.runner import read_parts

    done = read_parts(tmp_path / "run" / "parts" / "responses" / "openai_fake")
    assert len(done) == 6


def test_rpm_limit(tmp_path, server, fake):
    res = _run(tmp_path, server.url, n=9, concurrency=16, rpm=1200, cache=False)  # 20/s, burst of 20
    assert len(res.frame) == 40
    span = fake.times[-1] - fake.times[0]
    assert span >= (40 - 20) / 20 * 0.95


def test_tpm_limit(tmp_path, server, fake):
    # 24,000 tpm = 400 tokens/s with a burst of 400; the fake reports ~20-30 tokens per call
    res = _run(tmp_path, server.url, n=4, concurrency=16, tpm=24000, cache=False)
    used = int(res.frame["prompt_tokens"].sum() + res.frame["completion_tokens"].sum())
    span = fake.times[-1] - fake.times[0]
    assert used > 800 and span >= (used - 400) / 400 * 0.8


def test_baseline_backend_through_the_runner(tmp_path):
    inst = make_instrument()
    trials = make_trials(inst, 3, replicates=2)
    cfg = ModelConfig(backend="baseline/uniform", name="baseline/uniform", elicitation="both")
    res = administer(trials, make_personas(3), inst, model=cfg, prompt=PromptConfig(), runner=_runner(tmp_path),
                     run_dir=tmp_path / "run", seed=5, progress=False)
    df = res.frame
    assert len(df) == len(trials) and df["valid"].all() and (df["backend"] == "baseline/uniform").all()
    assert not df["cached"].any() and not (tmp_path / "cache").exists()  # baselines are never cached
    for row in df.itertuples():
        assert row.probs == pytest.approx({c: 1 / len(row.option_order) for c in row.option_order})


def test_input_errors(tmp_path, server):
    inst = make_instrument()
    trials = make_trials(inst, 2)
    kw = dict(model=_model(server.url), prompt=PromptConfig(), runner=_runner(tmp_path), run_dir=tmp_path / "r", seed=1)
    with pytest.raises(UserError, match="trials: missing column"):
        administer(trials.drop(columns=["option_order"]), make_personas(2), inst, **kw)
    with pytest.raises(UserError, match="personas: persona_id 1 of the trials is not in personas.parquet"):
        administer(trials, make_personas(1), inst, **kw)
    with pytest.raises(UserError, match="question_id 'nope'"):
        administer(trials.assign(question_id="nope"), make_personas(2), inst, **kw)
    with pytest.raises(UserError, match="duplicate trial key"):
        administer(pd.concat([trials, trials.iloc[:1]]), make_personas(2), inst, **kw)


def test_logprobs_cannot_answer_multi_select(tmp_path, server):
    from simsurvey.instruments.models import Instrument, Option, Question

    q = Question(id="media", text="Which do you use?", kind="multi_select",
                 options=(Option(code="tv", label="TV"), Option(code="web", label="Web")))
    inst = Instrument(id="m", title="m", questions=(q,))
    trials = make_trials(inst, 1)
    kw = dict(prompt=PromptConfig(), runner=_runner(tmp_path), run_dir=tmp_path / "r", seed=1, progress=False)
    with pytest.raises(UserError, match="model.elicitation: 'logprobs' cannot answer multi_select question 'media'"):
        administer(trials, make_personas(1), inst, model=_model(server.url), **kw)
    res = administer(trials, make_personas(1), inst, model=_model(server.url, elicitation="sample"), **kw)
    assert len(res.frame) == len(trials)


def test_sync_wrapper_refuses_a_running_loop(tmp_path, server):
    inst = make_instrument()

    async def inside():
        with pytest.raises(RuntimeError, match="administer_async"):
            administer(make_trials(inst, 1), make_personas(1), inst, model=_model(server.url), prompt=PromptConfig(),
                       runner=_runner(tmp_path), run_dir=tmp_path / "r", seed=1)
        res = await administer_async(make_trials(inst, 1), make_personas(1), inst, model=_model(server.url),
                                     prompt=PromptConfig(), runner=_runner(tmp_path), run_dir=tmp_path / "r", seed=1,
                                     progress=False)
        assert len(res.frame) == 8  # (1 persona + no_persona) x 2 questions x 2 conditions

    asyncio.run(inside())


def test_the_api_key_never_reaches_parts_or_cache(tmp_path, server, fake, monkeypatch):
    monkeypatch.setenv("SIMSURVEY_FAKE_KEY", "sk-secret-4242")
    res = _run(tmp_path, server.url, model_kw={"api_key_env": "SIMSURVEY_FAKE_KEY", "elicitation": "both"})
    assert {e.authorization for e in fake.log} == {"Bearer sk-secret-4242"}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.name.startswith("responses.sqlite") for p in files)
    for p in files:
        assert b"sk-secret-4242" not in p.read_bytes(), p
    assert "sk-secret-4242" not in repr(res.stats) + res.frame.to_csv()


@pytest.mark.slow
def test_mixed_faults_by_fraction(tmp_path, server, fake):
    fake.rates = {"429": 0.1, "500": 0.1, "malformed": 0.05, "timeout": 0.05, "garbage": 0.05, "refusal": 0.05}
    fake.retry_after, fake.timeout_sleep_s, fake.seed = 0.01, 1.0, 3
    inst = make_instrument()
    trials = make_trials(inst, 12, replicates=2)
    res = _run(tmp_path, server.url, n=12, replicates=2, model_kw={"elicitation": "sample"}, concurrency=16,
               timeout_s=0.3, max_retries=8)
    df = res.frame
    _assert_complete(df, trials)
    answered = Counter(e.key for e in fake.log if e.answered)
    assert set(answered.values()) == {1} and len(answered) == len(trials)
    n_bad = sum(e.fault in ("garbage", "refusal") for e in fake.log)
    assert (~df["valid"]).sum() == n_bad and df["error"].isna().all()
    assert res.stats["calls"] == len(fake.log) and res.stats["retries"] == len(fake.log) - len(trials)


def test_empty_design(tmp_path, server, fake):
    inst = make_instrument()
    res = _run(tmp_path, server.url, trials=make_trials(inst, 1).iloc[:0])
    assert len(res.frame) == 0 and list(res.frame.columns) == list(RESPONSE_COLUMNS)
    assert res.stats["rows"] == 0 and fake.log == []


def test_frame_holds_only_the_current_designs_rows(tmp_path, server, fake):
    inst = make_instrument()
    trials = make_trials(inst, 3)
    _run(tmp_path, server.url, trials=trials)
    calls = len(fake.log)
    subset = trials.iloc[::2]
    res = _run(tmp_path, server.url, trials=subset)
    _assert_complete(res.frame, subset)
    assert len(fake.log) == calls and res.stats["resumed_rows"] == len(subset)
