"""The embedded local backend, on the real SmolLM2-135M-Instruct weights (offline)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from simsurvey.instruments.models import Option, Question
from simsurvey.respondents.base import Backend, FatalBackendError
from simsurvey.respondents.config import ModelConfig
from simsurvey.respondents.local import (
    Cancelled,
    LocalBackend,
    _chunks,
    _common_prefix,
    _cpuinfo_flags,
    _load,
    convert_gguf,
    converted_dir,
    cpu_supports_bf16,
    embedded_gguf,
    resolve_dtype,
)
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.prompts import render_request

Q1 = Question(
    id="capital", text="What is the capital of France?", kind="single_choice",
    options=(Option(code="lon", label="London"), Option(code="par", label="Paris"),
             Option(code="rom", label="Rome"), Option(code="ber", label="Berlin")),
)
Q2 = Question(
    id="tax", text="Taxes on the rich should be raised.", kind="ordinal",
    options=(Option(code="sa", label="Strongly agree"), Option(code="a", label="Agree"),
             Option(code="d", label="Disagree"), Option(code="sd", label="Strongly disagree")),
)
CUES = ["I am Maria, a 34-year-old nurse from Ohio.", "I am Tom, a 70-year-old retired farmer from Iowa."]


def cfg(elicitation="logprobs", params=None, **kw) -> ModelConfig:
    # One torch thread: on a shared, oversubscribed CI box two OpenMP threads spin against each
    # other (measured 0.44 s vs 8 s per request at load average 5 on 2 cores).
    return ModelConfig(backend="local", name="SmolLM2-135M-Instruct", elicitation=elicitation,
                       params={"threads": 1, **(params or {})}, **kw)


def req(q=Q1, cue=CUES[0], style="letters", elicitation="logprobs", seed=1, order=None, key="p0",
        temperature=1.0, max_tokens=12, prompt=None):
    return render_request(cue=cue, question=q, option_order=order or q.codes, label_style=style,
                          prompt=prompt or PromptConfig(), model=cfg(elicitation, temperature=temperature, max_tokens=max_tokens),
                          seed=seed, prefix_key=key, context={})


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    # bf16 explicitly (not the machine-dependent `auto`): the bit-for-bit tests below hold in bf16,
    # whose rounding absorbs the fp32 kernels' dependence on the padded length.
    b = LocalBackend(cfg(params={"dtype": "bfloat16"}))
    b.load()
    return b


@pytest.fixture(scope="module")
def fp32() -> LocalBackend:
    b = LocalBackend(cfg(params={"dtype": "float32"}))
    b.load()
    return b


def test_is_a_backend_with_the_documented_attributes():
    b = LocalBackend(cfg())
    assert isinstance(b, Backend)
    assert (b.name, b.deterministic, b.batch_size, b.threads) == ("SmolLM2-135M-Instruct", True, 32, 1)
    assert not LocalBackend(cfg("sample")).deterministic and not LocalBackend(cfg("both")).deterministic
    assert LocalBackend(cfg(params={"batch_size": 8})).batch_size == 8


@pytest.mark.parametrize(("params", "match"), [({"colour": 1}, "model.params.colour"), ({"dtype": "int4"}, "model.params.dtype"),
                                              ({"conversation_cache_tokens": -1}, "model.params.conversation_cache_tokens")])
def test_bad_params_fail_clearly(params, match):
    with pytest.raises(FatalBackendError, match=match):
        LocalBackend(cfg(params=params))


def test_missing_model_dir_fails_clearly(tmp_path):
    b = LocalBackend(cfg(params={"model_dir": str(tmp_path / "nope")}))
    with pytest.raises(FatalBackendError, match="model.params.model_dir: not a directory"):
        b.load()


def test_embedded_weights_are_found():
    p = embedded_gguf()
    assert p.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and p.stat().st_size > 50_000_000


def test_a_conversion_killed_mid_write_leaves_no_cache(tmp_path, monkeypatch):
    import transformers

    class HalfWritten:
        config = type("C", (), {})()

        def to(self, dtype):
            return self

        def save_pretrained(self, path):
            os.makedirs(path)
            (Path(path) / "model.safetensors").write_bytes(b"partial")
            raise KeyboardInterrupt  # the user pressed ^C while the shard was being written

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: None)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: HalfWritten())
    dest = tmp_path / "models" / "x"
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(embedded_gguf(), dest)
    assert not dest.exists() and list((tmp_path / "models").iterdir()) == []


def test_cache_dir_is_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMSURVEY_CACHE_DIR", str(tmp_path))
    assert converted_dir(embedded_gguf(), "bfloat16").parent == tmp_path / "models"


@pytest.mark.parametrize("style", ["letters", "numbers", "text"])
def test_distribution_over_labels(backend, style):
    (r,) = backend.generate_sync([req(style=style)])
    assert r.error is None and r.text is None
    assert len(r.label_probs) == 4 and all(p >= 0 for p in r.label_probs)
    assert sum(r.label_probs) == pytest.approx(1.0, abs=1e-9)
    assert 0.0 <= r.missing_mass <= 1.0
    assert r.cost_usd == 0.0 and r.completion_tokens == 0 and r.prompt_tokens > 50


def test_logprob_answers_keep_the_top_tokens(backend):
    # raw_text of a logprob row is rendered from these (issue 9, row 10): what the model would say.
    (r,) = backend.generate_sync([req(style="letters")])
    assert r.top_tokens is not None and len(r.top_tokens) == 20
    lps = [lp for _, lp in r.top_tokens]
    assert lps == sorted(lps, reverse=True) and all(lp <= 0 for lp in lps)
    assert sum(np.exp(lps)) <= 1.0 + 1e-6
    letters = {t.strip() for t, _ in r.top_tokens}
    assert letters & {"A", "B", "C", "D"}


def test_text_labels_score_the_option_text(backend):
    # Full-sequence likelihood of each option text: even this tiny model knows Paris.
    (r,) = backend.generate_sync([req(style="text")])
    assert int(np.argmax(r.label_probs)) == 1


def test_same_request_same_result_alone_or_batched(backend):
    a = req()
    alone = backend.generate_sync([a])[0]
    batched = backend.generate_sync([req(q=Q2), a, req(cue=CUES[1], key="p1")])[1]
    assert alone.label_probs == batched.label_probs and alone.missing_mass == batched.missing_mass


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_chunks_bound_the_padded_size():
    # Hand-worked: lengths 3,3,5 fit 15 (3 x 5); a 4th of 5 would make 20 > 16.
    assert list(_chunks([0, 1, 2, 3, 4], [3, 3, 5, 5, 40], 16)) == [[0, 1, 2], [3], [4]]
    assert list(_chunks([], [], 16)) == []


def _group():
    # One persona, suffixes of different lengths (padding), labels scored by single tokens and
    # by multi-token sequences (text), a sampled answer: every path of a batched group.
    return [req(q=Q1), req(q=Q2, style="numbers"), req(q=Q1, style="text"),
            req(q=Q2, order=tuple(reversed(Q2.codes))), req(q=Q1, elicitation="both", seed=3, max_tokens=6)]


def test_batched_group_equals_each_request_alone_exactly(backend):
    # The padded batch of a persona's suffixes gives every request bit-for-bit what it gets
    # alone (batch of one, no padding), in bf16, with one worker or two.
    reqs = _group()
    alone = [backend.generate_sync([r])[0] for r in reqs]
    two = LocalBackend(cfg(params={"threads": 2, "dtype": "bfloat16"}))
    for together in (backend.generate_sync(reqs), two.generate_sync(reqs), two.generate_sync(reqs + [req(cue=CUES[1], key="p1")])[:5]):
        assert [r.error for r in together] == [None] * 5
        assert [r.label_probs for r in together] == [r.label_probs for r in alone]
        assert [r.missing_mass for r in together] == [r.missing_mass for r in alone]
        assert [r.text for r in together] == [r.text for r in alone]
    assert together[4].text and len({len(backend._prompt_ids(r)) for r in reqs}) > 2


def test_prefix_reuse_is_exact_in_float32(backend):
    # Same weights upcast to fp32: the batched reuse path computes the logits of a full pass.
    fp32 = LocalBackend(cfg(params={"model_dir": str(backend.model_dir()), "dtype": "float32"}))
    reqs = _group()[:4] + [req(q=Q2, cue=CUES[1], key="p1", order=tuple(reversed(Q2.codes)))]
    for x, y in zip(fp32.last_logits(reqs, reuse_prefix=True), fp32.last_logits(reqs, reuse_prefix=False)):
        np.testing.assert_allclose(x, y, atol=1e-3, rtol=1e-4)
    # The label distributions of the batched reuse path vs one full prompt per pass, no padding.
    batched = fp32.generate_sync(reqs)
    plain = [fp32.generate_sync([r], reuse_prefix=False)[0] for r in reqs]
    for r, p in zip(batched, plain):
        np.testing.assert_allclose(r.label_probs, p.label_probs, atol=1e-5)
        assert r.missing_mass == pytest.approx(p.missing_mass, abs=1e-5)


def test_prefix_reuse_matches_the_no_reuse_path_in_bf16(backend):
    reqs = [req(q=q, cue=c, key=f"p{i}") for i, c in enumerate(CUES) for q in (Q1, Q2)]
    for x, y in zip(backend.last_logits(reqs, reuse_prefix=True), backend.last_logits(reqs, reuse_prefix=False)):
        # With eager attention the split prompt gives the same bf16 logits here (max |diff|
        # 0.0 measured; SDPA gave 0.66). The tolerance leaves room for other CPUs' kernels.
        np.testing.assert_allclose(x, y, atol=1.0)
        assert 0.5 * np.abs(_softmax(x) - _softmax(y)).sum() < 0.1
    res = backend.generate_sync(reqs)
    assert all(r.extra["prefix_tokens_reused"] > 20 for r in res)
    plain = backend.generate_sync(reqs, reuse_prefix=False)
    assert all(r.extra["prefix_tokens_reused"] == 0 for r in plain)
    for r, p in zip(res, plain):
        np.testing.assert_allclose(r.label_probs, p.label_probs, atol=0.05)


def test_persona_in_user_message_reuses_the_common_prefix(backend):
    p = PromptConfig(persona_role="user")
    reqs = [req(q=q, prompt=p) for q in (Q1, Q2)]
    res = backend.generate_sync(reqs)
    assert all(r.extra["prefix_tokens_reused"] > 20 for r in res)
    for r, plain in zip(res, backend.generate_sync(reqs, reuse_prefix=False)):
        np.testing.assert_allclose(r.label_probs, plain.label_probs, atol=0.05)


def test_dtype_auto_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch):
    from simsurvey.respondents import local

    monkeypatch.setattr(local, "cpu_supports_bf16", lambda: True)
    b = LocalBackend(cfg())
    assert (b.dtype, b.identity) == ("bfloat16", {"dtype": "bfloat16", "label_scoring": 2})
    monkeypatch.setattr(local, "cpu_supports_bf16", lambda: False)
    assert LocalBackend(cfg()).identity == {"dtype": "float32", "label_scoring": 2}
    assert LocalBackend(cfg(params={"dtype": "auto"})).dtype == "float32"
    assert LocalBackend(cfg(params={"dtype": "bfloat16"})).dtype == "bfloat16"  # an explicit dtype is kept
    assert resolve_dtype("float32") == "float32"


CPUINFO_X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 amx_tile
bogomips\t: 4000.00
"""
CPUINFO_ARM = """processor\t: 0
Features\t: fp asimd evtstrm aes bf16 i8mm
"""


def test_cpuinfo_flags_are_read_on_x86_and_arm(tmp_path):
    (tmp_path / "x86").write_text(CPUINFO_X86)
    (tmp_path / "arm").write_text(CPUINFO_ARM)
    assert {"avx2", "avx512_bf16", "amx_tile"} <= _cpuinfo_flags(str(tmp_path / "x86"))
    assert "bf16" in _cpuinfo_flags(str(tmp_path / "arm"))
    assert _cpuinfo_flags(str(tmp_path / "missing")) == set()


def test_bf16_detection_asks_torch_first_then_proc_cpuinfo(monkeypatch):
    import torch

    from simsurvey.respondents import local

    def broken():
        raise RuntimeError("cpuinfo failed")

    cases = [  # (torch's answer, /proc/cpuinfo flags, expected)
        ({"avx2": True, "avx512_f": True, "avx512_bf16": False}, {"avx512_bf16"}, False),  # AVX-512 alone is not bf16
        ({"avx2": True, "amx_bf16": True}, set(), True),
        ({"architecture": "arm64", "bf16": True}, set(), True),
        (broken, {"avx2", "avx512_bf16"}, True),
        (broken, {"avx2"}, False),
    ]
    try:
        for caps, flags, expected in cases:
            cpu_supports_bf16.cache_clear()
            monkeypatch.setattr(torch.cpu, "get_capabilities", caps if callable(caps) else (lambda c=caps: c))
            monkeypatch.setattr(local, "_cpuinfo_flags", lambda path="/proc/cpuinfo", f=flags: f)
            assert cpu_supports_bf16() is expected, (caps, flags)
    finally:
        monkeypatch.undo()
        cpu_supports_bf16.cache_clear()
    # On this machine: torch's answer agrees with the kernel's flags (an independent reading).
    flags = _cpuinfo_flags()
    if flags and "avx2" in flags:  # x86 Linux
        assert cpu_supports_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_each_dtype_loads_its_own_converted_copy(backend, fp32):
    import torch

    gguf = embedded_gguf()
    assert converted_dir(gguf, "bfloat16") != converted_dir(gguf, "float32")
    assert backend.model_dir() == converted_dir(gguf, "bfloat16") and fp32.model_dir() == converted_dir(gguf, "float32")
    assert next(backend._model.parameters()).dtype == torch.bfloat16
    assert next(fp32._model.parameters()).dtype == torch.float32
    # Same weights, two precisions: close answers, not the same bits.
    a, b = backend.generate_sync([req()])[0], fp32.generate_sync([req()])[0]
    assert 0.5 * np.abs(np.array(a.label_probs) - np.array(b.label_probs)).sum() < 0.1


Q3 = Question(
    id="news", text="How often do you follow the news?", kind="ordinal",
    options=(Option(code="d", label="Every day"), Option(code="w", label="Every week"),
             Option(code="r", label="Rarely"), Option(code="n", label="Never")),
)


def _conversation(turns: int, *, cue=CUES[0], key="p0", elicitations=("logprobs",)) -> list:
    """Turn k's request: the persona, each earlier question with an answer, then question k
    (the shape of a sequential questionnaire's requests)."""
    out, history = [], []
    for k in range(turns):
        r = req(q=(Q1, Q2, Q3)[k % 3], cue=cue, key=key, elicitation=elicitations[k % len(elicitations)], seed=k)
        out.append(dataclasses.replace(r, messages=(r.messages[0], *history, *r.messages[1:])))
        history += [r.messages[1], {"role": "assistant", "content": ("B", "I would say A.", "C")[k % 3]}]
    return out


def _turn_by_turn(b: LocalBackend, turns: list) -> list:
    return [b.generate_sync([t])[0] for t in turns]


def test_conversation_turns_reuse_the_kv_cache_bit_for_bit_in_bf16(backend):
    # Turn k encodes only the answer and question k on the stored KV of turn k-1, and gets the
    # bits it gets without the conversation cache (persona prefix only). A sampled turn in the
    # middle must leave the stored KV as it was (sampling extends a cache of its own).
    turns = _conversation(3, elicitations=("logprobs", "both"))
    backend.clear_conversation_cache()
    cached = _turn_by_turn(backend, turns)
    off = LocalBackend(cfg(params={"dtype": "bfloat16", "conversation_cache_tokens": 0}))
    plain = _turn_by_turn(off, turns)
    persona = plain[0].extra["prefix_tokens_reused"]
    assert [r.extra["prefix_tokens_reused"] for r in plain] == [persona] * 3
    reused = [r.extra["prefix_tokens_reused"] for r in cached]
    assert reused[0] == persona
    assert reused[1:] == [len(backend._prompt_ids(t)) for t in turns[:-1]]  # all of the previous prompt
    assert [r.error for r in cached] == [None] * 3
    assert [r.label_probs for r in cached] == [r.label_probs for r in plain]
    assert [r.missing_mass for r in cached] == [r.missing_mass for r in plain]
    assert [r.text for r in cached] == [r.text for r in plain] and cached[1].text
    # Asked again (e.g. a retried turn): served from its own stored prompt, still the same bits.
    assert backend.generate_sync([turns[2]])[0].label_probs == plain[2].label_probs


def test_conversation_cache_in_float32_matches_within_rounding(fp32):
    turns = _conversation(3) + _conversation(2, cue=CUES[1], key="p1")
    turns = [turns[0], turns[3], turns[1], turns[4], turns[2]]  # two conversations interleaved
    fp32.clear_conversation_cache()
    cached = _turn_by_turn(fp32, turns)
    assert [r.extra["prefix_tokens_reused"] for r in cached][2:] == [len(fp32._prompt_ids(turns[i])) for i in (0, 1, 2)]
    plain = [fp32.generate_sync([t], reuse_prefix=False)[0] for t in turns]
    for r, p in zip(cached, plain):
        np.testing.assert_allclose(r.label_probs, p.label_probs, atol=1e-5)


def test_conversation_cache_is_a_bounded_lru_of_clones():
    import torch

    b = LocalBackend(cfg(params={"conversation_cache_tokens": 10}))
    batch = torch.zeros((3, 2, 8, 4))
    kv = [(batch[1:2, :, :4], batch[1:2, :, :4])]
    b._remember("a", [1, 2, 3, 4], kv)
    b._remember("b", [5, 6, 7, 8], kv)
    assert kv[0][0]._base is not None and all(t._base is None for t in b._conv["a"][1][0])  # not a view of the batch
    b._conv.move_to_end("a")  # a was used since: b is the least recently used
    b._remember("c", [9, 9, 9], kv)
    assert list(b._conv) == ["a", "c"] and b._conv_tokens == 7
    b._remember("a", list(range(11)), kv)  # longer than the whole budget: not kept, nor its old entry
    assert list(b._conv) == ["c"] and b._conv_tokens == 3
    b._remember("c", [1, 2], kv)  # replaced, not added
    assert b._conv_tokens == 2
    off = LocalBackend(cfg(params={"conversation_cache_tokens": 0}))
    assert off._to_remember([req()]) == {}


def test_common_prefix():
    assert _common_prefix([1, 2, 3], [1, 2, 4], 10) == 2
    assert _common_prefix([1, 2, 3], [1, 2, 3, 4], 3) == 3
    assert _common_prefix([1, 2, 3], [1, 2, 3], 2) == 2
    assert _common_prefix([], [1], 5) == 0


def test_seeded_sampling_is_reproducible(backend):
    reqs = [req(elicitation="both", seed=s, max_tokens=8) for s in range(4)]
    a = backend.generate_sync(reqs)
    b = backend.generate_sync(list(reversed(reqs)))[::-1]
    assert [r.text for r in a] == [r.text for r in b]
    assert len({r.text for r in a}) > 1  # different seeds, temperature 1: not all the same text
    assert all(r.label_probs is not None and 0 < r.completion_tokens <= 8 for r in a)


def test_greedy_sampling_ignores_the_seed(backend):
    texts = {backend.generate_sync([req(elicitation="sample", seed=s, temperature=0.0, max_tokens=6)])[0].text for s in range(2)}
    assert len(texts) == 1 and texts.pop()


def test_generate_runs_off_the_event_loop(backend):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        res = await backend.generate([req(q=q, cue=c) for c in CUES for q in (Q1, Q2)])
        t.cancel()
        return res, ticks

    res, ticks = asyncio.run(main())
    assert len(res) == 4 and ticks > 5


def test_a_pass_raises_no_deprecation_warning(backend):
    # transformers 5.24 renamed `past_key_values` to `cache` (the old name warns on every call
    # and goes in 5.40): a FutureWarning raised as an error here became the request's error.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = backend.generate_sync([req(elicitation="both", max_tokens=3), req(style="text")])
    assert [r.error for r in res] == [None, None]


def test_a_transformers_without_the_cache_argument_is_refused(monkeypatch, tmp_path):
    # Older releases would take `cache=` into **kwargs and ignore it: every suffix would run
    # without its persona prefix, silently. The load refuses them instead.
    import torch
    import transformers

    class OldModel(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None, **kwargs):
            raise AssertionError("not called")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: OldModel())
    with pytest.raises(FatalBackendError, match=r"needs transformers>=5\.24"):
        _load(str(tmp_path), "float32")


def _layers(backend: LocalBackend):
    return backend._model.model.layers


def test_a_cancelled_call_stops_at_the_next_layer_and_frees_the_backend(backend, monkeypatch):
    # The first decoder layer blocks until the call is cancelled (as the runner's timeout or
    # Ctrl-C does); the abandoned thread must then stop before the next layer, run no other
    # pass, and leave the backend usable at once. The old code ran every pass of the batch.
    reqs = [req(cue=f"I am person number {i}.", key=f"p{i}") for i in range(4)]  # 4 prefix passes + suffixes
    expected = backend.generate_sync(reqs)
    entered, release = threading.Event(), threading.Event()
    first, second = [], []
    layer0, layer1 = _layers(backend)[0].forward, _layers(backend)[1].forward

    def blocking_layer0(*a, **k):
        first.append(1)
        entered.set()
        release.wait(60)
        return layer0(*a, **k)

    def counting_layer1(*a, **k):
        second.append(1)
        return layer1(*a, **k)

    monkeypatch.setattr(_layers(backend)[0], "forward", blocking_layer0)
    monkeypatch.setattr(_layers(backend)[1], "forward", counting_layer1)

    async def main():
        task = asyncio.create_task(backend.generate(reqs))
        assert await asyncio.to_thread(entered.wait, 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        # asyncio.run() returns only once its executor's threads have finished (as after ^C).

    asyncio.run(main())
    assert (len(first), len(second)) == (1, 0)
    assert backend._lock.acquire(blocking=False)
    backend._lock.release()
    monkeypatch.undo()
    again = backend.generate_sync(reqs)
    assert [r.label_probs for r in again] == [r.label_probs for r in expected]


def test_a_set_cancel_flag_stops_generate_sync(backend):
    flag = threading.Event()
    flag.set()
    with pytest.raises(Cancelled):
        backend.generate_sync([req()], cancel=flag)
    assert backend.generate_sync([req()], cancel=threading.Event())[0].error is None


def test_timeouts_in_the_runner_stop_the_work_and_the_rows_keep_the_error(backend, monkeypatch, tmp_path):
    # Every pass is slower (1 s in its first layer) than the runner's timeout for the batch
    # (4 requests x 0.05 s). Each attempt may start one pass, which stops at the next layer;
    # the old code ran both passes of every attempt (4 layer-0 calls) and discarded them.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
    from runner_data import make_instrument, make_personas, make_trials

    from simsurvey.respondents.config import RunnerConfig
    from simsurvey.runner import administer

    calls = []
    layer0 = _layers(backend)[0].forward

    def slow_layer0(*a, **k):
        calls.append(1)
        time.sleep(1.0)
        return layer0(*a, **k)

    monkeypatch.setattr(_layers(backend)[0], "forward", slow_layer0)
    inst = make_instrument()
    trials = make_trials(inst, 1, no_persona=False)
    runner = RunnerConfig(concurrency=1, max_retries=1, timeout_s=0.05, backoff_base_s=0.01, backoff_max_s=0.01, cache=False)
    res = administer(trials, make_personas(1), inst, model=cfg(), prompt=PromptConfig(), runner=runner,
                     run_dir=tmp_path / "run", seed=1, progress=False, backend=backend)
    assert len(res.frame) == 4
    assert res.frame["error"].str.contains("timeout").all()
    assert len(calls) <= 2  # at most one pass started per attempt


CTRL_C_SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {support!r})
from runner_data import make_instrument, make_personas, make_trials
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.local import LocalBackend
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.runner import administer

backend = LocalBackend(ModelConfig(backend="local", name="m", params={{"threads": 1}}))
backend.load()
layer0 = backend._model.model.layers[0]
forward = layer0.forward

def slow(*a, **k):
    print("layer0", flush=True)
    time.sleep(1.0)
    return forward(*a, **k)

layer0.forward = slow
inst = make_instrument()
administer(make_trials(inst, 1, no_persona=False), make_personas(1), inst, model=backend.cfg, prompt=PromptConfig(),
           runner=RunnerConfig(concurrency=1, cache=False, timeout_s=600), run_dir=Path(sys.argv[1]), seed=1,
           progress=False, backend=backend)
print("finished", flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_local_backend_at_once(tmp_path):
    # ^C during the first of the two passes of a persona's batch (its prefix, then its
    # questions): the process exits after the layer it was in. The old code ran the second pass
    # first (asyncio.run waits for its worker threads), printing "layer0" again.
    import signal

    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT.format(support=str(Path(__file__).resolve().parents[1] / "support")))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first == "layer0\n", proc.stderr.read()[-2000:]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert "finished" not in out and out.count("layer0") == 0, (out, err[-2000:])
    assert proc.returncode != 0


@pytest.mark.slow
def test_loads_offline_in_a_fresh_process():
    code = textwrap.dedent("""
        from simsurvey.respondents.config import ModelConfig
        from simsurvey.respondents.local import LocalBackend
        from simsurvey.respondents.base import Request
        b = LocalBackend(ModelConfig(backend="local", name="m", params={"threads": 1}))
        b.load()
        msgs = ({"role": "system", "content": "You are Ann."}, {"role": "user", "content": "Yes or no? A) Yes B) No"})
        (r,) = b.generate_sync([Request(messages=msgs, labels=("A", "B"), elicitation="both", max_tokens=2, seed=1)])
        assert r.error is None, r.error
        print("ok")
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
    # transformers' deprecation notices go to its logger once per process: none here.
    assert "deprecated" not in out.stderr.lower() and "warning" not in out.stderr.lower(), out.stderr[-2000:]


def test_a_label_does_not_hold_the_mass_of_the_labels_that_continue_it():
    # Digits one token each (as SmolLM2 tokenizes them): "10" is "1" then "0", so the next-token
    # probability of "1" (0.5) holds P("10") = 0.5 * 0.6 = 0.3 too. Hand-worked: "1" keeps 0.2.
    import torch

    vocab = {str(d): d for d in range(10)} | {" ": 10}

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [vocab[c] for c in text]}

    def logits(p):
        full = torch.full((12,), 1e-9)
        for k, v in p.items():
            full[k] = v
        return torch.log(full / full.sum())

    b = LocalBackend.__new__(LocalBackend)
    b._tok, b._label_ids = Tok(), {}
    b._cache = lambda kv: None
    after_one = logits({0: 0.6, 11: 0.4})  # after "1": "0" (-> "10") or end of answer
    b._forward = lambda seq, cache, keep=1: torch.stack([after_one if seq == [1] else logits({11: 1.0})])
    last = logits({1: 0.5, 2: 0.2, 0: 0.1, 11: 0.2})
    probs, missing = b._label_distribution([str(v) for v in range(11)], last, [])
    mass = {"0": 0.1, "1": 0.2, "2": 0.2, "10": 0.3}
    total = sum(mass.values())
    assert probs == pytest.approx(tuple(mass.get(str(v), 0.0) / total for v in range(11)), abs=1e-6)
    assert missing == pytest.approx(1 - total, abs=1e-6)
