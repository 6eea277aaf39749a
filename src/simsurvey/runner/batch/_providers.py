"""Batch API clients: litellm's batch functions, Anthropic Message Batches, and a plain file.

One small interface (:class:`Provider`): ``upload`` a request file, ``create`` a batch of it,
``find`` a batch created for an uploaded file by a run killed before it recorded the id,
``retrieve`` its :class:`BatchStatus`, ``download`` its output and error lines (in OpenAI's
output format, whatever the provider) and ``cancel`` it.

* :class:`LiteLLMProvider` — ``litellm.acreate_file`` / ``acreate_batch`` / ``aretrieve_batch`` /
  ``afile_content`` / ``acancel_batch`` with ``custom_llm_provider`` from the model string
  (``openai``, ``azure``, ``vertex_ai``, ``bedrock``, ``hosted_vllm``...) and ``api_base`` honoured.
* :class:`AnthropicProvider` — the documented Message Batches API over aiohttp
  (``POST /v1/messages/batches``, ``GET .../{id}`` until ``processing_status`` is ``ended``,
  stream ``results_url``); each chat body is mapped to Anthropic's messages format and each
  result back to a chat-completions body. No token logprobs.
* :class:`FileProvider` — nothing is sent: the request file is run elsewhere
  (``vllm run-batch -i <name>.jsonl -o <name>.out.jsonl --model M``) and collected once the
  output file is in place.

Errors: :class:`BatchAuthError` (401/403), :class:`BatchRefusedError` (a 400/404/413/422 on a
file or a batch: the provider will not take it) stop the run with one line naming the model and
the fix; anything else (429, 5xx, a dropped connection) is :class:`TransientBatchError` and is
retried by the caller.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from simsurvey.runner.batch._jsonl import iter_lines

#: litellm's providers with a batch API (``acreate_batch``'s ``custom_llm_provider``).
LITELLM_BATCH_PROVIDERS = ("openai", "azure", "vertex_ai", "bedrock", "hosted_vllm", "litellm_proxy", "mistral", "xai")
#: OpenAI's limits of one batch input file.
OPENAI_MAX_BYTES = 200 * 1024 * 1024
OPENAI_MAX_REQUESTS = 50_000
#: Anthropic's limits of one message batch.
ANTHROPIC_MAX_BYTES = 256 * 1024 * 1024
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_VERSION = "2023-06-01"


class BatchAPIError(Exception):
    """A batch API call failed."""


class TransientBatchError(BatchAPIError):
    """429 / 5xx / a dropped connection: worth retrying."""


class BatchAuthError(BatchAPIError):
    """The provider rejected the credentials (401 / 403)."""


class BatchRefusedError(BatchAPIError):
    """The provider refused the file or the batch (400 / 404 / 413 / 422): retrying does not help."""


def classify(status: int | None, message: str) -> BatchAPIError:
    """The error class of an HTTP status."""
    if status in (401, 403):
        return BatchAuthError(f"HTTP {status}: {message}")
    if status is not None and 400 <= status < 500 and status not in (408, 409, 429):
        return BatchRefusedError(f"HTTP {status}: {message}")
    return TransientBatchError(f"HTTP {status}: {message}" if status else message)


@dataclass(frozen=True)
class BatchStatus:
    """What the provider says about one batch.

    Attributes:
        status: ``validating``, ``in_progress``, ``finalizing``, ``completed``, ``failed``,
            ``expired``, ``cancelling``, ``cancelled`` (Anthropic's ``ended`` is ``completed``).
        total / completed / failed: Request counts.
        output_file_id / error_file_id: Where the results are.
        errors: A failed batch's reason.
    """

    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: str | None = None


class Provider(Protocol):
    """A batch API."""

    #: Recorded on each job (``litellm:openai``, ``anthropic``, ``file``).
    name: str
    #: Limits of one request file.
    max_bytes: int
    max_requests: int

    async def upload(self, path: Path) -> str: ...

    async def create(self, input_file_id: str, path: Path) -> str: ...

    async def find(self, input_file_id: str) -> str | None: ...

    async def retrieve(self, batch_id: str) -> BatchStatus: ...

    async def download(self, file_id: str, dest: Path) -> None: ...

    async def cancel(self, batch_id: str) -> None: ...

    async def aclose(self) -> None: ...


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _errors_text(errors: Any) -> str | None:
    data = _get(errors, "data") or []
    msgs = [f"{_get(e, 'code') or 'error'}: {_get(e, 'message') or ''}" for e in data]
    return "; ".join(msgs)[:500] or None


class LiteLLMProvider:
    """Batch calls through litellm.

    Args:
        custom_llm_provider: litellm's provider name (``openai``, ``azure``, ...).
        api_base: The provider's base URL (an OpenAI-compatible server; the fake in tests).
        api_key: The key (never stored or logged).
        extra: Further keyword arguments of litellm's batch functions (``batch.provider_params``:
            ``api_version``, ``vertex_project``, an S3 bucket for Bedrock...).
        model: The model string (passed to the providers that need it).
    """

    max_bytes = OPENAI_MAX_BYTES
    max_requests = OPENAI_MAX_REQUESTS

    def __init__(self, custom_llm_provider: str, *, api_base: str | None, api_key: str | None,
                 extra: dict[str, Any] | None = None, model: str | None = None) -> None:
        self.provider = custom_llm_provider
        self.name = f"litellm:{custom_llm_provider}"
        self._kw: dict[str, Any] = {"custom_llm_provider": custom_llm_provider, **(extra or {})}
        if api_base:
            self._kw["api_base"] = api_base
        if api_key:
            self._kw["api_key"] = api_key
        elif api_base and custom_llm_provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
            self._kw["api_key"] = "none"  # a local server needs no key, the OpenAI client wants one
        if model and custom_llm_provider not in ("openai", "azure", "hosted_vllm", "litellm_proxy"):
            self._kw["model"] = model
        self._litellm: Any = None

    def warm_up(self) -> None:
        """Import litellm (seconds: the executor calls this in a thread, never on the event loop)."""
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        self._litellm = litellm

    async def _call(self, fn: str, **kwargs: Any) -> Any:
        if self._litellm is None:
            await asyncio.to_thread(self.warm_up)
        try:
            return await getattr(self._litellm, fn)(**kwargs, **self._kw)
        except BatchAPIError:
            raise
        except Exception as err:
            status = getattr(err, "status_code", None)
            msg = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
            raise classify(status if isinstance(status, int) else None, f"{type(err).__name__}: {msg}") from err

    async def upload(self, path: Path) -> str:
        """Upload a request file (``purpose=batch``); its file id."""
        data = await asyncio.to_thread(path.read_bytes)  # up to 200 MB: off the event loop
        obj = await self._call("acreate_file", file=(path.name, data), purpose="batch")
        return str(_get(obj, "id"))

    async def create(self, input_file_id: str, path: Path) -> str:
        """Create a batch of an uploaded file (24 h window); its batch id."""
        obj = await self._call("acreate_batch", completion_window="24h", endpoint="/v1/chat/completions",
                               input_file_id=input_file_id, metadata={"simsurvey_file": path.name})
        return str(_get(obj, "id"))

    async def find(self, input_file_id: str) -> str | None:
        """The batch already created for ``input_file_id`` (a run killed before recording it)."""
        try:
            page = await self._call("alist_batches", limit=100)
        except BatchAPIError:
            return None  # not every provider lists batches: the caller creates one
        for b in _get(page, "data") or []:
            if _get(b, "input_file_id") == input_file_id:
                return str(_get(b, "id"))
        return None

    async def retrieve(self, batch_id: str) -> BatchStatus:
        """The batch's status and counts."""
        # litellm's logging would download a completed batch's output and price every line (~10 ms a
        # line: minutes for 50,000) on each poll; simsurvey prices the lines itself when it reads them.
        b = await self._call("aretrieve_batch", batch_id=batch_id,
                             litellm_metadata={"batch_ignore_default_logging": True})
        counts = _get(b, "request_counts")
        return BatchStatus(status=str(_get(b, "status")), total=int(_get(counts, "total") or 0),
                           completed=int(_get(counts, "completed") or 0), failed=int(_get(counts, "failed") or 0),
                           output_file_id=_get(b, "output_file_id"), error_file_id=_get(b, "error_file_id"),
                           errors=_errors_text(_get(b, "errors")))

    async def download(self, file_id: str, dest: Path) -> None:
        """Write a result file's lines to ``dest`` (atomically)."""
        from simsurvey.io import write_bytes

        content = await self._call("afile_content", file_id=file_id)
        data = _get(content, "content")
        if data is None and hasattr(content, "read"):
            data = content.read()
        await asyncio.to_thread(write_bytes, dest, data if isinstance(data, bytes) else str(data).encode())

    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel a batch."""
        await self._call("acancel_batch", batch_id=batch_id)

    async def aclose(self) -> None:
        """Nothing to close (litellm keeps its own clients)."""


def anthropic_params(body: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions body in Anthropic's messages format (``params`` of a batch request).

    System messages become ``system``; ``max_tokens`` and ``temperature`` are kept; ``seed``,
    ``logprobs`` and ``top_logprobs`` have no Anthropic equivalent and are dropped (logprob
    elicitation is refused before anything is written).
    """
    system = [m["content"] for m in body["messages"] if m.get("role") == "system"]
    params: dict[str, Any] = {
        "model": body["model"],
        "max_tokens": int(body.get("max_tokens") or 16),
        "messages": [{"role": m["role"], "content": m["content"]} for m in body["messages"] if m.get("role") != "system"],
    }
    if system:
        params["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        params["temperature"] = min(1.0, float(body["temperature"]))  # Anthropic's range is 0-1
    for k, v in body.items():
        if k not in ("model", "messages", "max_tokens", "temperature", "seed", "logprobs", "top_logprobs"):
            params[k] = v
    return params


def anthropic_result_line(obj: dict[str, Any]) -> dict[str, Any]:
    """One Anthropic result line as an OpenAI batch output line (a chat-completions body)."""
    cid = obj.get("custom_id")
    result = obj.get("result") or {}
    kind = result.get("type")
    if kind == "succeeded":
        msg = result.get("message") or {}
        content = msg.get("content")
        if not isinstance(content, list):
            return {"custom_id": cid, "response": {"status_code": 200, "body": {"choices": []}}}
        text = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
        usage = msg.get("usage") or {}
        body = {"id": msg.get("id"), "object": "chat.completion", "model": msg.get("model"),
                "choices": [{"index": 0, "finish_reason": msg.get("stop_reason"),
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens")}}
        return {"custom_id": cid, "response": {"status_code": 200, "body": body}, "error": None}
    if kind == "errored":
        err = (result.get("error") or {}).get("error") or result.get("error") or {}
        etype = err.get("type") or "error"
        status = 400 if etype == "invalid_request_error" else 500
        return {"custom_id": cid, "response": {"status_code": status, "body": {"error": {
            "message": f"{etype}: {err.get('message') or ''}", "code": etype}}}, "error": None}
    return {"custom_id": cid, "response": None,
            "error": {"code": f"batch_{kind or 'missing'}", "message": f"the request was {kind or 'not answered'}"}}


class AnthropicProvider:
    """Anthropic Message Batches over aiohttp.

    Args:
        api_key: The key (``x-api-key``; never stored or logged).
        api_base: Base URL (default ``https://api.anthropic.com``; the fake in tests).
    """

    name = "anthropic"
    max_bytes = ANTHROPIC_MAX_BYTES
    max_requests = ANTHROPIC_MAX_REQUESTS

    def __init__(self, *, api_key: str | None, api_base: str | None = None) -> None:
        self.base = (api_base or "https://api.anthropic.com").rstrip("/")
        self.base = self.base.removesuffix("/v1")
        self._headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if api_key:
            self._headers["x-api-key"] = api_key
        self._session: Any = None

    def _sess(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=aiohttp.ClientTimeout(total=600))
        return self._session

    async def _request(self, method: str, url: str, *, data: bytes | None = None) -> Any:
        import aiohttp

        try:
            async with self._sess().request(method, url, data=data) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    try:
                        detail = json.loads(raw).get("error", {}).get("message") or raw[:300].decode("utf-8", "replace")
                    except (ValueError, AttributeError):
                        detail = raw[:300].decode("utf-8", "replace")
                    raise classify(resp.status, detail)
                return json.loads(raw)
        except aiohttp.ClientError as err:
            raise TransientBatchError(f"{type(err).__name__}: {err}") from err

    async def upload(self, path: Path) -> str:
        """Nothing to upload (requests go inline in the batch): the file's own name."""
        return f"inline:{path.name}"

    async def create(self, input_file_id: str, path: Path) -> str:
        """POST the file's requests, mapped to Anthropic's format; the batch id."""
        def build() -> bytes:  # reading and mapping a file of 100,000 requests: off the event loop
            reqs = [{"custom_id": (line := json.loads(raw))["custom_id"], "params": anthropic_params(line["body"])}
                    for raw in iter_lines(path)]
            return json.dumps({"requests": reqs}, separators=(",", ":"), ensure_ascii=False).encode()

        payload = await asyncio.to_thread(build)
        out = await self._request("POST", f"{self.base}/v1/messages/batches", data=payload)
        return str(out["id"])

    async def find(self, input_file_id: str) -> str | None:
        """Anthropic batches carry no file id: a batch created by a killed run is not found."""
        return None

    async def retrieve(self, batch_id: str) -> BatchStatus:
        """``processing_status`` (``ended`` reads as ``completed``) and the request counts."""
        b = await self._request("GET", f"{self.base}/v1/messages/batches/{batch_id}")
        c = b.get("request_counts") or {}
        failed = sum(int(c.get(k) or 0) for k in ("errored", "canceled", "expired"))
        total = failed + int(c.get("succeeded") or 0) + int(c.get("processing") or 0)
        status = {"ended": "completed", "canceling": "cancelling"}.get(b.get("processing_status"), "in_progress")
        return BatchStatus(status=status, total=total, completed=int(c.get("succeeded") or 0), failed=failed,
                           output_file_id=b.get("results_url"))

    async def download(self, file_id: str, dest: Path) -> None:
        """Stream the results JSONL from ``results_url``, converted to OpenAI output lines."""
        import aiohttp

        from simsurvey.io import atomic_path

        try:
            async with self._sess().get(file_id) as resp:
                if resp.status != 200:
                    raise classify(resp.status, (await resp.read())[:300].decode("utf-8", "replace"))
                with atomic_path(dest) as tmp:
                    fh = await asyncio.to_thread(open, tmp, "wb")
                    try:
                        buf: list[bytes] = []
                        async for raw in resp.content:
                            if not raw.strip():
                                continue
                            try:
                                line = json.dumps(anthropic_result_line(json.loads(raw)), separators=(",", ":")).encode()
                            except (ValueError, AttributeError, TypeError):
                                line = raw.rstrip(b"\n")  # kept as it came: read as a malformed line
                            buf.append(line + b"\n")
                            if len(buf) >= 1000:  # written off the event loop, a thousand lines at a time
                                await asyncio.to_thread(fh.write, b"".join(buf))
                                buf = []
                        await asyncio.to_thread(fh.write, b"".join(buf))
                    finally:
                        await asyncio.to_thread(fh.close)
        except aiohttp.ClientError as err:
            raise TransientBatchError(f"{type(err).__name__}: {err}") from err

    async def cancel(self, batch_id: str) -> None:
        """Ask Anthropic to cancel a batch."""
        await self._request("POST", f"{self.base}/v1/messages/batches/{batch_id}/cancel")

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class FileProvider:
    """A request file run elsewhere (``vllm run-batch``), collected when its output is in place.

    ``<name>.jsonl`` is run by the user into ``<name>.out.jsonl`` beside it; until that file exists
    the batch is ``in_progress``.

    Args:
        directory: The model's batch directory.
        model: The model id (for the command shown to the user).
    """

    name = "file"
    max_bytes = 2**62
    max_requests = 2**62

    def __init__(self, directory: Path, *, model: str) -> None:
        self.directory = Path(directory)
        self.model = model

    def command(self, names: Iterable[str]) -> str:
        """The command(s) that produce the outputs of these request files."""
        return "; ".join(f"vllm run-batch -i {self.directory / n}.jsonl -o {self.directory / n}.out.jsonl "
                         f"--model {self.model}" for n in names)

    async def upload(self, path: Path) -> str:
        """Nothing to upload: the request file's path."""
        return str(path)

    async def create(self, input_file_id: str, path: Path) -> str:
        """Nothing to create: the batch id is the file's name."""
        return f"file:{path.stem}"

    async def find(self, input_file_id: str) -> str | None:
        """The file's batch id (creating one twice costs nothing)."""
        return None

    async def retrieve(self, batch_id: str) -> BatchStatus:
        """``completed`` once ``<name>.out.jsonl`` exists, else ``in_progress``."""
        name = batch_id.removeprefix("file:")
        out = self.directory / f"{name}.out.jsonl"
        if out.exists():
            return BatchStatus(status="completed", output_file_id=str(out))
        return BatchStatus(status="in_progress")

    async def download(self, file_id: str, dest: Path) -> None:
        """The output is already where it is read from (``<name>.out.jsonl``)."""
        if Path(file_id) != dest:
            from simsurvey.io import write_bytes

            write_bytes(dest, Path(file_id).read_bytes())

    async def cancel(self, batch_id: str) -> None:
        """Nothing to cancel."""

    async def aclose(self) -> None:
        """Nothing to close."""
