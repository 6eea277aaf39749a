"""Batching for in-process backends: consecutive requests of one persona, up to batch_size."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from runner_data import make_instrument, make_personas, make_trials

from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer


class ScriptedBackend:
    """Answers the first label with certainty; fails every request whose seed is divisible by 5."""

    name = "scripted"
    deterministic = True

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.batches: list[list[Request]] = []

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        self.batches.append(list(requests))
        out = []
        for r in requests:
            if r.seed % 5 == 0:
                out.append(Result(error="scripted failure"))
            else:
                out.append(Result(text=r.labels[-1], label_probs=(1.0,) + (0.0,) * (len(r.labels) - 1), missing_mass=0.0))
        return out


def test_batches_share_a_persona_and_respect_the_size(tmp_path):
    inst = make_instrument()
    trials = make_trials(inst, 3, replicates=2)
    backend = ScriptedBackend(batch_size=3)
    res = administer(trials, make_personas(3), inst, model=ModelConfig(backend="local", name="scripted", elicitation="both"),
                     prompt=PromptConfig(), runner=RunnerConfig(concurrency=2, cache=False), run_dir=tmp_path, seed=2,
                     progress=False, backend=backend)
    assert sum(len(b) for b in backend.batches) == len(trials)
    for batch in backend.batches:
        assert 1 <= len(batch) <= 3
        assert len({r.prefix_key for r in batch}) == 1
        if batch[0].prefix_key is None:  # the no_persona control is never batched
            assert len(batch) == 1
    assert max(len(b) for b in backend.batches) == 3
    df = res.frame
    assert len(df) == len(trials)
    # results were matched to their own rows: the text is the last displayed label, the probs the first
    ok = df[df["error"].isna()]
    assert (ok["answer_code"] == ok["option_order"].map(lambda o: o[-1])).all()
    assert all(p[o[0]] == 1.0 for p, o in zip(ok["probs"], ok["option_order"]))
    # per-request failures are kept as error rows, not retried, not dropped
    bad = df[df["error"].notna()]
    assert len(bad) > 0 and not bad["valid"].any() and (bad["error"] == "scripted failure").all()
    assert res.stats["calls"] == len(backend.batches) and res.stats["retries"] == 0
    assert isinstance(df["persona_id"].dtype, pd.Int64Dtype)


def test_a_backends_resolved_identity_is_part_of_the_cache_key(tmp_path):
    # The local backend's dtype=auto resolves per machine (bf16 or fp32): an answer cached under
    # one dtype must not be served to the other. Same config, other identity -> new calls; same
    # identity -> served from the cache; identity recorded in the stats (the manifest).
    inst = make_instrument()
    trials = make_trials(inst, 2, no_persona=False)
    model = ModelConfig(backend="local", name="scripted", elicitation="logprobs", params={"dtype": "auto"})

    def run(identity, name):
        backend = ScriptedBackend(batch_size=4)
        backend.identity = identity
        res = administer(trials, make_personas(2), inst, model=model, prompt=PromptConfig(),
                         runner=RunnerConfig(concurrency=1, cache_dir=str(tmp_path / "cache")), run_dir=tmp_path / name,
                         seed=2, progress=False, backend=backend)
        return res, sum(len(b) for b in backend.batches)

    first, asked = run({"dtype": "bfloat16"}, "a")
    assert asked == len(trials) and first.stats["backend_identity"] == {"dtype": "bfloat16"}
    _, asked = run({"dtype": "float32"}, "b")
    assert asked == len(trials)  # the old code keyed on params={"dtype": "auto"} only: 0 calls
    again, asked = run({"dtype": "float32"}, "c")
    failed = again.frame["error"].notna()  # the scripted failures are not cached: asked again
    assert asked == failed.sum() < len(trials) and again.frame.loc[~failed, "cached"].all()
