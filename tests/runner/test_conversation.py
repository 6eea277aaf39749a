"""Sequential questionnaires through the runner, against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from fake_openai import GARBAGE_TEXT
from runner_data import make_personas

from simsurvey.instruments import build_design
from simsurvey.instruments.config import DesignConfig
from simsurvey.instruments.models import Instrument, Option, Question
from simsurvey.respondents.base import Request
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer
from simsurvey.runner._conversation import assistant_text

N = 4


def _instrument() -> Instrument:
    def q(qid, text, labels, kind="single_choice"):
        return Question(id=qid, text=text, kind=kind, options=tuple(Option(code=str(i), label=lbl) for i, lbl in enumerate(labels)))

    return Instrument(id="seq", title="Seq", questions=(
        q("trust", "How much do you trust the government?", ["A great deal", "Somewhat", "Not much"], "ordinal"),
        q("vote", "Did you vote in the last election?", ["Yes", "No"]),
        q("party", "Which party do you feel closest to?", ["Democrats", "Republicans", "Neither"]),
        q("news", "How often do you follow the news?", ["Daily", "Weekly", "Rarely"], "ordinal"),
    ))


def _trials(seed: int = 3, **kw) -> pd.DataFrame:
    cfg = DesignConfig(context="sequential", question_order="randomized", no_persona=kw.pop("no_persona", False), **kw)
    return build_design(make_personas(N), _instrument(), cfg, seed=seed)


def _run(tmp_path: Path, url: str, trials: pd.DataFrame, *, run="run", elicitation="both", cache="cache", **kw):
    runner = RunnerConfig(**{"concurrency": 4, "backoff_base_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 5,
                             "cache_dir": str(tmp_path / cache), "flush_every": 2, "flush_seconds": 0.1, **kw})
    model = ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation=elicitation)
    return administer(trials, make_personas(N), _instrument(), model=model, prompt=PromptConfig(), runner=runner,
                      run_dir=tmp_path / run, seed=5, progress=False)


def _persona_of(messages: list[dict]) -> int:
    return int(messages[0]["content"].split("person number ")[1].split(",")[0])


def _conversations(frame: pd.DataFrame) -> dict[tuple[int, int], pd.DataFrame]:
    persona = frame[frame["persona_id"].notna()]
    return {(int(p), int(r)): g.sort_values("question_position")
            for (p, r), g in persona.groupby(["persona_id", "replicate"])}


def test_each_turn_carries_the_full_history_in_order(tmp_path, server, fake):
    fake.latency_s = 0.02
    trials = _trials()
    res = _run(tmp_path, server.url, trials)
    frame = res.frame
    assert len(frame) == len(trials) and frame["error"].isna().all()
    convs = _conversations(frame)
    assert len(convs) == N and len({tuple(g["question_id"]) for g in convs.values()}) > 1  # randomized orders
    sent = [(e.index, e.messages) for e in fake.log]
    for (pid, _), rows in convs.items():
        mine = [(i, m) for i, m in sent if _persona_of(m) == pid]
        assert [len(m) for _, m in mine] == [2 + 2 * k for k in range(len(rows))]  # turn k: persona, k Q&As, question k
        last = mine[-1][1]
        assert last[0]["role"] == "system" and [m["role"] for m in last[1:]] == ["user", "assistant"] * (len(rows) - 1) + ["user"]
        # Each earlier turn: its question as rendered for its row, then the model's raw answer.
        texts = {q.id: q.text for q in _instrument().questions}
        for k, row in enumerate(rows.itertuples()):
            assert texts[row.question_id] in last[1 + 2 * k]["content"]
            assert "person number" not in last[1 + 2 * k]["content"]
            if k < len(rows) - 1:
                assert last[2 + 2 * k] == {"role": "assistant", "content": row.raw_text}
            # Turn k's request is turn k-1's request + the answer + question k.
            assert mine[k][1] == last[: 2 + 2 * k]
        # The turns of one conversation were asked one after the other, in order.
        assert [i for i, _ in mine] == sorted(i for i, _ in mine)
    # Conversations run concurrently: the first requests are the first turns of different personas.
    assert len({_persona_of(m) for _, m in sent[:4]}) == 4
    # prompt_hash covers the history: the same question, condition and persona, asked after other
    # questions, has another hash than it would alone.
    first = frame[frame["question_position"] == 0]
    assert frame["prompt_hash"].nunique() == len(frame) and len(first) == N


def test_logprob_answers_enter_the_history_as_the_chosen_label(tmp_path, server, fake):
    res = _run(tmp_path, server.url, _trials(), elicitation="logprobs")
    rows = next(iter(_conversations(res.frame).values()))
    pid = int(rows["persona_id"].iloc[0])
    last = [e.messages for e in fake.log if _persona_of(e.messages) == pid][-1]
    for k, row in enumerate(rows.iloc[:-1].itertuples()):
        labels = ("A", "B", "C") if row.label_style == "letters" else ("1", "2", "3")
        shown = labels[list(row.option_order).index(row.answer_code)]
        assert last[2 + 2 * k] == {"role": "assistant", "content": shown}


def test_assistant_text_of_each_elicitation():
    ctx = {"option_order": ("b", "a")}
    assert assistant_text(Request(messages=(), labels=("A", "B"), elicitation="logprobs", context=ctx), "tokens", "a") == "B"
    assert assistant_text(Request(messages=(), labels=("A", "B"), elicitation="logprobs", context=ctx), "x", None) == "x"
    assert assistant_text(Request(messages=(), labels=("A", "B"), elicitation="both", context=ctx), "I'd say B", "a") == "I'd say B"
    assert assistant_text(Request(messages=(), labels=("A", "B"), elicitation="sample", context=ctx), None, None) == ""


def _answered_messages(fake) -> Counter:
    return Counter(json.dumps(e.messages, sort_keys=True) for e in fake.log if e.answered)


def test_a_failed_turn_ends_the_conversation_and_the_resume_sends_the_uninterrupted_history(tmp_path, server, fake):
    trials = _trials()
    whole = _run(tmp_path, server.url, trials, run="whole", cache="cache-whole")
    expected = _answered_messages(fake)
    fake.log.clear()
    # Request 5 fails for good (no retries): its conversation stops there for this run.
    fake.schedule = {5: "500"}
    first = _run(tmp_path, server.url, trials, max_retries=0, max_consecutive_failures=0)
    failed = first.frame[first.frame["error"].notna()]
    assert len(failed) == 1
    pid, rep, pos = int(failed["persona_id"].iloc[0]), int(failed["replicate"].iloc[0]), int(failed["question_position"].iloc[0])
    conv = first.frame[(first.frame["persona_id"] == pid) & (first.frame["replicate"] == rep)]
    assert conv["question_position"].max() == pos  # no later turn was asked, no row written for one
    assert len(first.frame) == len(trials) - (trials[(trials["persona_id"] == pid) & (trials["replicate"] == rep)]["question_position"] > pos).sum()
    second = _run(tmp_path, server.url, trials, max_retries=0)  # the resume: same run dir, same cache
    # Every answered call, over both attempts, is one of the uninterrupted run's, each exactly once.
    got = _answered_messages(fake)
    assert got == expected and max(got.values()) == 1
    cols = ["persona_id", "question_id", "condition_id", "replicate", "question_position", "raw_text", "answer_code", "prompt_hash"]
    assert second.frame[cols].equals(whole.frame[cols])
    assert second.stats["resumed_rows"] == len(first.frame) - 1


def test_an_answer_is_reused_only_under_the_identical_history(tmp_path, server, fake):
    # Two designs (other random question orders) sharing one cache: a row is served from the
    # cache exactly when the first run asked the same messages (same question, condition, history).
    a = _run(tmp_path, server.url, _trials(seed=3), run="a")
    b = _run(tmp_path, server.url, _trials(seed=4), run="b")
    seen = set(a.frame["prompt_hash"])
    hit = b.frame["prompt_hash"].isin(seen)
    assert hit.any() and not hit.all()
    assert (b.frame["cached"] == hit).all()
    # Each miss is one new call, each hit none.
    assert b.stats["calls"] == int((~hit).sum())


KILL_SCRIPT = """
import sys
from pathlib import Path
sys.path[:0] = [{here!r}, {support!r}]
from test_conversation import _run, _trials
url, tmp = sys.argv[1], Path(sys.argv[2])
_run(tmp, url, _trials(replicates=2), timeout_s=120, flush_seconds=0.2)
print("DONE")
"""


@pytest.mark.slow
def test_sigkill_mid_conversation_then_resume_rebuilds_the_history(tmp_path, server, fake):
    # Killed with 4 turns in flight: the resume rebuilds each half-finished conversation's history
    # from the checkpoint and sends exactly the requests of an uninterrupted run; every answered
    # call is answered once, only the calls in flight at the kill are asked again.
    here = Path(__file__).resolve().parent
    script = tmp_path / "run_seq.py"
    script.write_text(KILL_SCRIPT.format(here=str(here), support=str(here.parent / "support")))
    fake.stall_after = 12
    env = {**os.environ, "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen([sys.executable, str(script), server.url, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 90
    while len(fake.log) < 12 + 4:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the runner did not reach the stall"
        time.sleep(0.05)
    time.sleep(1.0)  # > flush_seconds: the answered rows reach a part
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stalled = {e.key for e in fake.log if e.fault == "stall"}
    assert len(stalled) == 4
    fake.stall_after = None
    trials = _trials(replicates=2)
    resumed = _run(tmp_path, server.url, trials)
    assert resumed.stats["resumed_rows"] == 12 and len(resumed.frame) == len(trials)
    answered = Counter(e.key for e in fake.log if e.answered)
    assert set(answered.values()) == {1} and len(answered) == len(trials)
    assert {k for k, n in Counter(e.key for e in fake.log).items() if n > 1} <= stalled
    sent = _answered_messages(fake)
    fake.log.clear()
    fresh = _run(tmp_path, server.url, trials, run="fresh", cache="fresh-cache")
    assert _answered_messages(fake) == sent
    cols = ["persona_id", "question_id", "condition_id", "replicate", "question_position", "raw_text", "prompt_hash"]
    assert resumed.frame[cols].equals(fresh.frame[cols])


def test_retry_invalid_reasks_the_turn_and_every_later_turn_of_its_conversation(tmp_path, server, fake):
    # An unparseable answer stays in the history (the conversation goes on). retry=invalid asks that
    # turn again; its new answer changes the history of the later turns, so they are asked again
    # too (under the new history), and nothing of the other conversations is asked.
    trials = _trials()
    fake.schedule = {1: "garbage"}
    first = _run(tmp_path, server.url, trials)
    bad = first.frame[~first.frame["valid"]]
    assert len(bad) == 1 and bad["raw_text"].iloc[0] == GARBAGE_TEXT and first.frame["error"].isna().all()
    pid, pos = int(bad["persona_id"].iloc[0]), int(bad["question_position"].iloc[0])
    conv = first.frame[first.frame["persona_id"] == pid].sort_values("question_position")
    later = conv[conv["question_position"] > pos]
    assert len(later) and all(GARBAGE_TEXT in json.dumps(e.messages) for e in fake.log
                              if _persona_of(e.messages) == pid and len(e.messages) > 2 * pos + 2)
    n = len(fake.log)
    again = _run(tmp_path, server.url, trials, retry="invalid")
    asked = fake.log[n:]
    assert len(asked) == len(conv) - pos and {_persona_of(e.messages) for e in asked} == {pid}
    assert again.frame["valid"].all()
    new = again.frame[again.frame["persona_id"] == pid].set_index("question_position")
    old = conv.set_index("question_position")
    assert (new.loc[later["question_position"], "prompt_hash"] != old.loc[later["question_position"], "prompt_hash"]).all()
    others = again.frame["persona_id"] != pid
    assert again.frame.loc[others, "prompt_hash"].tolist() == first.frame.loc[first.frame["persona_id"] != pid, "prompt_hash"].tolist()
