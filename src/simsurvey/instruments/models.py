"""Survey instrument models: options, questions, instruments.

Codes are strings everywhere (``"strong_democrat"``, ``"1"``); a question's options are listed
in their canonical order, which for an ordinal question is the scale order (position 0 is one
end of the scale). Answers are always recorded as canonical option codes, whatever order and
labels were displayed.

Validation lives on the models, so an instrument built in code is checked exactly like one
loaded from YAML: duplicate option codes, an ordinal question with fewer than two substantive
options, a single_choice question with fewer than two options shown, and a reference mapping onto an unknown option code are all rejected with a message
naming the question.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

QuestionKind = Literal["single_choice", "ordinal", "multi_select"]


def _to_code(value: Any) -> Any:
    """YAML reads ``1`` as an int and ``1.0`` as a float; codes and data values are strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _to_code_map(value: Any) -> Any:
    if isinstance(value, dict):
        return {_to_code(k): _to_code(v) for k, v in value.items()}
    return value


def _to_code_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_to_code(v) for v in value]
    return value


Code = Annotated[str, BeforeValidator(_to_code)]


class SelectedItem(BaseModel):
    """One option of a multi_select question answered by a yes/no variable of the data set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variable: str = Field(min_length=1, description="The yes/no variable (column) for this option.")
    yes: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        min_length=1, description="Values meaning the option is selected (e.g. [1]).")
    no: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        min_length=1, description="Values meaning it is not selected (e.g. [0]).")


class ReferenceMapping(BaseModel):
    """Where a question's human answers come from in one reference data set.

    A single variable mapped by ``codes``, or, for a multi_select question, one yes/no variable
    per option (``selected``): a respondent's answer is the set of options answered yes, as the
    ``"a|c"`` code, and ``none`` the option code of the empty set (e.g. "None of these").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="Reference data set id, e.g. 'cces2016' or 'anes1996'.")
    variable: str = Field(default="", description="Variable (column) in that data set (not with `selected`).")
    codes: Annotated[dict[str, str], BeforeValidator(_to_code_map)] = Field(
        default_factory=dict,
        description="Map from the data set's value (as a string, '1' not '1.0') to this question's option code."
    )
    missing: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        default=(),
        description="Data set values that mean 'no answer' (dropped and counted, like NaN).",
    )
    selected: dict[str, SelectedItem] = Field(
        default_factory=dict,
        description="multi_select only: option code -> its yes/no variable. A respondent missing any "
                    "of them is dropped and counted.",
    )
    none: Code | None = Field(
        default=None, description="With `selected`: the option code of a respondent who selected none.")
    where: dict[str, Annotated[tuple[str, ...], BeforeValidator(_to_code_list)]] = Field(
        default_factory=dict,
        description="Keep only respondents whose variable has one of these values, e.g. {year: [2018]}.",
    )
    note: str = Field(default="", description="How the data set's coding maps onto the options, and why.")

    @model_validator(mode="after")
    def _check(self) -> ReferenceMapping:
        if self.selected:
            if self.variable or self.codes:
                raise ValueError(f"reference {self.dataset}: give either variable/codes or selected, not both")
            for code, item in self.selected.items():
                both = set(item.yes) & set(item.no)
                if both:
                    raise ValueError(f"reference {self.dataset}: selected.{code}: value '{sorted(both)[0]}' is in"
                                     " both yes and no")
        else:
            if not self.variable:
                raise ValueError(f"reference {self.dataset}: variable is missing (or give selected)")
            if not self.codes:
                raise ValueError(f"reference {self.dataset}.{self.variable}: codes is missing")
            if self.none is not None:
                raise ValueError(f"reference {self.dataset}.{self.variable}: none is only for selected")
        return self

    @property
    def label(self) -> str:
        """The variable(s) the answers come from, for messages and provenance."""
        return self.variable or "+".join(item.variable for item in self.selected.values())


class Option(BaseModel):
    """One answer option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code = Field(description="Stable canonical code, recorded in every answer.")
    label: str = Field(min_length=1, description="Text shown to the respondent.")
    non_substantive: bool = Field(
        default=False, description="Don't know / refused / no opinion: kept out of substantive distributions."
    )
    neutral: bool = Field(
        default=False, description="Shown only in the design's neutral-option variant."
    )


class Question(BaseModel):
    """One survey question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Stable question id, recorded in every answer.")
    text: str = Field(min_length=1, description="Question wording shown to the respondent.")
    kind: QuestionKind = Field(
        description="single_choice (nominal), ordinal (options in scale order) or multi_select."
    )
    options: tuple[Option, ...] = Field(min_length=1, description="Options in canonical (scale) order.")
    reference: tuple[ReferenceMapping, ...] = Field(
        default=(), description="Where the human answers to this question come from."
    )
    source: str = Field(default="", description="Where the wording comes from (survey, variable, codebook).")
    notes: str = Field(default="", description="Anything a reader of the results should know.")

    @model_validator(mode="after")
    def _check(self) -> Question:
        seen: set[str] = set()
        for o in self.options:
            if o.code in seen:
                raise ValueError(f"question '{self.id}': duplicate option code '{o.code}'")
            seen.add(o.code)
        if self.kind == "ordinal" and len(self.substantive_codes) < 2:
            raise ValueError(
                f"question '{self.id}': an ordinal question needs at least 2 substantive options"
                f" (got {len(self.substantive_codes)})"
            )
        if self.kind == "single_choice" and len(self.displayed_codes()) < 2:
            # One option shown is no choice: every answer would be that option (or invalid).
            raise ValueError(
                f"question '{self.id}': a single_choice question needs at least 2 options shown"
                f" (got {len(self.displayed_codes())})"
            )
        datasets: set[str] = set()
        for ref in self.reference:
            if ref.dataset in datasets:
                raise ValueError(f"question '{self.id}': two reference mappings for dataset '{ref.dataset}'")
            datasets.add(ref.dataset)
            if ref.selected:
                where = f"question '{self.id}': reference {ref.dataset}"
                if self.kind != "multi_select":
                    raise ValueError(f"{where}: selected is only for multi_select questions (kind is {self.kind})")
                for code in ref.selected:
                    if code not in seen:
                        raise ValueError(f"{where}: selected names unknown option code '{code}'")
                if ref.none is not None and (ref.none not in seen or ref.none in ref.selected):
                    raise ValueError(f"{where}: none must be an option code not in selected (got '{ref.none}')")
            for value, code in ref.codes.items():
                if code not in seen:
                    raise ValueError(
                        f"question '{self.id}': reference {ref.dataset}.{ref.variable} maps value"
                        f" '{value}' to unknown option code '{code}'"
                    )
            both = set(ref.codes) & set(ref.missing)
            if both:
                raise ValueError(
                    f"question '{self.id}': reference {ref.dataset}.{ref.variable} lists value"
                    f" '{sorted(both)[0]}' both in codes and in missing"
                )
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        """All option codes in canonical order."""
        return tuple(o.code for o in self.options)

    @property
    def substantive_codes(self) -> tuple[str, ...]:
        """Codes of substantive, non-neutral options in canonical (scale) order."""
        return tuple(o.code for o in self.options if not o.non_substantive and not o.neutral)

    @property
    def has_neutral(self) -> bool:
        """True when the question has an option shown only in the neutral variant."""
        return any(o.neutral for o in self.options)

    def displayed_codes(self, *, neutral: bool = False) -> tuple[str, ...]:
        """Codes shown to a respondent, in canonical order (neutral options only if ``neutral``)."""
        return tuple(o.code for o in self.options if neutral or not o.neutral)

    def option(self, code: str) -> Option:
        """The option with this code (KeyError if none)."""
        for o in self.options:
            if o.code == code:
                return o
        raise KeyError(code)

    def reference_for(self, dataset: str) -> ReferenceMapping | None:
        """This question's mapping onto ``dataset``, or None."""
        for ref in self.reference:
            if ref.dataset == dataset:
                return ref
        return None


class Instrument(BaseModel):
    """A survey instrument: an id, a title and its questions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Instrument id.")
    title: str = Field(description="Human-readable title.")
    description: str = Field(default="", description="What the instrument measures and where it comes from.")
    questions: tuple[Question, ...] = Field(min_length=1, description="Questions in administration order.")

    @model_validator(mode="after")
    def _check(self) -> Instrument:
        seen: set[str] = set()
        for q in self.questions:
            if q.id in seen:
                raise ValueError(f"duplicate question id '{q.id}'")
            seen.add(q.id)
        return self

    @property
    def question_ids(self) -> tuple[str, ...]:
        """Question ids in administration order."""
        return tuple(q.id for q in self.questions)

    @property
    def datasets(self) -> tuple[str, ...]:
        """Reference data set ids any question maps onto, in first-seen order."""
        out: list[str] = []
        for q in self.questions:
            for ref in q.reference:
                if ref.dataset not in out:
                    out.append(ref.dataset)
        return tuple(out)

    def question(self, question_id: str) -> Question:
        """The question with this id (KeyError if none)."""
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)
