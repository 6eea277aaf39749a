"""Randomized designs: which persona sees which question under which condition.

A *condition* is one option order (``as_is``, ``reversed``, ``shuffled``) × one label style
(``letters``, ``numbers``, ``text``), plus the neutral variant (the question's neutral option
shown) when ``design.neutral`` is on and the question has one. Rules:

- Ordinal questions are never shuffled: a scrambled scale is a different question, so
  ``shuffled`` is skipped for them (they get ``as_is``/``reversed`` only).
- A numeric question shows no options (its range is in the instruction), so it has one
  condition, ``as_is|value``, under every design: option order and label style do not apply.
- Non-substantive options (don't know, did not vote) stay last in every order, as on paper
  questionnaires; only the substantive options (and a shown neutral option, which sits at its
  canonical place in the scale) are reversed or shuffled.
- ``between``: each persona × question gets one condition; conditions are dealt from a
  repeated, seeded list so counts per question differ by at most 1. ``within``: every persona
  sees every condition. ``replicates`` repeats each persona row (0-based ``replicate``).
- ``no_persona``: per question × condition, ``no_persona_replicates`` rows with a null
  ``persona_id`` and ``cue_style`` "none"; condition ids are prefixed ``no_persona|``.
- ``shuffled`` draws a fresh order per trial. Every question has its own random stream derived
  from the seed and the question id, so adding a question leaves the others' design unchanged.
- A battery is one grid: all its items are shown to a persona under the same condition (dealt
  for the battery as for one question; a shuffled order is drawn once per persona x battery).
- Experiments: each experiment deals its arms between personas (a balanced, seeded deck: arm
  counts differ by at most 1; every replicate of a persona gets the persona's arm), and the
  conditions of its questions are dealt within each arm, so arm and condition are crossed and
  balanced. An experiment question's ``condition_id`` ends with ``|arm:<arm id>``; its rows carry
  ``experiment`` and ``arm`` (null on the rows of other questions). The no_persona control asks
  every arm.
- Context: under ``context: independent`` every trial is its own conversation and the position
  columns are null. Under ``sequential`` a conversation is one persona x replicate: its questions
  come in ``question_position`` order (0-based), the instrument order or, with ``question_order:
  randomized``, a random order of blocks drawn per conversation, where a battery is one block whose
  items stay together (in instrument order, or shuffled with ``item_order: randomized``;
  ``item_position`` is the 0-based place within the battery). ``previous_question`` is the
  question asked just before (null for the first). no_persona control rows stay single-question
  conversations (null positions). Persona rows are sorted by persona, replicate, position.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simsurvey.errors import UserError
from simsurvey.instruments.config import DesignConfig
from simsurvey.instruments.models import Instrument, Question

#: Columns of the design trials table (shared contract), in order.
DESIGN_COLUMNS: tuple[str, ...] = (
    "persona_id",
    "question_id",
    "condition_id",
    "replicate",
    "order_mode",
    "label_style",
    "neutral_option",
    "cue_style",
    "option_order",
    "experiment",
    "arm",
    "question_position",
    "previous_question",
    "item_position",
)


#: Design columns added with survey experiments and sequential questionnaires (issue 10): a
#: trials table built by hand may leave them out (they are null then).
CONTEXT_COLUMNS: tuple[str, ...] = ("experiment", "arm", "question_position", "previous_question", "item_position")


@dataclass(frozen=True)
class Condition:
    """One display condition of one question."""

    order_mode: str
    label_style: str
    neutral_option: bool

    @property
    def id(self) -> str:
        """Readable slug: ``reversed|numbers``, ``as_is|letters|neutral``."""
        return f"{self.order_mode}|{self.label_style}" + ("|neutral" if self.neutral_option else "")


def _stream(seed: int, *names: object) -> np.random.Generator:
    # SHA-256 rather than hash(): stable across processes and Python versions.
    text = ":".join([str(seed), "design", *map(str, names)])
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


#: The one condition of a numeric question: no option list is shown, so neither option order nor
#: label style applies; its label style ``value`` says the answer is a value on the scale.
NUMERIC_CONDITION = ("as_is", "value")


def question_conditions(question: Question, cfg: DesignConfig) -> list[Condition]:
    """The conditions a question is shown under (ordinal questions skip ``shuffled``; a numeric
    question has the one condition ``as_is|value``: orders and labels do not apply to it)."""
    if question.kind == "numeric":
        return [Condition(*NUMERIC_CONDITION, False)]
    orders = [o for o in cfg.orders if not (o == "shuffled" and question.kind == "ordinal")]
    neutrals = [False, True] if cfg.neutral and question.has_neutral else [False]
    return [Condition(o, lab, n) for o in orders for lab in cfg.labels for n in neutrals]


def option_order(question: Question, condition: Condition, rng: np.random.Generator | None = None) -> list[str]:
    """Displayed option codes, in display order, for one trial.

    Non-substantive options stay last in canonical order; the rest are kept, reversed or
    shuffled (``rng`` is required for ``shuffled``).
    """
    shown = question.displayed_codes(neutral=condition.neutral_option)
    tail = [c for c in shown if question.option(c).non_substantive]
    body = [c for c in shown if not question.option(c).non_substantive]
    if condition.order_mode == "reversed":
        body = body[::-1]
    elif condition.order_mode == "shuffled":
        if rng is None:
            raise ValueError("shuffled order needs an rng")
        body = [body[i] for i in rng.permutation(len(body))]
    elif condition.order_mode != "as_is":
        raise ValueError(f"unknown order mode {condition.order_mode!r}")
    return body + tail


def _deal(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """Indices 0..k-1 for n units: counts differ by at most 1; which get the extra is random."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = rng.permutation(k)
    deck = np.tile(first, -(-n // k))[:n]
    return deck[rng.permutation(n)]


def _blocks(instrument: Instrument) -> list[list[str]]:
    """Question ids in administration blocks: a battery's items are one block, others alone."""
    out: list[list[str]] = []
    for q in instrument.questions:
        if q.battery is not None and out and instrument.question(out[-1][0]).battery == q.battery:
            out[-1].append(q.id)
        else:
            out.append([q.id])
    return out


def conversation_order(instrument: Instrument, cfg: DesignConfig, *, seed: int, persona_id: int,
                       replicate: int) -> list[str]:
    """The order one persona x replicate conversation asks the questions in (``sequential``)."""
    blocks = [list(b) for b in _blocks(instrument)]
    if cfg.question_order == "randomized":
        perm = _stream(seed, "question_order", persona_id, replicate).permutation(len(blocks))
        blocks = [blocks[i] for i in perm]
    if cfg.item_order == "randomized":
        for b in blocks:
            bid = instrument.question(b[0]).battery
            if bid is not None and len(b) > 1:
                perm = _stream(seed, "item_order", persona_id, replicate, bid).permutation(len(b))
                b[:] = [b[i] for i in perm]
    return [qid for b in blocks for qid in b]


def build_design(personas: pd.DataFrame, instrument: Instrument, cfg: DesignConfig, *, seed: int) -> pd.DataFrame:
    """Build the design trials table: one row per respondent call to make.

    Args:
        personas: ``personas.parquet`` (only ``persona_id`` is used).
        instrument: The questions to ask.
        cfg: Conditions, assignment, replicates and the no-persona control.
        seed: Run seed; the same seed gives the same table.

    Returns:
        Columns ``persona_id`` (Int64, null for no_persona rows), ``question_id``,
        ``condition_id``, ``replicate``, ``order_mode``, ``label_style``, ``neutral_option``,
        ``cue_style``, ``option_order`` (list of codes in display order), ``experiment``,
        ``arm``, ``question_position``, ``previous_question``, ``item_position`` (module
        docstring). Persona rows come first, sorted by persona then question (so a persona's
        prompts share a prefix; under ``sequential`` by persona, replicate, position), then the
        no_persona rows.

    Raises:
        UserError: no persona_id column, duplicate persona ids, or a question left with no
            condition (e.g. ``orders: [shuffled]`` for an ordinal question).
    """
    if "persona_id" not in personas.columns:
        raise UserError("personas: no persona_id column")
    pids = pd.to_numeric(personas["persona_id"]).to_numpy(dtype="int64")
    if len(np.unique(pids)) != len(pids):
        raise UserError("personas: duplicate persona_id values")
    pids = np.sort(pids)
    n = len(pids)

    cols: dict[str, list] = {c: [] for c in DESIGN_COLUMNS}
    fixed: dict[tuple[str, Condition], list[str]] = {}  # as_is / reversed orders never change
    grid: dict[tuple[int, str, int], list[str]] = {}  # a battery's shuffled order per persona

    # Per question, once: add() and the position pass run per row.
    experiment_of = {q.id: instrument.experiment_of(q.id) for q in instrument.questions}
    battery_of = {q.id: q.battery for q in instrument.questions}

    def add(pid: int | None, q: Question, cond: Condition, rep: int, cue: str, prefix: str,
            rng: np.random.Generator, arm: str | None) -> None:
        cols["persona_id"].append(pid)
        cols["question_id"].append(q.id)
        exp = experiment_of[q.id]
        cols["condition_id"].append(prefix + cond.id + (f"|arm:{arm}" if arm is not None else ""))
        cols["experiment"].append(exp.id if exp is not None else None)
        cols["arm"].append(arm)
        cols["replicate"].append(rep)
        cols["order_mode"].append(cond.order_mode)
        cols["label_style"].append(cond.label_style)
        cols["neutral_option"].append(cond.neutral_option)
        cols["cue_style"].append(cue)
        if cond.order_mode == "shuffled" and q.battery is not None and pid is not None:
            # One grid, one displayed order: a battery's items share the persona's draw.
            key = (pid, q.battery, rep)
            if key not in grid:
                grid[key] = option_order(q, cond, rng)
            cols["option_order"].append(list(grid[key]))
        elif cond.order_mode == "shuffled":
            cols["option_order"].append(option_order(q, cond, rng))
        else:
            key = (q.id, cond)
            if key not in fixed:
                fixed[key] = option_order(q, cond)
            cols["option_order"].append(list(fixed[key]))

    # Arms are dealt between personas, one deck per experiment (its own stream).
    arms: dict[str, np.ndarray] = {}
    for e in instrument.experiments:
        arms[e.id] = _deal(_stream(seed, "experiment", e.id), len(e.arms), n)

    per_q: list[tuple[Question, list[Condition], np.ndarray, np.random.Generator]] = []
    battery_idx: dict[str, np.ndarray] = {}
    for q in instrument.questions:
        conds = question_conditions(q, cfg)
        if not conds:
            raise UserError(
                f"design.orders: question '{q.id}' is ordinal and is never shuffled; "
                "add as_is or reversed to design.orders"
            )
        rng = _stream(seed, q.id)
        exp = experiment_of[q.id]
        if q.battery is not None and q.battery in battery_idx:
            # A battery is one grid: every item is shown under the persona's condition of the first.
            per_q.append((q, conds, battery_idx[q.battery], rng))
            continue
        if cfg.assignment == "between":
            # Shuffle the condition list first so which conditions get the extra persona
            # (when n is not a multiple) is random too, then deal a permutation. In an
            # experiment the conditions are dealt within each arm (arm x condition balanced).
            if exp is None:
                assigned = _deal(rng, len(conds), n)
            else:
                assigned = np.zeros(n, dtype=np.int64)
                for a in range(len(exp.arms)):
                    members = np.flatnonzero(arms[exp.id] == a)
                    assigned[members] = _deal(rng, len(conds), len(members))
            cond_idx = assigned.reshape(n, 1)
        else:
            cond_idx = np.tile(np.arange(len(conds)), (n, 1))
        if q.battery is not None:
            battery_idx[q.battery] = cond_idx
        per_q.append((q, conds, cond_idx, rng))

    def arm_of(q: Question, i: int) -> str | None:
        exp = experiment_of[q.id]
        return None if exp is None else exp.arms[int(arms[exp.id][i])].id

    # Persona rows, persona-major. Each question's stream is consumed in this fixed order.
    for i, pid in enumerate(pids):
        for q, conds, cond_idx, rng in per_q:
            for ci in cond_idx[i]:
                for rep in range(cfg.replicates):
                    add(int(pid), q, conds[ci], rep, cfg.cue, "", rng, arm_of(q, i))
    n_persona_rows = len(cols["persona_id"])
    if cfg.no_persona:
        for q, conds, _, _ in per_q:
            rng = _stream(seed, q.id, "no_persona")
            exp = experiment_of[q.id]
            for arm in (exp.arm_ids if exp is not None else (None,)):
                for cond in conds:
                    for rep in range(cfg.no_persona_replicates):
                        add(None, q, cond, rep, "none", "no_persona|", rng, arm)

    total = len(cols["persona_id"])
    position: list[int | None] = [None] * total
    previous: list[str | None] = [None] * total
    item_pos: list[int | None] = [None] * total
    if cfg.context == "sequential":
        batteries = instrument.batteries
        orders: dict[tuple[int, int], tuple[list[str], dict[str, int]]] = {}
        for r in range(n_persona_rows):
            key = (cols["persona_id"][r], cols["replicate"][r])
            if key not in orders:
                asked = conversation_order(instrument, cfg, seed=seed, persona_id=key[0], replicate=key[1])
                orders[key] = (asked, {qid: j for j, qid in enumerate(asked)})
            asked, where = orders[key]
            qid = cols["question_id"][r]
            j = where[qid]
            position[r] = j
            previous[r] = asked[j - 1] if j > 0 else None
            bid = battery_of[qid]
            if bid is not None:
                item_pos[r] = sorted(where[i] for i in batteries[bid]).index(j)
    cols["question_position"] = position
    cols["previous_question"] = previous
    cols["item_position"] = item_pos

    out = pd.DataFrame(
        {
            "persona_id": pd.array(cols["persona_id"], dtype="Int64"),
            "question_id": pd.array(cols["question_id"], dtype="string"),
            "condition_id": pd.array(cols["condition_id"], dtype="string"),
            "replicate": np.asarray(cols["replicate"], dtype="int64"),
            "order_mode": pd.array(cols["order_mode"], dtype="string"),
            "label_style": pd.array(cols["label_style"], dtype="string"),
            "neutral_option": np.asarray(cols["neutral_option"], dtype=bool),
            "cue_style": pd.array(cols["cue_style"], dtype="string"),
            "option_order": pd.Series(cols["option_order"], dtype=object),
            "experiment": pd.array(cols["experiment"], dtype="string"),
            "arm": pd.array(cols["arm"], dtype="string"),
            "question_position": pd.array(cols["question_position"], dtype="Int64"),
            "previous_question": pd.array(cols["previous_question"], dtype="string"),
            "item_position": pd.array(cols["item_position"], dtype="Int64"),
        }
    )
    if cfg.context == "sequential" and n_persona_rows:
        head = out.iloc[:n_persona_rows].sort_values(
            ["persona_id", "replicate", "question_position"], kind="stable")
        out = pd.concat([head, out.iloc[n_persona_rows:]], ignore_index=True)
    return out
