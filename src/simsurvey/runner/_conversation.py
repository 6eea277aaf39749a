"""Sequential questionnaires: one conversation per (persona, replicate), asked turn by turn.

Under ``design.context: sequential`` the design gives every persona row a ``question_position``
(0-based, the order the questions are asked in that conversation). The runner then asks a
conversation's questions one at a time, in that order; the request of turn k carries

1. the persona prompt (as for an independent question: the system message, or the persona text at
   the top of the first user message under ``prompt.persona_role: user``);
2. for every earlier turn j < k: the user message of question j exactly as it was rendered for
   that row (its condition: option order, labels, the arm's wording, a battery's stem) and an
   assistant message with what the model answered: its text as generated (``raw_text``), or, for
   logprob-only elicitation (no text), the displayed label of the chosen option;
3. the user message of question k.

Rules:

- Conversations run concurrently (as many as ``runner.concurrency``), the turns of one
  conversation strictly in order: turn k is asked once turn k-1's answer is known.
- The response cache key and ``prompt_hash`` cover the messages, hence the whole history: an answer
  is re-used only under the identical history (the same earlier questions, shown the same way, and
  the same earlier answers).
- An invalid answer (unparseable, a refusal, no mass on the options) is a turn like any other: it
  stays in the history as the model gave it, and the conversation goes on.
- A turn whose call fails (``error``: after the runner's retries) ends the conversation for this
  run: its row is kept with the error, its later turns are not asked and no rows are written for
  them. The model never saw an answer to that question, so no later turn could be asked under a
  history it would have had. A resume (the same command on the run directory) asks that turn again
  and continues.
- Resume: the turns before the first turn without a final row (an answered row; under
  ``runner.retry: invalid`` a valid one) are not asked again: the history is rebuilt from their
  checkpointed rows (``raw_text``, ``answer_code``) and the conversation continues from there.
  Every turn from that one on is asked (again): when an earlier turn is re-asked, the history of the
  later ones may change, and their newest rows replace the old ones. Calls already in the cache
  (the same history) are served from it, so nothing paid is paid again.
- Rows without a ``question_position`` (the no-persona control, an independent design) are asked
  as single-question conversations by the ordinary batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from simsurvey.respondents.base import Request, Result

if TYPE_CHECKING:  # the runner's state; imported for the annotation only (no import cycle)
    from simsurvey.runner._administer import _Run


#: The runner's "not answered in this pass" sentinel (defined here, the lower module, so that the
#: runner and this module share the one object; :data:`simsurvey.runner._administer.DEFERRED`).
DEFERRED = Result(error="deferred to a later pass", extra={"deferred": True})


def _key(t: dict[str, Any], model: str) -> tuple:
    return (t["persona_id"], t["question_id"], t["condition_id"], t["replicate"], model)


def in_conversation(t: dict[str, Any]) -> bool:
    """Whether a trial is a turn of a sequential conversation (it has a question_position)."""
    pos = t.get("question_position")
    return t["persona_id"] is not None and pos is not None and not pd.isna(pos)


@dataclass
class Conversation:
    """One (persona, replicate)'s turns in asking order, and where this run starts.

    Attributes:
        persona_id: The persona.
        replicate: The replicate.
        turns: Every trial of the conversation, by question_position.
        start: Index of the first turn this run asks (the turns before it have final rows).
        done: The final checkpointed rows of ``turns[:start]`` (the history's answers).
    """

    persona_id: int
    replicate: int
    turns: list[dict[str, Any]]
    start: int = 0
    done: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return len(self.turns) - self.start


def plan(records: Sequence[dict[str, Any]], final_rows: dict[tuple, dict[str, Any]],
         model: str) -> tuple[list[dict[str, Any]], list[Conversation]]:
    """Split the design's trials into ordinary rows and conversations with turns left to ask.

    Args:
        records: All trials of the design (dicts with the trial columns).
        final_rows: Checkpointed final rows by row key (persona_id, question_id, condition_id,
            replicate, model).
        model: The model name (part of the row key).

    Returns:
        (the non-conversation trials, as given; the conversations with at least one turn to ask,
        each starting at its first turn without a final row).
    """
    single: list[dict[str, Any]] = []
    by_conv: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for t in records:
        if in_conversation(t):
            by_conv.setdefault((t["persona_id"], t["replicate"]), []).append(t)
        else:
            single.append(t)
    convs = []
    for (pid, rep), turns in by_conv.items():
        turns = sorted(turns, key=lambda t: int(t["question_position"]))
        start = 0
        while start < len(turns) and _key(turns[start], model) in final_rows:
            start += 1
        if start < len(turns):
            convs.append(Conversation(pid, rep, turns, start, [final_rows[_key(t, model)] for t in turns[:start]]))
    return single, convs


def assistant_text(req: Request, text: str | None, answer_code: str | None) -> str:
    """What the model answered, as the next turn's assistant message: the text it generated, or
    (logprob-only elicitation) the displayed label of the option it chose."""
    if req.elicitation != "logprobs":
        return text or ""
    order = list(req.context.get("option_order") or ())
    if answer_code is not None and answer_code in order and len(req.labels) == len(order):
        return req.labels[order.index(answer_code)]
    return text or ""


def question_message(state: _Run, req: Request, t: dict[str, Any]) -> dict[str, str]:
    """The user message of a turn after the first: the question as rendered for this row, without
    the persona (which the conversation carries once, at its top)."""
    msg = dict(req.messages[-1])
    pid = t["persona_id"]
    if state.prompt.persona_role != "system" and pid in state.cues:
        persona = state.prompt.persona_template.format(cue=state.cues[pid]).strip() + "\n\n"
        msg["content"] = msg["content"].removeprefix(persona)
    return msg


def with_history(state: _Run, req: Request, t: dict[str, Any], history: list[dict[str, str]]) -> Request:
    """Turn ``t``'s request after ``history`` (the messages of the earlier turns)."""
    if not history:
        return req
    return dataclasses.replace(req, messages=(*history, question_message(state, req, t)))


def conversation_key(pid: int, rep: int) -> str:
    """The prefix key of one conversation: a backend keeps its KV cache per conversation."""
    return f"persona-{pid}/conversation-{rep}"


async def run_conversation(state: _Run, conv: Conversation) -> None:
    """Ask ``conv``'s remaining turns in order (module docstring); rows go to the checkpoint."""
    history: list[dict[str, str]] = []
    for t, row in zip(conv.turns[: conv.start], conv.done):
        req = _render(state, t, history)  # the history as it was asked (from the checkpointed rows)
        history = [*req.messages, {"role": "assistant", "content": assistant_text(req, row.get("raw_text"), row.get("answer_code"))}]
    done = list(conv.done)
    for i in range(conv.start, len(conv.turns)):
        t = conv.turns[i]
        if state.stopping:  # the circuit breaker tripped: start nothing new
            return
        req = _render(state, t, history)
        (res,) = await state.work([t], [req])
        if res is DEFERRED:  # answered in a later pass: the conversation goes on from this turn then
            state.deferred_conversations.append(dataclasses.replace(conv, start=i, done=done))
            return
        if res.error is not None:
            return  # the model never answered this turn: the later ones wait for a resume
        code = state.answer(req, res)[0]
        done.append({"raw_text": res.text, "answer_code": code})
        history = [*req.messages, {"role": "assistant", "content": assistant_text(req, res.text, code)}]


def _render(state: _Run, t: dict[str, Any], history: list[dict[str, str]]) -> Request:
    req = dataclasses.replace(state.render(t), prefix_key=conversation_key(t["persona_id"], t["replicate"]))
    return with_history(state, req, t, history)

