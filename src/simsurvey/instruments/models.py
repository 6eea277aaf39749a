"""Survey instrument models: options, questions, instruments.

Codes are strings everywhere (``"strong_democrat"``, ``"1"``); a question's options are listed
in their canonical order, which for an ordinal question is the scale order (position 0 is one
end of the scale). Answers are always recorded as canonical option codes, whatever order and
labels were displayed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QuestionKind = Literal["single_choice", "ordinal", "multi_select"]


class ReferenceMapping(BaseModel):
    """Where a question's human answers come from in one reference data set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="Reference data set id, e.g. 'cces2016' or 'anes1996'.")
    variable: str = Field(description="Variable (column) in that data set.")
    codes: dict[str, str] = Field(
        description="Map from the data set's value (as a string) to this question's option code."
    )


class Option(BaseModel):
    """One answer option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(description="Stable canonical code, recorded in every answer.")
    label: str = Field(description="Text shown to the respondent.")
    non_substantive: bool = Field(
        default=False, description="Don't know / refused / no opinion: kept out of substantive distributions."
    )
    neutral: bool = Field(
        default=False, description="Shown only in the design's neutral-option variant."
    )


class Question(BaseModel):
    """One survey question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str
    kind: QuestionKind
    options: tuple[Option, ...]
    reference: tuple[ReferenceMapping, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        """All option codes in canonical order."""
        return tuple(o.code for o in self.options)

    @property
    def substantive_codes(self) -> tuple[str, ...]:
        """Codes of substantive, non-neutral options in canonical (scale) order."""
        return tuple(o.code for o in self.options if not o.non_substantive and not o.neutral)

    def option(self, code: str) -> Option:
        for o in self.options:
            if o.code == code:
                return o
        raise KeyError(code)


class Instrument(BaseModel):
    """A survey instrument: an id, a title and its questions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    questions: tuple[Question, ...]

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)
