"""A tiny instrument, personas and design trials for the runner tests (and their subprocesses)."""

from __future__ import annotations

import pandas as pd

from simsurvey.instruments.models import Instrument, Option, Question


def make_instrument() -> Instrument:
    """Two questions: a 4-point ordinal and a yes/no."""
    q1 = Question(id="trust", text="How much do you trust the government?", kind="ordinal", options=(
        Option(code="1", label="A great deal"), Option(code="2", label="Somewhat"),
        Option(code="3", label="Not much"), Option(code="4", label="Not at all"),
    ))
    q2 = Question(id="vote", text="Did you vote in the last election?", kind="single_choice", options=(
        Option(code="yes", label="Yes, I voted"), Option(code="no", label="No, I did not"),
    ))
    return Instrument(id="mini", title="Mini", questions=(q1, q2))


def make_personas(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "persona_id": pd.array(range(n), dtype="int64"),
        "weight": 1.0,
        "sex": ["female", "male"] * (n // 2) + ["female"] * (n % 2),
        "age": "30-44",
        "cue": [f"You are person number {i}, a {('woman', 'man')[i % 2]} aged 30-44." for i in range(n)],
    })


def make_trials(instrument: Instrument, n_personas: int, replicates: int = 1, no_persona: bool = True) -> pd.DataFrame:
    rows = []
    pids: list[int | None] = list(range(n_personas)) + ([None] if no_persona else [])
    for pid in pids:
        for q in instrument.questions:
            for order_mode, label_style in (("as_is", "letters"), ("reversed", "numbers")):
                order = list(q.codes) if order_mode == "as_is" else list(reversed(q.codes))
                for rep in range(replicates):
                    rows.append({
                        "persona_id": pid, "question_id": q.id,
                        "condition_id": ("no_persona|" if pid is None else "") + f"{order_mode}|{label_style}",
                        "replicate": rep, "order_mode": order_mode, "label_style": label_style,
                        "neutral_option": False, "cue_style": "none" if pid is None else "attributes",
                        "option_order": order,
                    })
    df = pd.DataFrame(rows)
    df["persona_id"] = df["persona_id"].astype("Int64")
    return df
