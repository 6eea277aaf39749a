"""The executor seam: pass backends, DEFERRED, preset/fresh answers, chunks, the registry.

A test executor gets its answers "elsewhere" (the real backend called outside the runner, as a
batch file or a Ray worker would) and hands them to the runner; its rows must equal the local
executor's, its answers count as this run's calls, and a rerun pays nothing.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from runner_data import make_personas

import simsurvey.runner._administer as adm
from simsurvey.errors import UserError
from simsurvey.instruments import build_design
from simsurvey.instruments.config import DesignConfig
from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.respondents.base import Result
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer
from simsurvey.runner._executors import (
    ExecutorContext,
    PassBackend,
    Pending,
    executor_drive,
    run_pass,
)

N = 5
ROW_COLUMNS = ["persona_id", "question_id", "condition_id", "replicate", "option_order", "prompt_hash",
               "raw_text", "answer_code", "valid", "probs", "error"]


def _instrument() -> Instrument:
    def q(qid, text, labels, kind="single_choice"):
        return Question(id=qid, text=text, kind=kind,
                        options=tuple(Option(code=str(i), label=lbl) for i, lbl in enumerate(labels)))

    return Instrument(id="seam", title="Seam", questions=(
        q("trust", "How much do you trust the government?", ["A great deal", "Somewhat", "Not much"], "ordinal"),
        q("vote", "Did you vote in the last election?", ["Yes", "No"]),
        q("news", "How often do you follow the news?", ["Daily", "Weekly", "Rarely"], "ordinal"),
    ))


def _trials(context: str = "independent") -> pd.DataFrame:
    cfg = DesignConfig(context=context, question_order="randomized" if context == "sequential" else "fixed",
                       no_persona=True, replicates=2)
    return build_design(make_personas(N), _instrument(), cfg, seed=3)


def _run(tmp_path: Path, url: str, trials: pd.DataFrame, *, run: str, cache: bool = True, executor: str = "local",
         **kw):
    runner = RunnerConfig(**{"concurrency": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 5,
                             "cache": cache, "cache_dir": str(tmp_path / "cache"), "flush_every": 3,
                             "flush_seconds": 0.1, **kw})
    object.__setattr__(runner, "executor", executor)  # the test executor is not a config choice
    model = ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="both", temperature=0.7)
    return administer(trials, make_personas(N), _instrument(), model=model, prompt=PromptConfig(), runner=runner,
                      run_dir=tmp_path / run, seed=5, progress=False)


class Elsewhere:
    """A test executor: defer everything, answer the deferred requests with the real backend
    outside the runner, hand the answers over (``preset`` or, with the cache, ``fresh``), repeat."""

    def __init__(self, via: str = "preset", give_up: set[str] | None = None) -> None:
        self.via, self.give_up, self.rounds, self.asked = via, give_up or set(), 0, []

    async def drive(self, ctx: ExecutorContext) -> None:
        state = ctx.state
        while True:
            asked: dict[str, object] = {}
            failed: dict[str, Result] = {}

            def record(key, req):
                if req.context["question_id"] in self.give_up:
                    failed[key] = Result(error="given up by the executor")
                    return failed[key]
                asked[key] = req
                return None

            for pending in ctx.chunks():
                left = await run_pass(state, pending, PassBackend(state, record))
                assert all(isinstance(t, dict) for t in left.singles)
            if not asked:
                return
            self.rounds += 1
            self.asked.extend(asked)
            keys = list(asked)
            results = await ctx.backend.generate([asked[k] for k in keys])
            for k, res in zip(keys, results):
                if self.via == "fresh":
                    state.cache.put(k, res)  # the answer is in the cache the moment it arrives
                    state.fresh.add(k)
                else:
                    state.preset[k] = res


def _use(monkeypatch, executor: Elsewhere) -> None:
    monkeypatch.setattr(adm, "executor_drive", lambda name: executor.drive if name == "test" else executor_drive(name))


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[ROW_COLUMNS].copy()
    out["probs"] = out["probs"].map(lambda p: None if p is None else tuple(sorted(p.items())))
    out["option_order"] = out["option_order"].map(tuple)
    return out.reset_index(drop=True)


@pytest.mark.parametrize("via", ["preset", "fresh"])
def test_answers_from_elsewhere_give_the_local_rows(tmp_path, server, monkeypatch, via):
    trials = _trials()
    local = _run(tmp_path / "a", server.url, trials, run="local")
    ex = Elsewhere(via)
    _use(monkeypatch, ex)
    got = _run(tmp_path / "b", server.url, trials, run="other", chunk_size=4, executor="test")
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(local.frame))
    # Every answer received elsewhere is this run's own call: not cached, counted once.
    assert ex.rounds == 1 and len(ex.asked) == len(set(ex.asked)) == local.stats["calls"]
    assert not got.frame["cached"].any()
    assert got.stats["new_rows"] == len(trials) and got.stats["cached"] == 0
    assert got.stats["calls"] == 0  # the runner itself sent nothing
    # A rerun on a new run directory: everything from the cache, nothing asked elsewhere.
    again = Elsewhere(via)
    _use(monkeypatch, again)
    rerun = _run(tmp_path / "b", server.url, trials, run="other2", executor="test")
    assert again.rounds == 0 and rerun.frame["cached"].all()


def test_conversations_go_on_one_turn_per_round(tmp_path, server, monkeypatch):
    trials = _trials("sequential")
    local = _run(tmp_path / "a", server.url, trials, run="local")
    ex = Elsewhere()
    _use(monkeypatch, ex)
    got = _run(tmp_path / "b", server.url, trials, run="other", chunk_size=7, executor="test")
    pd.testing.assert_frame_equal(_rows(got.frame), _rows(local.frame))
    assert ex.rounds == len(_instrument().questions)  # turn k waits for turn k-1's answer


def test_a_trial_the_executor_gives_up_on_keeps_its_row(tmp_path, server, monkeypatch):
    trials = _trials()
    ex = Elsewhere(give_up={"vote"})
    _use(monkeypatch, ex)
    got = _run(tmp_path, server.url, trials, run="r", max_consecutive_failures=0, executor="test")
    assert len(got.frame) == len(trials)
    vote = got.frame[got.frame["question_id"] == "vote"]
    assert vote["error"].eq("given up by the executor").all() and not vote["valid"].any()
    assert got.frame.loc[got.frame["question_id"] != "vote", "error"].isna().all()


def test_chunks_never_split_a_persona():
    records = [{"persona_id": p} for p in (1, 1, 1, 2, 2, 3, None, None)]
    chunks = list(adm._persona_chunks(records, 2))
    assert [[r["persona_id"] for r in c] for c in chunks] == [[1, 1, 1], [2, 2], [3, None], [None]]


def test_a_pass_backend_defers_and_sends_nothing(tmp_path, server):
    """A pass with a deferring backend writes no row, counts no call and hands the trials back."""
    trials = _trials().head(6)
    runner = RunnerConfig(cache=False, rpm=1)  # a rate limit would stall a pass that sends something
    model = ModelConfig(backend="litellm", name="openai/fake", api_base=server.url)
    from simsurvey.runner._checkpoint import PartWriter
    from simsurvey.runner._progress import Progress

    state = adm._Run(backend=None, model=model, runner=runner, prompt=PromptConfig(), instrument=_instrument(),
                     personas=make_personas(N), seed=1, cache=None, writer=PartWriter(tmp_path, flush_every=10**9,
                     flush_seconds=float("inf")), progress=Progress("x", 0, enabled=False), total=0)
    records = trials[list(adm.TRIAL_COLUMNS)].to_dict("records")
    for t in records:
        t["persona_id"] = None if pd.isna(t["persona_id"]) else int(t["persona_id"])
    left = asyncio.run(run_pass(state, Pending(records, []), PassBackend(state)))
    assert len(left.singles) == 6 and not state.buf and state.c["calls"] == 0 and state.c["rows"] == 0


def test_a_missing_optional_executor_package_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UserError) as err:
        executor_drive("ray")
    assert str(err.value) == ("runner.executor: 'ray' needs the ray package, which is not installed: "
                              "pip install 'simsurvey[ray]'")
    with pytest.raises(UserError, match="unknown executor 'nope'"):
        executor_drive("nope")
