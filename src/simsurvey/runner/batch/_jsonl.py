"""The request file (OpenAI Batch JSONL) and the reading of batch output lines.

One request line per call::

    {"custom_id": "<response-cache key>", "method": "POST", "url": "/v1/chat/completions",
     "body": <the chat-completions payload the sync HTTP path sends>}

The same file goes to OpenAI / Azure / Vertex / Bedrock through litellm and to
``vllm run-batch -i in.jsonl -o out.jsonl``. Beside each request file a *meta* sidecar
(``<name>.meta.jsonl``) lists, per line, what reading the answer needs and what the budget guard
estimates: ``[custom_id, elicitation, labels, est_prompt_tokens, max_tokens]``. Files are written
line by line as requests are deferred (never held in memory) under a temporary name and renamed
when complete, and split at ``max_requests`` lines and ``max_bytes`` bytes.

Output lines (OpenAI's format; other providers' results are converted to it)::

    {"custom_id": ..., "response": {"status_code": 200, "body": {...}}, "error": null}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The endpoint every request line targets.
CHAT_URL = "/v1/chat/completions"
#: Reason kept on a row whose output line could not be read.
MALFORMED = "malformed batch output line"
_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*"([^"]+)"')


def request_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One request line (with its newline)."""
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": body},
                      separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class RequestFile:
    """A complete request file and its meta sidecar.

    Attributes:
        name: File stem (``req-00003``), unique in the run's batch directory.
        path: The JSONL request file.
        meta: Its sidecar.
        n: Request lines.
        bytes: Size of the request file.
        est_prompt_tokens: Estimated prompt tokens of its lines (the budget guard).
        max_completion_tokens: The sum of its lines' output caps (the budget guard).
    """

    name: str
    path: Path
    meta: Path
    n: int
    bytes: int
    est_prompt_tokens: int
    max_completion_tokens: int


class RequestFileWriter:
    """Writes request lines to numbered files, splitting at a line count and a byte size.

    Args:
        directory: The model's batch directory.
        max_requests: Lines per file at most.
        max_bytes: Bytes per file at most (the provider's upload limit).
        start: Number of the first file (one more than the highest in the state).
    """

    def __init__(self, directory: Path, *, max_requests: int, max_bytes: int, start: int = 1) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.number = start
        self.files: list[RequestFile] = []
        self._fh: Any = None
        self._meta: Any = None
        self._n = self._bytes = self._tokens = self._out = 0

    def _paths(self) -> tuple[str, Path, Path]:
        name = f"req-{self.number:05d}"
        return name, self.directory / f"{name}.jsonl", self.directory / f"{name}.meta.jsonl"

    def _open(self) -> None:
        _, path, meta = self._paths()
        # Temporary names until complete: a killed run leaves no file that looks submittable.
        self._fh = open(f"{path}.tmp", "wb")  # noqa: SIM115 - closed in _seal
        self._meta = open(f"{meta}.tmp", "wb")  # noqa: SIM115
        self._n = self._bytes = self._tokens = self._out = 0

    def _seal(self) -> None:
        if self._fh is None:
            return
        name, path, meta = self._paths()
        for fh in (self._fh, self._meta):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        self._fh = self._meta = None
        os.replace(f"{path}.tmp", path)
        os.replace(f"{meta}.tmp", meta)
        self.files.append(RequestFile(name=name, path=path, meta=meta, n=self._n, bytes=self._bytes,
                                      est_prompt_tokens=self._tokens, max_completion_tokens=self._out))
        self.number += 1

    def add(self, custom_id: str, body: dict[str, Any], *, elicitation: str, labels: tuple[str, ...],
            est_prompt_tokens: int, max_tokens: int) -> None:
        """Append one request (a new file is started when this one would pass a limit)."""
        line = request_line(custom_id, body)
        if len(line) > self.max_bytes:
            raise ValueError(f"one request line is {len(line)} bytes, over the file limit of {self.max_bytes}")
        if self._fh is not None and (self._n >= self.max_requests or self._bytes + len(line) > self.max_bytes):
            self._seal()
        if self._fh is None:
            self._open()
        self._fh.write(line)
        self._meta.write(json.dumps([custom_id, elicitation, list(labels), est_prompt_tokens, max_tokens],
                                    separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        self._n += 1
        self._bytes += len(line)
        self._tokens += est_prompt_tokens
        self._out += max_tokens

    def close(self) -> list[RequestFile]:
        """Seal the open file; the complete files written."""
        self._seal()
        return self.files

    def discard(self) -> None:
        """Remove every file this writer wrote (a refused budget: nothing half-written)."""
        for fh in (self._fh, self._meta):
            if fh is not None:
                fh.close()
        if self._fh is not None:
            _, path, meta = self._paths()
            Path(f"{path}.tmp").unlink(missing_ok=True)
            Path(f"{meta}.tmp").unlink(missing_ok=True)
        self._fh = self._meta = None
        for f in self.files:
            f.path.unlink(missing_ok=True)
            f.meta.unlink(missing_ok=True)
        self.files = []


def read_meta(path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """custom_id -> (elicitation, labels) of one request file's sidecar."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                cid, elicitation, labels, *_ = json.loads(raw)
                out[cid] = (elicitation, tuple(labels))
    return out


def meta_keys(path: Path) -> Iterator[str]:
    """The custom_ids of one request file, in order (read from its sidecar)."""
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                yield json.loads(raw)[0]


@dataclass(frozen=True)
class OutputLine:
    """One line of a batch output or error file, read.

    Attributes:
        custom_id: The key (None when not even that could be read).
        body: The chat-completions body of a 200 answer, else None.
        status: The HTTP status of the call (None: no response, e.g. expired).
        error: Why there is no answer: the provider's error, or :data:`MALFORMED`.
        code: The provider's error code (``batch_expired``...), when given.
    """

    custom_id: str | None
    body: dict[str, Any] | None = None
    status: int | None = None
    error: str | None = None
    code: str | None = None


def parse_output_line(raw: bytes) -> OutputLine:
    """Read one output/error line; an unreadable one keeps its custom_id when it can be found."""
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        m = _CUSTOM_ID.search(raw)
        return OutputLine(custom_id=m.group(1).decode() if m else None, error=MALFORMED)
    cid = obj.get("custom_id")
    cid = str(cid) if cid is not None else None
    resp = obj.get("response")
    err = obj.get("error")
    if isinstance(resp, dict):
        status = resp.get("status_code")
        body = resp.get("body")
        if status == 200 and isinstance(body, dict):
            return OutputLine(custom_id=cid, body=body, status=200)
        detail = body.get("error") if isinstance(body, dict) else None
        msg = (detail.get("message") if isinstance(detail, dict) else None) or str(detail or body)[:300]
        if isinstance(status, int):
            return OutputLine(custom_id=cid, status=status, error=f"HTTP {status}: {msg}",
                              code=detail.get("code") if isinstance(detail, dict) else None)
    if isinstance(err, dict):
        code = err.get("code")
        return OutputLine(custom_id=cid, error=f"{code or 'error'}: {err.get('message') or ''}".strip(),
                          code=str(code) if code else None)
    return OutputLine(custom_id=cid, error=MALFORMED)


def iter_lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a file, streamed."""
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                yield raw
