"""Local backend throughput, with and without the shared persona KV prefix, side by side.

    python benchmarks/bench_local.py                    # 4 personas x 8 questions, default workers
    python benchmarks/bench_local.py --threads 2 --repeat 3
    python benchmarks/bench_local.py --personas 2 --dtype bfloat16 float32   # the dtypes side by side
    python benchmarks/bench_local.py --turns 10 --dtype auto    # a 10-turn conversation, KV cache on/off

``--dtype`` is ``model.params.dtype`` (several: each is measured in the same process, one after
the other, on the same requests; default ``auto``). ``--turns N`` measures a sequential
conversation instead: turn k's request is the persona, the k-1 earlier questions each with an
answer, then question k, sent one turn per ``generate`` call (as the runner does), with the
conversation KV cache (turn k encodes only its new tokens) and without it (the persona prefix
only: ``conversation_cache_tokens=0``), alternating, best of ``--repeat``.

``--threads`` is ``model.params.threads``: worker threads, each running its own forward passes
with one torch thread (default: the cores this process may use).

Prompts are ~220 tokens: a backstory-style persona (system message), a question and five
lettered options; logprobs elicitation. "no prefix" runs each full prompt (still batched and
padded with the other prompts). Both paths run the same requests in one process,
alternating, after a warm-up; the best of ``--repeat`` rounds is reported (the machine is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

from simsurvey.instruments.models import Option, Question
from simsurvey.respondents.config import ModelConfig
from simsurvey.respondents.local import LocalBackend
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.prompts import render_request

SCALE = ("Strongly agree", "Somewhat agree", "Neither agree nor disagree", "Somewhat disagree", "Strongly disagree")
STATEMENTS = (
    "The federal government should do more to reduce income inequality.",
    "Immigration is good for the economy of the United States.",
    "Stricter gun laws would reduce violent crime in my community.",
    "Climate change is a serious threat that requires immediate action.",
    "Public colleges and universities should be tuition free.",
    "The minimum wage should be raised to fifteen dollars an hour.",
    "Local police treat people of all races equally.",
    "Free trade agreements have helped workers in my state.",
)
PERSONAS = (
    ("Maria Lopez", 34, "female", "a registered nurse", "Columbus, Ohio", "some college", "Catholic", "two children"),
    ("Tom Becker", 71, "male", "a retired farmer", "Ames, Iowa", "a high school diploma", "Lutheran", "four grandchildren"),
    ("Aisha Johnson", 27, "female", "a software tester", "Atlanta, Georgia", "a bachelor's degree", "Baptist", "no children"),
    ("Kevin Nguyen", 49, "male", "a small business owner", "San Jose, California", "a master's degree", "Buddhist", "one son"),
)


def persona_cue(name, age, sex, job, city, edu, religion, family) -> str:
    return (
        f"My name is {name}. I am a {age}-year-old {sex} living in {city}. I work as {job} and I have "
        f"{edu}. I was raised {religion} and still go to services now and then. I have {family}, "
        "and most weekends I spend time with family and neighbors. I follow the news a few times a "
        "week, mostly on local television and a couple of websites. I vote in most elections, "
        "and I care most about the cost of living, health care, and the schools in my area. "
        "My friends would describe me as practical and plain-spoken."
    )


def build_requests(cfg: ModelConfig, n_personas: int) -> list:
    questions = [
        Question(id=f"q{i}", text=s, kind="ordinal",
                 options=tuple(Option(code=str(k), label=lbl) for k, lbl in enumerate(SCALE)))
        for i, s in enumerate(STATEMENTS)
    ]
    reqs = []
    for p in range(n_personas):
        cue = persona_cue(*PERSONAS[p % len(PERSONAS)])
        for q in questions:
            reqs.append(render_request(cue=cue, question=q, option_order=q.codes, label_style="letters",
                                       prompt=PromptConfig(), model=cfg, seed=0, prefix_key=f"p{p}", context={}))
    return reqs


def conversation(cfg: ModelConfig, turns: int) -> list:
    """The requests of one persona's sequential questionnaire, turn by turn."""
    questions = build_requests(cfg, 1)
    out, history = [], []
    for k in range(turns):
        r = questions[k % len(questions)]
        out.append(dataclasses.replace(r, messages=(r.messages[0], *history, *r.messages[1:])))
        history += [r.messages[1], {"role": "assistant", "content": "B"}]
    return out


def bench_conversation(args: argparse.Namespace, params: dict) -> None:
    cfg = ModelConfig(backend="local", name="SmolLM2-135M-Instruct", elicitation="logprobs", params=params)
    on = LocalBackend(cfg)
    off = LocalBackend(cfg.model_copy(update={"params": {**params, "conversation_cache_tokens": 0}}))
    on.load()
    off.load()
    turns = conversation(cfg, args.turns)
    on.generate_sync(turns[:1])  # warm-up
    times: dict[str, list[float]] = {"cache": [], "no cache": []}
    results = {}
    for _ in range(args.repeat):
        for name, b in (("cache", on), ("no cache", off)):
            b.clear_conversation_cache()
            t = time.perf_counter()
            results[name] = [b.generate_sync([r])[0] for r in turns]
            times[name].append(time.perf_counter() - t)
    same = all(a.label_probs == b.label_probs for a, b in zip(results["cache"], results["no cache"]))
    diff = max(float(np.max(np.abs(np.array(a.label_probs) - np.array(b.label_probs))))
               for a, b in zip(results["cache"], results["no cache"]))
    print(f"dtype {on.dtype}; workers {on.threads}; load average {os.getloadavg()[0]:.1f}")
    print(f"{args.turns} turns, prompt tokens {len(on._prompt_ids(turns[0]))}..{len(on._prompt_ids(turns[-1]))}; "
          f"tokens encoded with the cache {sum(r.prompt_tokens - r.extra['prefix_tokens_reused'] for r in results['cache'])}, "
          f"without {sum(r.prompt_tokens - r.extra['prefix_tokens_reused'] for r in results['no cache'])}")
    for name, ts in times.items():
        print(f"{name:>8}: best {min(ts):.2f} s (rounds: {', '.join(f'{t:.2f}' for t in ts)})")
    print(f"ratio {min(times['no cache']) / min(times['cache']):.2f}x; label probs bit-identical: {same} (max |diff| {diff:.2e})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", nargs="+", default=["auto"], choices=["auto", "bfloat16", "float32"])
    ap.add_argument("--turns", type=int, default=0, help="measure a conversation of this many turns instead")
    args = ap.parse_args()
    base = {} if args.threads is None else {"threads": args.threads}
    for dtype in args.dtype:
        params = {**base, "dtype": dtype}
        if args.turns:
            bench_conversation(args, params)
        else:
            bench_prefix(args, params)


def bench_prefix(args: argparse.Namespace, params: dict) -> None:
    cfg = ModelConfig(backend="local", name="SmolLM2-135M-Instruct", elicitation="logprobs", params=params)
    backend = LocalBackend(cfg)
    t0 = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - t0
    reqs = build_requests(cfg, args.personas)
    ids = [backend._prompt_ids(r) for r in reqs]
    backend.generate_sync(reqs[:2])  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeat):
        for reuse in (True, False):
            backend.clear_conversation_cache()  # each round from cold: the same requests again would hit it
            t = time.perf_counter()
            res = backend.generate_sync(reqs, reuse_prefix=reuse)
            times[reuse].append(time.perf_counter() - t)
            assert all(r.error is None for r in res)
    backend.clear_conversation_cache()
    with_p = backend.generate_sync(reqs)
    without = backend.generate_sync(reqs, reuse_prefix=False)
    diff = max(float(np.max(np.abs(np.array(a.label_probs) - np.array(b.label_probs)))) for a, b in zip(with_p, without))
    n = len(reqs)
    print(f"dtype {backend.dtype} (asked: {params['dtype']}); load {load_s:.1f} s; workers {backend.threads} x 1 torch thread; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{n} prompts ({args.personas} personas x 8 questions), tokens/prompt mean {np.mean([len(i) for i in ids]):.0f} "
          f"(min {min(len(i) for i in ids)}, max {max(len(i) for i in ids)}); prefix reused {with_p[0].extra['prefix_tokens_reused']} tokens")
    for reuse in (True, False):
        best = min(times[reuse])
        print(f"{'with prefix' if reuse else 'no prefix  '}: best {best:.2f} s = {n / best:.1f} prompts/s "
              f"(rounds: {', '.join(f'{t:.2f}' for t in times[reuse])})")
    print(f"max |label prob difference| with vs without prefix: {diff:.4f}")


if __name__ == "__main__":
    main()
