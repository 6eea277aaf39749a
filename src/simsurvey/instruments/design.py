"""Randomized designs: which persona sees which question under which condition.

A *condition* is one option order (``as_is``, ``reversed``, ``shuffled``) × one label style
(``letters``, ``numbers``, ``text``), plus the neutral variant (the question's neutral option
shown) when ``design.neutral`` is on and the question has one. Rules:

- Ordinal questions are never shuffled: a scrambled scale is a different question, so
  ``shuffled`` is skipped for them (they get ``as_is``/``reversed`` only).
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
)


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


def question_conditions(question: Question, cfg: DesignConfig) -> list[Condition]:
    """The conditions a question is shown under (ordinal questions skip ``shuffled``)."""
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
        ``cue_style``, ``option_order`` (list of codes in display order). Persona rows come
        first, sorted by persona then question (so a persona's prompts share a prefix), then
        the no_persona rows.

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

    def add(pid: int | None, q: Question, cond: Condition, rep: int, cue: str, prefix: str, rng: np.random.Generator) -> None:
        cols["persona_id"].append(pid)
        cols["question_id"].append(q.id)
        cols["condition_id"].append(prefix + cond.id)
        cols["replicate"].append(rep)
        cols["order_mode"].append(cond.order_mode)
        cols["label_style"].append(cond.label_style)
        cols["neutral_option"].append(cond.neutral_option)
        cols["cue_style"].append(cue)
        if cond.order_mode == "shuffled":
            cols["option_order"].append(option_order(q, cond, rng))
        else:
            key = (q.id, cond)
            if key not in fixed:
                fixed[key] = option_order(q, cond)
            cols["option_order"].append(list(fixed[key]))

    per_q: list[tuple[Question, list[Condition], np.ndarray, np.random.Generator]] = []
    for q in instrument.questions:
        conds = question_conditions(q, cfg)
        if not conds:
            raise UserError(
                f"design.orders: question '{q.id}' is ordinal and is never shuffled; "
                "add as_is or reversed to design.orders"
            )
        rng = _stream(seed, q.id)
        if cfg.assignment == "between":
            # Shuffle the condition list first so which conditions get the extra persona
            # (when n is not a multiple) is random too, then deal a permutation.
            k = len(conds)
            first = rng.permutation(k)
            deck = np.tile(first, -(-n // k))[:n] if n else np.zeros(0, dtype=int)
            assigned = deck[rng.permutation(n)]
            cond_idx = assigned.reshape(n, 1)
        else:
            cond_idx = np.tile(np.arange(len(conds)), (n, 1))
        per_q.append((q, conds, cond_idx, rng))

    # Persona rows, persona-major. Each question's stream is consumed in this fixed order.
    for i, pid in enumerate(pids):
        for q, conds, cond_idx, rng in per_q:
            for ci in cond_idx[i]:
                for rep in range(cfg.replicates):
                    add(int(pid), q, conds[ci], rep, cfg.cue, "", rng)
    if cfg.no_persona:
        for q, conds, _, _ in per_q:
            rng = _stream(seed, q.id, "no_persona")
            for cond in conds:
                for rep in range(cfg.no_persona_replicates):
                    add(None, q, cond, rep, "none", "no_persona|", rng)

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
        }
    )
    return out
