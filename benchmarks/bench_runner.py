"""Runner throughput against a fake OpenAI-compatible server (100 ms latency, separate process).

Compares, in the same run and on the same ~2,000 rendered requests:

* ``aiohttp``       — a plain aiohttp client: N workers POSTing the bodies (the ceiling);
* ``runner/http``   — ``administer()`` end to end (render, call, parse, rows, parquet parts),
                      cache off, litellm backend with the direct HTTP transport (the default
                      for ``openai/<model>`` + ``api_base``);
* ``runner/litellm``— the same with ``transport: litellm`` (``litellm.acompletion``);
* ``litellm``       — plain ``litellm.acompletion`` + a semaphore (litellm's own ceiling).

Reports requests/s (median of ``--reps``) and client CPU ms per request. Usage::

    python benchmarks/bench_runner.py --reps 3            # ~1-2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["CI"] = "true"  # no progress bar

import aiohttp  # noqa: E402
import pandas as pd  # noqa: E402

from simsurvey.instruments.models import Instrument, Option, Question  # noqa: E402
from simsurvey.respondents.config import ModelConfig, RunnerConfig  # noqa: E402
from simsurvey.respondents.prompt_config import PromptConfig  # noqa: E402
from simsurvey.respondents.prompts import render_request  # noqa: E402
from simsurvey.runner import administer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def build(n_personas: int, n_questions: int) -> tuple[Instrument, pd.DataFrame, pd.DataFrame]:
    """An instrument of 5-option questions, personas, and 2 conditions per persona x question."""
    labels = ["Strongly agree", "Agree", "Neither", "Disagree", "Strongly disagree"]
    qs = tuple(
        Question(id=f"q{i}", text=f"Statement {i}: the government should do more about issue {i}.", kind="ordinal",
                 options=tuple(Option(code=str(k + 1), label=lab) for k, lab in enumerate(labels)))
        for i in range(n_questions)
    )
    inst = Instrument(id="bench", title="bench", questions=qs)
    personas = pd.DataFrame({
        "persona_id": range(n_personas),
        "cue": [f"You are a {30 + i % 40}-year-old person from state {i % 50}, persona {i}." for i in range(n_personas)],
    })
    rows = []
    for pid in range(n_personas):
        for q in qs:
            for mode, style in (("as_is", "letters"), ("reversed", "numbers")):
                order = list(q.codes) if mode == "as_is" else list(reversed(q.codes))
                rows.append(dict(persona_id=pid, question_id=q.id, condition_id=f"{mode}|{style}", replicate=0,
                                 order_mode=mode, label_style=style, neutral_option=False, cue_style="attributes",
                                 option_order=order))
    trials = pd.DataFrame(rows)
    trials["persona_id"] = trials["persona_id"].astype("Int64")
    return inst, personas, trials


def bodies(inst, personas, trials, model: ModelConfig) -> list[bytes]:
    out = []
    for t in trials.itertuples():
        req = render_request(cue=personas.cue[int(t.persona_id)], question=inst.question(t.question_id),
                             option_order=t.option_order, label_style=t.label_style, prompt=PromptConfig(),
                             model=model, seed=int(t.Index), prefix_key=None, context={})
        out.append(json.dumps({"model": "fake", "messages": list(req.messages), "logprobs": True,
                               "top_logprobs": 20, "max_tokens": 1, "seed": int(t.Index)}).encode())
    return out


async def plain_aiohttp(url: str, payloads: list[bytes], concurrency: int) -> None:
    it = iter(payloads)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def worker() -> None:
            for p in it:
                async with s.post(url + "/chat/completions", data=p, headers={"Content-Type": "application/json"}) as r:
                    json.loads(await r.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def plain_litellm(url: str, payloads: list[bytes], concurrency: int) -> None:
    import litellm

    sem = asyncio.Semaphore(concurrency)

    async def one(p: bytes) -> None:
        body = json.loads(p)
        async with sem:
            await litellm.acompletion(model="openai/fake", api_base=url, api_key="none", messages=body["messages"],
                                      logprobs=True, top_logprobs=20, max_tokens=1, seed=body["seed"], max_retries=0)

    await asyncio.gather(*(one(p) for p in payloads))


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of fn()."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=100)
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--clients", nargs="+", default=["aiohttp", "runner/http", "runner/litellm", "litellm"])
    args = ap.parse_args()

    server = subprocess.Popen([sys.executable, str(ROOT / "tests/support/fake_openai.py"), "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}/v1"
        inst, personas, trials = build(args.personas, args.questions)
        n = len(trials)
        model_http = ModelConfig(backend="litellm", name="openai/fake", api_base=url, elicitation="logprobs", transport="http")
        model_lite = model_http.model_copy(update={"transport": "litellm"})
        payloads = bodies(inst, personas, trials, model_http)
        if any("litellm" in c for c in args.clients):
            import litellm  # noqa: F401  (import cost outside the timings)

        results: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for rep in range(args.reps):
            for c in args.concurrency:
                runner_cfg = RunnerConfig(concurrency=c, cache=False)
                for client in args.clients:
                    with tempfile.TemporaryDirectory() as tmp:
                        if client == "aiohttp":
                            fn = lambda: asyncio.run(plain_aiohttp(url, payloads, c))  # noqa: E731
                        elif client == "litellm":
                            fn = lambda: asyncio.run(plain_litellm(url, payloads, c))  # noqa: E731
                        else:
                            m = model_http if client == "runner/http" else model_lite

                            def fn(m=m, tmp=tmp):
                                res = administer(trials, personas, inst, model=m, prompt=PromptConfig(), runner=runner_cfg,
                                                 run_dir=Path(tmp), seed=1, progress=False)
                                assert len(res.frame) == n and res.stats["errors"] == 0, res.stats
                        wall, cpu = timed(fn)
                    results.setdefault((client, c), []).append((wall, cpu))
                    print(f"rep {rep} c={c:<4} {client:<15} {n / wall:8.0f} req/s  {1000 * cpu / n:5.2f} CPU ms/req", flush=True)

        print(f"\n{n} requests, server latency {args.latency * 1000:.0f} ms, median of {args.reps}\n")
        cs = args.concurrency
        print("| client | " + " | ".join(f"c={c} req/s" for c in cs) + " | " + " | ".join(f"c={c} CPU ms/req" for c in cs)
              + " | req/s vs aiohttp | CPU vs aiohttp |")
        print("|---|" + "---|" * (2 * len(cs) + 2))

        def med(client: str, c: int, what: int) -> float:
            return statistics.median((n / v[0]) if what == 0 else (1000 * v[1] / n) for v in results[(client, c)])

        for client in args.clients:
            rates = [med(client, c, 0) for c in cs]
            cpus = [med(client, c, 1) for c in cs]
            if "aiohttp" in args.clients:
                ratio = " / ".join(f"{r / med('aiohttp', c, 0):.2f}" for r, c in zip(rates, cs))
                cpu_ratio = " / ".join(f"{x / med('aiohttp', c, 1):.2f}" for x, c in zip(cpus, cs))
            else:
                ratio = cpu_ratio = "-"
            print(f"| {client} | " + " | ".join(f"{r:,.0f}" for r in rates) + " | "
                  + " | ".join(f"{x:.2f}" for x in cpus) + f" | {ratio} | {cpu_ratio} |")
        # Ratios per repetition (each repetition runs the clients back to back, so a ratio within
        # one repetition is the least noisy figure on a shared machine).
        if "aiohttp" in args.clients:
            for client in args.clients:
                if client == "aiohttp":
                    continue
                for c in cs:
                    # (req/s ratio = aiohttp's wall / the client's, CPU ratio = the client's CPU / aiohttp's)
                    per = [(b[0] / w[0], w[1] / b[1]) for w, b in zip(results[(client, c)], results[("aiohttp", c)])]
                    print(f"{client} c={c}: req/s ratio per rep " + ", ".join(f"{p[0]:.2f}" for p in per)
                          + f" (median {statistics.median(p[0] for p in per):.2f}); CPU ratio per rep "
                          + ", ".join(f"{p[1]:.2f}" for p in per) + f" (median {statistics.median(p[1] for p in per):.2f})")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
