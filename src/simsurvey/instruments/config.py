"""Config of the survey instrument and the randomized design. Owned by instruments/."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OrderMode = Literal["as_is", "reversed", "shuffled"]
LabelStyle = Literal["letters", "numbers", "text"]
CueStyle = Literal["attributes", "backstory", "name"]


class SurveyConfig(BaseModel):
    """``survey:`` — which instrument to administer and which human reference data to compare with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instrument: str = Field(default="surveys/politics.yaml", description="Path of the instrument YAML.")
    reference: list[str] = Field(
        default_factory=lambda: ["cces2016", "anes1996"],
        description=(
            "Human reference data, in priority order: built-in data set ids (cces2016, anes1996) "
            "or paths of mapping YAML files describing a user's own data (CSV, parquet, .dta, .sav)."
        ),
    )
    combine: Literal["first", "all"] = Field(
        default="first",
        description=(
            "first: each question's human answers come from the first listed source that has it; "
            "all: keep every source's answers (tell them apart by the `source` column)."
        ),
    )

    accept_uncovered: bool | list[str] = Field(
        default=False,
        description="Personas whose attribute code no human respondent of the reference has (no human "
        "counterpart) stop the run before any model call; true (or a list of attribute names) accepts them, "
        "and the report counts them.",
    )

    @field_validator("reference")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"'{dup[0]}' is listed twice")
        return v


class DesignConfig(BaseModel):
    """``design:`` — the randomized design (conditions, assignment, replicates, cue style).

    A condition is one option order × one label style (× the neutral variant when ``neutral``
    and the question has a neutral option). Ordinal questions are never shuffled: a scrambled
    scale is not the same question, so ``shuffled`` is skipped for them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cue: CueStyle = Field(default="attributes", description="Persona cue style: attributes, backstory or name.")
    orders: list[OrderMode] = Field(
        default_factory=lambda: ["as_is", "reversed"],
        min_length=1,
        description="Option orders: as_is, reversed, shuffled (shuffled is skipped for ordinal questions).",
    )
    labels: list[LabelStyle] = Field(
        default_factory=lambda: ["letters", "numbers"],
        min_length=1,
        description="Option label styles: letters (A, B, ...), numbers (1, 2, ...), text (the option text).",
    )
    neutral: bool = Field(
        default=False,
        description="Add a variant showing each question's neutral option (questions that have one).",
    )
    no_persona: bool = Field(
        default=True, description="Add a no-persona control: the same questions asked with no persona."
    )
    assignment: Literal["between", "within"] = Field(
        default="between",
        description="between: each persona x question gets one condition (balanced); within: every condition.",
    )
    replicates: int = Field(
        default=1, ge=1, description="Calls per persona x question x condition (for sampled elicitation)."
    )
    no_persona_replicates: int = Field(
        default=10, ge=1, description="No-persona calls per question x condition."
    )
    context: Literal["independent", "sequential"] = Field(
        default="independent",
        description=(
            "independent: every question in a fresh conversation; sequential: one conversation per "
            "persona x replicate, the questions asked in turn with the earlier answers in context."
        ),
    )
    question_order: Literal["fixed", "randomized"] = Field(
        default="fixed",
        description=(
            "sequential only: fixed (instrument order) or randomized per conversation (a battery "
            "moves as one block); recorded as question_position / previous_question."
        ),
    )
    item_order: Literal["fixed", "randomized"] = Field(
        default="randomized",
        description="sequential only: order of a battery's items within it; recorded as item_position.",
    )

    @field_validator("orders", "labels")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"'{dup[0]}' is listed twice")
        return v

    @model_validator(mode="after")
    def _context(self) -> DesignConfig:
        if self.context == "sequential" and self.assignment == "within":
            # A conversation would ask every question once per condition.
            raise ValueError("assignment 'within' cannot be combined with context 'sequential'; use between")
        if self.context == "independent" and self.question_order == "randomized":
            raise ValueError("question_order 'randomized' needs context 'sequential' (independent questions have no order)")
        return self
