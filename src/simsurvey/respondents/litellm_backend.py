"""The hosted / served model backend: litellm for any provider, a direct HTTP path for servers.

Two transports behind one :class:`LiteLLMBackend`:

* ``litellm`` — ``litellm.acompletion``: any litellm model string (``openai/gpt-4o-mini``,
  ``anthropic/...``, ``ollama/...``, or ``openai/<model>`` + ``api_base`` for vLLM / llama.cpp
  server / Ollama's OpenAI endpoint).
* ``http`` — one aiohttp POST to ``{api_base}/chat/completions`` of an OpenAI-compatible
  server. litellm spends ~3 ms of client CPU per call (it tops out near 300 req/s on two cores,
  see BENCHMARKS.md, "Runner throughput"); this path spends ~0.3 ms. ``transport: auto`` (default)
  uses it for ``openai/<model>`` with an ``api_base`` and litellm for everything else.

Elicitation:

* ``logprobs`` — ``logprobs=True, top_logprobs=cfg.top_logprobs, max_tokens=1``; the first
  generated position's top logprobs are read and, for each displayed label, the probability of
  the tokens whose text (stripped of spaces and a trailing ``.``, ``)`` or ``:``) equals the label
  is summed ("A", " A", "A."). For text labels (``label_style: text``) a token counts for a
  label when the label starts with it (case-insensitive, at least 2 characters) — an
  approximation of "the first token of the option text"; a token that starts several labels is
  ambiguous and counted as missing mass. The sums are renormalized over the labels and the mass
  outside them (including the tail beyond the top-k) is ``missing_mass``.
* ``sample`` — the generated text at ``cfg.temperature``; ``both`` — one call giving both.

Errors: 429 / 408 / 409 / 5xx / timeouts / a dropped connection / a malformed body raise
:class:`~simsurvey.respondents.base.RetryableError` (with ``retry_after`` from a Retry-After
header); connection refused or an unknown host raise
:class:`~simsurvey.respondents.base.UnreachableError` (not retried: nothing is listening); 401 /
403 / 404 and an invalid URL raise :class:`~simsurvey.respondents.base.FatalBackendError`; any
other 4xx (400 from a content filter, a prompt longer than the context window, 413, 422) is that
request's error (``Result(error=...)``), not the run's. API keys are read from the environment
variable named by ``cfg.api_key_env`` and never stored in results.

Cost: litellm's own figure for the litellm transport (``response._hidden_params
["response_cost"]``, None for models it does not price: ``litellm.completion_cost`` is never
called, it raises and prints banners for those); for the HTTP transport, the usage times the
prices in litellm's bundled cost map, looked up once per model (:meth:`LiteLLMBackend.warm_up`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from simsurvey.errors import UserError
from simsurvey.respondents.base import (
    FatalBackendError,
    Request,
    Result,
    RetryableError,
    UnreachableError,
)
from simsurvey.respondents.config import ModelConfig

_FATAL_STATUS = {401, 403, 404}
_RETRY_STATUS = {408, 409, 429}
_STRIP_TRAILING = ".):"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or key access: litellm gives objects, the HTTP path gives dicts."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def label_probs(
    top: Sequence[tuple[str, float]], labels: Sequence[str]
) -> tuple[tuple[float, ...] | None, float]:
    """Probabilities of the displayed labels from one position's top logprobs.

    Args:
        top: ``(token, logprob)`` pairs of the first generated position.
        labels: Labels as displayed, in display order.

    Returns:
        ``(probs, missing_mass)``: probs renormalized over the labels (None when no label
        token is among ``top``), and the probability mass that fell outside the labels.
    """
    index = {lab: i for i, lab in enumerate(labels)}
    textual = any(len(lab) > 2 for lab in labels)
    folded = [lab.lower() for lab in labels] if textual else []
    mass = [0.0] * len(labels)
    for token, logprob in top:
        t = token.strip().rstrip(_STRIP_TRAILING).strip()
        if not t:
            continue
        hit = index.get(t)
        if hit is None and textual and len(t) >= 2:
            low = t.lower()
            hits = [i for i, lab in enumerate(folded) if lab.startswith(low)]
            hit = hits[0] if len(hits) == 1 else None  # a prefix of several labels stays missing mass
        if hit is not None:
            mass[hit] += math.exp(logprob)
    total = sum(mass)
    missing = min(1.0, max(0.0, 1.0 - total))
    if total <= 0:
        return None, 1.0
    return tuple(m / total for m in mass), missing


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
    except AttributeError:
        return None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: rare; the runner's own backoff applies


class LiteLLMBackend:
    """Respondent backend for hosted and served models (litellm or direct OpenAI-compatible HTTP).

    Args:
        cfg: The ``model:`` config (``backend: litellm``).

    Raises:
        UserError: ``cfg.api_key_env`` names an unset variable, or ``transport: http`` without
            an ``api_base``.
    """

    deterministic = False  # hosted models are not bit-reproducible, even at temperature 0
    batch_size = 1

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._api_key: str | None = None
        if cfg.api_key_env:
            self._api_key = os.environ.get(cfg.api_key_env)
            if not self._api_key:
                raise UserError(f"model.api_key_env: environment variable {cfg.api_key_env} is not set")
        if cfg.api_base is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(cfg.api_base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UserError(f"model.api_base: {cfg.api_base!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
        transport = cfg.transport
        if transport == "auto":
            transport = "http" if cfg.api_base and cfg.name.startswith("openai/") else "litellm"
        if transport == "http" and not cfg.api_base:
            raise UserError("model.transport: 'http' needs model.api_base (an OpenAI-compatible server URL)")
        self.transport = transport
        self._session: Any = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._prices: tuple[float, float] | None | bool = False  # False = not looked up yet

    # -- public ------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Pay the one-off costs before the first call (the runner calls this off the event loop).

        Imports litellm for the litellm transport (~3 s) and reads the model's price from the
        bundled cost map (a 3.5 MB JSON file) for the HTTP transport.
        """
        if self.transport == "litellm":
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm  # noqa: F401
        elif self._prices is False:
            self._prices = _token_prices(self.cfg.name)

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        """One result per request, in order (each request is one call)."""
        call = self._http if self.transport == "http" else self._litellm
        if len(requests) == 1:
            return [await call(requests[0])]
        return list(await asyncio.gather(*(call(r) for r in requests)))

    async def aclose(self) -> None:
        """Close the HTTP session (the runner calls this at the end of a run)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- request parameters --------------------------------------------------------------
    def _params(self, r: Request) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if r.elicitation in ("logprobs", "both"):
            p["logprobs"] = True
            p["top_logprobs"] = self.cfg.top_logprobs
        if r.elicitation == "logprobs":
            p["max_tokens"] = 1
        else:
            p["max_tokens"] = r.max_tokens
            p["temperature"] = r.temperature
        if r.seed is not None:
            p["seed"] = r.seed
        return p

    def chat_payload(self, r: Request, *, model: str) -> dict[str, Any]:
        """The chat-completions body of one request, as the HTTP transport sends it.

        The batch executor writes exactly this body into its request files, so a batch answer
        and a sync answer of the same request are the same call (one cache entry).

        Args:
            r: The request.
            model: The model as the server names it (without litellm's provider prefix).
        """
        return {"model": model, "messages": list(r.messages), **self._params(r), **self.cfg.params}

    def parse_body(self, body: Any, r: Request, *, latency: float, cost: float | None) -> Result:
        """A :class:`Result` from a chat-completions body (sync or batch), read one way.

        Raises:
            RetryableError: the body is not a completion (no choices, a wrong shape).
        """
        return self._parse(body, r, latency, cost)

    def _parse(self, body: Any, r: Request, latency: float, cost: float | None) -> Result:
        """:meth:`_result`, with an unexpected body shape reported as a retryable malformed response."""
        try:
            return self._result(body, r, latency, cost)
        except RetryableError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise RetryableError(f"malformed response: {type(err).__name__}: {err}") from err

    def _result(self, body: Any, r: Request, latency: float, cost: float | None) -> Result:
        choices = _get(body, "choices") or []
        if not choices:
            raise RetryableError("malformed response: no choices")
        choice = choices[0]
        if isinstance(choice, (str, bytes, int, float, list)):
            raise RetryableError("malformed response: a choice is not an object")
        text = _get(_get(choice, "message"), "content")
        probs = missing = None
        pairs: list[tuple[str, float]] | None = None
        if r.elicitation in ("logprobs", "both"):
            content = _get(_get(choice, "logprobs"), "content") or []
            top = _get(content[0], "top_logprobs") if content else None
            if top:
                if isinstance(top[0], dict):  # the HTTP path: plain JSON
                    pairs = [(t.get("token") or "", float(t["logprob"])) for t in top]
                else:
                    pairs = [(str(_get(t, "token") or ""), float(_get(t, "logprob"))) for t in top]
                probs, missing = label_probs(pairs, r.labels)
            else:
                missing = 1.0
        usage = _get(body, "usage")
        return Result(
            text=text if r.elicitation != "logprobs" else None,
            label_probs=probs,
            missing_mass=missing,
            prompt_tokens=_get(usage, "prompt_tokens"),
            completion_tokens=_get(usage, "completion_tokens"),
            cost_usd=cost,
            latency_s=latency,
            extra={"first_token": text} if r.elicitation == "logprobs" and text else {},
            top_tokens=tuple(pairs) if pairs is not None else None,
        )

    # -- litellm transport ---------------------------------------------------------------
    async def _litellm(self, r: Request) -> Result:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        kwargs: dict[str, Any] = {
            "model": self.cfg.name,
            "messages": list(r.messages),
            "drop_params": True,  # providers without seed/logprobs: drop, don't fail
            "num_retries": 0,  # the runner retries (with its own backoff and accounting)
            "max_retries": 0,
            **self._params(r),
            **self.cfg.params,
        }
        if self.cfg.api_base:
            kwargs["api_base"] = self.cfg.api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        elif self.cfg.api_base and self.cfg.name.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "none"  # local servers need no key, but the OpenAI client wants one
        t0 = time.perf_counter()
        try:
            resp = await litellm.acompletion(**kwargs)
        except Exception as err:  # noqa: BLE001 - mapped to the backend hierarchy below
            mapped = self._map_litellm_error(err, litellm)
            if isinstance(mapped, Result):
                return mapped
            raise mapped from err
        latency = time.perf_counter() - t0
        cost = (getattr(resp, "_hidden_params", None) or {}).get("response_cost")
        return self._parse(resp, r, latency, float(cost) if cost is not None else None)

    def _map_litellm_error(self, err: Exception, litellm: Any) -> Exception | Result:
        msg = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
        if isinstance(err, getattr(litellm, "ContextWindowExceededError", ())):
            return Result(error=msg)
        status = getattr(err, "status_code", None)
        if isinstance(err, litellm.RateLimitError) or status == 429:
            resp = getattr(err, "response", None)
            headers = getattr(err, "litellm_response_headers", None) or getattr(resp, "headers", None)
            return RetryableError(msg, retry_after=_retry_after(headers))
        if isinstance(err, (litellm.AuthenticationError, litellm.PermissionDeniedError, litellm.NotFoundError)):
            return FatalBackendError(f"{self.cfg.name}: {msg}")
        if isinstance(status, int) and status in _FATAL_STATUS:
            return FatalBackendError(f"{self.cfg.name}: {msg}")
        if isinstance(err, litellm.BadRequestError) or (isinstance(status, int) and 400 <= status < 500
                                                         and status not in _RETRY_STATUS):
            return Result(error=msg)  # this prompt's problem (a content filter), not the run's
        if _unreachable(err):
            return UnreachableError(f"cannot connect to {self.cfg.api_base or self.cfg.name}: {msg}")
        # Timeouts, dropped connections, 5xx, unparseable bodies: transient.
        return RetryableError(msg)

    # -- direct HTTP transport -------------------------------------------------------------
    def _get_session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            # No connector limit: the runner bounds concurrency.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), headers=headers, timeout=aiohttp.ClientTimeout(total=None)
            )
            self._session_loop = loop
        return self._session

    async def _http(self, r: Request) -> Result:
        import aiohttp

        model = self.cfg.name.split("/", 1)[1] if self.cfg.name.startswith("openai/") else self.cfg.name
        payload = self.chat_payload(r, model=model)
        url = self.cfg.api_base.rstrip("/") + "/chat/completions"  # type: ignore[union-attr]
        t0 = time.perf_counter()
        try:
            async with self._get_session().post(url, data=json.dumps(payload).encode()) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except aiohttp.InvalidURL as err:
            raise FatalBackendError(f"{self.cfg.name}: invalid URL {url}: {err}") from err
        except aiohttp.ClientConnectorError as err:  # refused, unknown host, unreachable network
            raise UnreachableError(f"cannot connect to {self.cfg.api_base}: {type(err).__name__}: {err}") from err
        except aiohttp.ClientError as err:
            raise RetryableError(f"connection error: {type(err).__name__}: {err}") from err
        latency = time.perf_counter() - t0
        if status != 200:
            detail = raw[:200].decode("utf-8", "replace")
            if status in _FATAL_STATUS:
                raise FatalBackendError(f"{self.cfg.name}: HTTP {status}: {detail}")
            if 400 <= status < 500 and status not in _RETRY_STATUS:
                # This prompt's problem (a content filter, the context window), not the run's.
                return Result(error=f"HTTP {status}: {detail}", latency_s=latency)
            raise RetryableError(f"HTTP {status}: {detail}", retry_after=_retry_after(headers))
        try:
            body = json.loads(raw)
        except ValueError as err:
            raise RetryableError("malformed response body (not JSON)") from err
        usage = (body.get("usage") if isinstance(body, dict) else None) or {}
        return self._parse(body, r, latency, self._cost(usage.get("prompt_tokens"), usage.get("completion_tokens")))

    def _cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """Cost from litellm's bundled cost map; None for models it does not price.

        Read from the JSON file litellm ships (no litellm import: that takes ~3 s and this path
        exists to stay light); the model is looked up as given and without its ``openai/`` prefix.
        """
        if self._prices is False:
            self._prices = _token_prices(self.cfg.name)
        if not self._prices or prompt_tokens is None or completion_tokens is None:
            return None
        return prompt_tokens * self._prices[0] + completion_tokens * self._prices[1]


def _unreachable(err: BaseException) -> bool:
    """True when the exception (or one it was raised from) says nothing is listening."""
    import socket

    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (ConnectionRefusedError, socket.gaierror)):
            return True
        if type(e).__name__ in ("ConnectError", "ClientConnectorError", "ClientConnectorDNSError"):
            return True  # httpx / aiohttp: the TCP connection (or the name lookup) failed
        e = e.__cause__ or e.__context__
    return False


def _token_prices(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from litellm's bundled cost map, or None when unpriced."""
    entry = _price_entry(model)
    if entry is None:
        return None
    return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)


def batch_token_prices(model: str) -> tuple[float, float, str] | None:
    """(input, output) USD per token of a batch-API call, and where the figure comes from.

    litellm's cost map gives ``input_cost_per_token_batches`` / ``output_cost_per_token_batches``
    for some models (source ``"cost_map_batches"``); for the others the providers' published
    batch discount, half the sync price, is used (``"half_sync_price"``). None when unpriced.
    """
    entry = _price_entry(model)
    if entry is None:
        return None
    if entry.get("input_cost_per_token_batches") is not None:
        return (float(entry["input_cost_per_token_batches"]),
                float(entry.get("output_cost_per_token_batches") or 0.0), "cost_map_batches")
    return (0.5 * float(entry["input_cost_per_token"]), 0.5 * float(entry.get("output_cost_per_token") or 0.0),
            "half_sync_price")


@functools.lru_cache(maxsize=64)  # a pure lookup in a read-only file: read it once per model
def _price_entry(model: str) -> dict[str, Any] | None:
    """The model's entry in litellm's bundled cost map (with an input price), or None."""
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "model_prices_and_context_window_backup.json")
    try:
        with open(path, encoding="utf-8") as fh:
            table = json.load(fh)
    except (OSError, ValueError):
        return None
    for name in (model, model.split("/", 1)[-1]):
        entry = table.get(name)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return entry
    return None
