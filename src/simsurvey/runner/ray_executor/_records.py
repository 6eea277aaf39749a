"""Requests and results as Ray Dataset rows, and the vLLM engine's rows as results.

Pure functions, no Ray import: a Dataset row is plain columns (strings and ints) so Arrow stores
it without pickling, and the driver reads the answers back exactly as a backend returned them.

A request row::

    key        the response-cache key of the request (``_Run.key``: one definition)
    call       the call group: the requests one ``generate`` call of the local runner would
               take together (a persona's questions for the embedded model); a worker makes one
               call per group, so batch composition, and with it every bit of a padded forward
               pass, is the local runner's
    persona    the request's ``prefix_key`` (blocks are cut between personas, never inside one)
    request    the :class:`~simsurvey.respondents.base.Request` as canonical JSON (its
               ``context`` is left out: baselines never run on Ray, and no model reads it)

A result row: ``key``, ``result`` (the :class:`~simsurvey.respondents.base.Result` as JSON, its
error included), ``calls`` / ``retries`` (backend calls made for the row's call group, counted on
its first row), ``identity`` (the worker backend's identity as JSON: the driver checks it is its
own) and ``fatal`` (a failure that stops the run, e.g. bad credentials; empty otherwise).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.cache import canonical_json

#: Columns of a request row and of a result row.
REQUEST_COLUMNS = ("key", "call", "persona", "request")
RESULT_COLUMNS = ("key", "result", "calls", "retries", "identity", "fatal")


def request_row(req: Request, *, key: str, call: int) -> dict[str, Any]:
    """A request as a Dataset row (see the module docstring)."""
    payload = {"messages": list(req.messages), "labels": list(req.labels), "elicitation": req.elicitation,
               "temperature": req.temperature, "max_tokens": req.max_tokens, "seed": req.seed,
               "prefix_key": req.prefix_key}
    return {"key": key, "call": int(call), "persona": req.prefix_key or "", "request": canonical_json(payload)}


def request_from_row(row: Mapping[str, Any]) -> Request:
    """The :class:`Request` a row carries (equal to the one :func:`request_row` was given)."""
    d = json.loads(row["request"])
    return Request(messages=tuple(dict(m) for m in d["messages"]), labels=tuple(d["labels"]),
                   elicitation=d["elicitation"], temperature=d["temperature"], max_tokens=d["max_tokens"],
                   seed=d["seed"], prefix_key=d["prefix_key"])


def result_json(res: Result) -> str:
    """A result as JSON (every field, the error included)."""
    return canonical_json(asdict(res))


def result_from_json(text: str) -> Result:
    """The :class:`Result` :func:`result_json` wrote (tuples restored)."""
    d = json.loads(text)
    if d.get("label_probs") is not None:
        d["label_probs"] = tuple(float(p) for p in d["label_probs"])
    if d.get("top_tokens") is not None:
        d["top_tokens"] = tuple((str(t), float(lp)) for t, lp in d["top_tokens"])
    return Result(**d)


def result_row(key: str, res: Result, *, calls: int = 0, retries: int = 0, identity: Mapping[str, Any] | None = None,
               fatal: str = "") -> dict[str, Any]:
    """A result as a Dataset row (see the module docstring)."""
    return {"key": key, "result": result_json(res), "calls": int(calls), "retries": int(retries),
            "identity": canonical_json(dict(identity or {})), "fatal": fatal}


def call_groups(rows: Iterable[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """Consecutive rows of the same ``call``: one backend call each, in order."""
    group: list[Mapping[str, Any]] = []
    for row in rows:
        if group and row["call"] != group[-1]["call"]:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def blocks(rows: Sequence[Mapping[str, Any]], target: int) -> list[list[Mapping[str, Any]]]:
    """Cut request rows (in persona order) into Dataset blocks of about ``target`` rows.

    A block ends only where the persona changes, so a persona's requests travel together (one
    worker, one KV or prefix cache); a persona with more than ``target`` requests is cut between
    call groups, never inside one (a call is one ``generate`` of the worker).
    """
    target = max(1, int(target))
    out: list[list[Mapping[str, Any]]] = []
    cur: list[Mapping[str, Any]] = []
    for i, row in enumerate(rows):
        cur.append(row)
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if nxt is None:
            break
        new_call = nxt["call"] != row["call"]
        if new_call and (nxt["persona"] != row["persona"] or not row["persona"]) and len(cur) >= target or new_call and len(cur) >= 2 * target:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


# -- the vLLM engine processor (ray.data.llm) ---------------------------------------------
def vllm_request(row: Mapping[str, Any], *, top_logprobs: int) -> dict[str, Any]:
    """The vLLM engine's input for a request row (``messages`` + ``sampling_params``).

    The same parameters the HTTP path sends (``LiteLLMBackend._params``): one token with the top
    ``top_logprobs`` logprobs for ``logprobs``; the generation cap, temperature and seed for
    ``sample``; both for ``both``. The request row's columns are kept for the postprocess step.
    """
    req = request_from_row(row)
    sp: dict[str, Any] = {}
    if req.elicitation in ("logprobs", "both"):
        sp["logprobs"] = int(top_logprobs)
    if req.elicitation == "logprobs":
        sp["max_tokens"] = 1
        sp["temperature"] = 0.0  # one token read for its distribution: greedy, so the text is the top token
    else:
        sp["max_tokens"] = req.max_tokens
        sp["temperature"] = req.temperature
    if req.seed is not None:
        sp["seed"] = req.seed
    return {**{c: row[c] for c in REQUEST_COLUMNS}, "messages": [dict(m) for m in req.messages],
            "sampling_params": sp}


def _top_pairs(position: Any) -> list[tuple[str, float]]:
    """``(token, logprob)`` pairs of one generated position as the vLLM stage gives them.

    ``position`` maps token id -> ``{"logprob", "rank", "decoded_token"}`` (after Arrow, the ids
    may be strings and absent ids None); a list of such infos is read too. Best first.
    """
    infos = position.values() if isinstance(position, Mapping) else (position or [])
    pairs = []
    for info in infos:
        if not info or info.get("logprob") is None:
            continue
        lp = float(info["logprob"])
        if math.isfinite(lp):
            pairs.append((str(info.get("decoded_token") or ""), lp, info.get("rank") or 0))
    pairs.sort(key=lambda t: (-t[1], t[2]))
    return [(t, lp) for t, lp, _ in pairs]


def vllm_result(row: Mapping[str, Any], *, top_logprobs: int) -> Result:
    """The :class:`Result` of one vLLM engine output row, read as the HTTP path reads a response.

    The first generated position's top logprobs go through the same
    :func:`~simsurvey.respondents.litellm_backend.label_probs`; an engine error
    (``__inference_error__``) is the row's error.
    """
    from simsurvey.respondents.litellm_backend import label_probs

    err = row.get("__inference_error__")
    if err:
        return Result(error=f"vllm: {str(err).splitlines()[0][:300]}")
    req = request_from_row(row)
    text = row.get("generated_text") or ""
    probs = missing = None
    pairs: list[tuple[str, float]] | None = None
    if req.elicitation in ("logprobs", "both"):
        positions = row.get("logprobs")
        positions = list(positions) if positions is not None else []
        if positions:
            pairs = _top_pairs(positions[0])[:top_logprobs]
        if pairs:
            probs, missing = label_probs(pairs, req.labels)
        else:
            missing = 1.0
    return Result(
        text=text if req.elicitation != "logprobs" else None,
        label_probs=probs,
        missing_mass=missing,
        prompt_tokens=_int_or_none(row.get("num_input_tokens")),
        completion_tokens=_int_or_none(row.get("num_generated_tokens")),
        cost_usd=0.0,  # the engine runs on the user's own GPUs: no per-call price
        extra={"first_token": text} if req.elicitation == "logprobs" and text else {},
        top_tokens=tuple(pairs) if pairs else None,
    )


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    except (TypeError, ValueError):
        return None
