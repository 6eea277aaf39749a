"""Config of prompt templates. Owned by respondents/prompts.

Templates use ``str.format`` named fields. Each template may use only the placeholders listed
in its field's description; an unknown placeholder, a positional ``{}`` or a format spec is a
:class:`~simsurvey.errors.ConfigError` at config time (``prompt.question_template: ...``), not a
``KeyError`` in the middle of a run.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Placeholders each template may use.
ALLOWED_FIELDS: dict[str, frozenset[str]] = {
    "persona_template": frozenset({"cue"}),
    "no_persona_system": frozenset(),
    "question_template": frozenset({"question", "options", "instruction"}),
    "option_template_letters": frozenset({"label", "text"}),
    "option_template_numbers": frozenset({"label", "text"}),
    "option_template_text": frozenset({"label", "text"}),
    "instruction_letters": frozenset(),
    "instruction_numbers": frozenset(),
    "instruction_text": frozenset(),
    "instruction_multi_letters": frozenset(),
    "instruction_multi_numbers": frozenset(),
    "instruction_multi_text": frozenset(),
    "question_template_numeric": frozenset({"question", "instruction"}),
    "instruction_numeric": frozenset({"number", "min", "max", "unit", "nonsubstantive"}),
}


#: Placeholders a template must use (a persona template without {cue} would silently drop the persona).
REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    "persona_template": frozenset({"cue"}),
    "question_template": frozenset({"question", "options"}),
    "option_template_letters": frozenset({"label", "text"}),
    "option_template_numbers": frozenset({"label", "text"}),
    "option_template_text": frozenset({"text"}),
    "question_template_numeric": frozenset({"question"}),
    "instruction_numeric": frozenset({"min", "max"}),
}


def template_fields(template: str) -> set[str]:
    """The named placeholders of a ``str.format`` template.

    Raises:
        ValueError: on a malformed template, a positional ``{}``/``{0}`` field, an attribute or
            index access (``{cue.x}``) or a conversion/format spec (``{cue!r}``, ``{cue:>5}``).
    """
    names: set[str] = set()
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError("positional placeholder '{}' not allowed; use a named one")
        if not name.isidentifier():
            raise ValueError(f"placeholder '{{{name}}}' must be a plain name")
        if spec or conv:
            raise ValueError(f"placeholder '{{{name}}}' must not have a format spec or conversion")
        names.add(name)
    return names


class PromptConfig(BaseModel):
    """``prompt:`` — prompt templates (persona first, question after it).

    The persona text comes first (the system message, or the start of the user message) so
    prefix caches work; the chat template itself is applied by the backend.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    persona_role: Literal["system", "user"] = Field(
        default="system",
        description="Where the persona text goes: its own system message, or the start of the user message.",
    )
    persona_template: str = Field(
        default=(
            "You are taking part in a survey. Answer every question as the person described below "
            "would, in their own voice.\n\n{cue}"
        ),
        description="Persona part of the prompt. Placeholders: {cue} (the persona text from personas.parquet).",
    )
    no_persona_system: str = Field(
        default="",
        description="System message of the no_persona control (no placeholders); empty: no system message.",
    )
    question_template: str = Field(
        default="{question}\n\n{options}\n\n{instruction}",
        description="Question part. Placeholders: {question} (question text), {options} (rendered option lines), {instruction}.",
    )
    option_template_letters: str = Field(
        default="{label}. {text}", description="One option line, letters style. Placeholders: {label}, {text}."
    )
    option_template_numbers: str = Field(
        default="{label}. {text}", description="One option line, numbers style. Placeholders: {label}, {text}."
    )
    option_template_text: str = Field(
        default="- {text}",
        description="One option line, text style (the answer is the option text). Placeholders: {label}, {text}.",
    )
    option_separator: str = Field(default="\n", description="Joins the option lines.")
    instruction_letters: str = Field(
        default="Answer with the letter of one option.", description="Instruction line, letters style, single answer."
    )
    instruction_numbers: str = Field(
        default="Answer with the number of one option.", description="Instruction line, numbers style, single answer."
    )
    instruction_text: str = Field(
        default="Answer with the exact text of one option.", description="Instruction line, text style, single answer."
    )
    instruction_multi_letters: str = Field(
        default="Select all that apply. Answer with the letters of the options you select, separated by commas.",
        description="Instruction line, letters style, multi_select questions.",
    )
    instruction_multi_numbers: str = Field(
        default="Select all that apply. Answer with the numbers of the options you select, separated by commas.",
        description="Instruction line, numbers style, multi_select questions.",
    )
    instruction_multi_text: str = Field(
        default="Select all that apply. Answer with the exact texts of the options you select, separated by commas.",
        description="Instruction line, text style, multi_select questions.",
    )
    question_template_numeric: str = Field(
        default="{question}\n\n{instruction}",
        description="Question part of a numeric question (no option list). Placeholders: {question}, {instruction}.",
    )
    instruction_numeric: str = Field(
        default="Answer with {number} from {min} to {max}{unit}{nonsubstantive}.",
        description="Instruction line of a numeric question. Placeholders: {number} ('a whole number', 'a "
        "number', 'a number in steps of 0.5'), {min}, {max}, {unit} (' degrees' or empty), {nonsubstantive} "
        "(', or say \"Don't know\"' when the question has such options, else empty).",
    )

    @field_validator(*ALLOWED_FIELDS, mode="after")
    @classmethod
    def _known_placeholders(cls, value: str, info) -> str:  # noqa: ANN001 - pydantic's ValidationInfo
        used = template_fields(value)
        allowed = ALLOWED_FIELDS[info.field_name]
        unknown = sorted(used - allowed)
        if unknown:
            ok = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; allowed: {ok}")
        missing = sorted(REQUIRED_FIELDS.get(info.field_name, frozenset()) - used)
        if missing:
            raise ValueError(f"missing placeholder {{{missing[0]}}}")
        return value
