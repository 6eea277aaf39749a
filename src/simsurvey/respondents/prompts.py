"""Prompt rendering: one design trial -> one :class:`~simsurvey.respondents.base.Request`.

The persona text comes first (a system message by default, or the start of the user message)
and the question after it, so every question of one persona shares a token prefix that
providers' prefix caches and the local backend's KV cache reuse. The no_persona control omits
the persona part. The chat template is applied by the backend, not here.

Label styles:

- ``letters``: ``A. Strongly agree`` ... the answer is a letter;
- ``numbers``: ``1. Strongly agree`` ... the answer is a number;
- ``text``: options listed as bullets, the answer is the option text itself (labels are the
  option texts).

A numeric question shows no option list: its range, unit and any non-substantive options are
named in ``instruction_numeric`` ("Answer with a whole number from 0 to 100."), whatever the
trial's label style (the design gives it one condition). Its request's ``labels`` are the scale's
values when logprob elicitation can read it (:func:`simsurvey.respondents.numeric.logprob_labels`),
else empty.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from simsurvey.errors import UserError
from simsurvey.instruments.models import Experiment, Question
from simsurvey.respondents.base import Request
from simsurvey.respondents.config import ModelConfig
from simsurvey.respondents.prompt_config import PromptConfig

LABEL_STYLES: tuple[str, ...] = ("letters", "numbers", "text")


def display_labels(option_order: Sequence[str], label_style: str, question: Question) -> tuple[str, ...]:
    """The labels shown for the options, in display order.

    Args:
        option_order: Canonical option codes in display order.
        label_style: ``letters`` (A, B, ...), ``numbers`` (1, 2, ...) or ``text`` (the option texts).
        question: The question the codes belong to.

    Returns:
        One label per displayed option.

    Raises:
        UserError: an unknown label style or option code, a duplicate code, more than 26
            options with letters, or two options with the same text under ``text`` labels.
    """
    codes = set(question.codes)
    for code in option_order:
        if code not in codes:
            raise UserError(f"question '{question.id}': option_order has unknown option code {code!r}")
    if len(set(option_order)) != len(option_order):
        raise UserError(f"question '{question.id}': option_order repeats an option code: {list(option_order)}")
    n = len(option_order)
    if label_style == "letters":
        if n > len(string.ascii_uppercase):
            raise UserError(f"question '{question.id}': {n} options, letters labels support at most 26")
        return tuple(string.ascii_uppercase[:n])
    if label_style == "numbers":
        return tuple(str(i + 1) for i in range(n))
    if label_style == "text":
        labels = tuple(question.option(c).label for c in option_order)
        folded = [lbl.strip().casefold() for lbl in labels]
        if len(set(folded)) != n:
            raise UserError(f"question '{question.id}': two options have the same text; text labels cannot tell them apart")
        return labels
    raise UserError(f"label_style: unknown value {label_style!r}; expected one of {', '.join(LABEL_STYLES)}")


def _instruction(prompt: PromptConfig, label_style: str, multi: bool) -> str:
    key = f"instruction_{'multi_' if multi else ''}{label_style}"
    return getattr(prompt, key)


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def numeric_instruction(question: Question, prompt: PromptConfig) -> str:
    """The instruction of a numeric question: its range, unit and non-substantive options."""
    scale = question.scale
    assert scale is not None  # a numeric question always has one (validated)
    if scale.step is None:
        number = "a number"
    elif scale.step == 1:
        number = "a whole number"
    else:
        number = f"a number in steps of {_fmt_number(scale.step)}"
    nonsub = [o.label for o in question.options if o.non_substantive]
    extra = (", or say " + " or ".join(f'"{lbl}"' for lbl in nonsub)) if nonsub else ""
    return prompt.instruction_numeric.format(number=number, min=_fmt_number(scale.min), max=_fmt_number(scale.max),
                                             unit=f" {scale.unit}" if scale.unit else "", nonsubstantive=extra)


def render_question(
    question: Question, option_order: Sequence[str], label_style: str, prompt: PromptConfig
) -> str:
    """The question part of the prompt (question text, option lines, instruction)."""
    if question.kind == "numeric":
        return prompt.question_template_numeric.format(
            question=question.text, instruction=numeric_instruction(question, prompt)).strip()
    labels = display_labels(option_order, label_style, question)
    line = getattr(prompt, f"option_template_{label_style}")
    options = prompt.option_separator.join(
        line.format(label=lbl, text=question.option(code).label) for lbl, code in zip(labels, option_order)
    )
    instruction = _instruction(prompt, label_style, question.kind == "multi_select")
    # A battery item shows the battery's shared stem above its own text (the grid's question).
    text = f"{question.stem.strip()}\n\n{question.text}" if question.stem else question.text
    return prompt.question_template.format(question=text, options=options, instruction=instruction).strip()


def render_messages(
    *, cue: str | None, question: Question, option_order: Sequence[str], label_style: str, prompt: PromptConfig
) -> tuple[dict[str, str], ...]:
    """Chat messages for one trial: persona first, then the question.

    Args:
        cue: The persona text, or None for the no_persona control.
        question: The question asked.
        option_order: Canonical option codes in display order.
        label_style: ``letters``, ``numbers`` or ``text``.
        prompt: The prompt templates.
    """
    body = render_question(question, option_order, label_style, prompt)
    if cue is None:
        if prompt.no_persona_system:
            return ({"role": "system", "content": prompt.no_persona_system}, {"role": "user", "content": body})
        return ({"role": "user", "content": body},)
    persona = prompt.persona_template.format(cue=cue).strip()
    if prompt.persona_role == "system":
        return ({"role": "system", "content": persona}, {"role": "user", "content": body})
    return ({"role": "user", "content": f"{persona}\n\n{body}"},)


def render_request(
    *,
    cue: str | None,
    question: Question,
    option_order: Sequence[str],
    label_style: str,
    prompt: PromptConfig,
    model: ModelConfig,
    seed: int | None,
    prefix_key: str | None,
    context: dict,
    experiment: Experiment | None = None,
    arm: str | None = None,
) -> Request:
    """Render one design trial into a backend request.

    Args:
        cue: The persona text (``personas.parquet`` ``cue``), or None for the no_persona control.
        question: The question asked.
        option_order: Canonical option codes in display order.
        label_style: ``letters``, ``numbers`` or ``text``.
        prompt: The prompt templates.
        model: The model config (elicitation, temperature, max_tokens).
        seed: Per-request sampling seed.
        prefix_key: Shared-prefix id (e.g. the persona id); None disables prefix reuse.
        context: What baselines answer from; the runner supplies at least ``persona`` (dict of
            demographic codes, or None). ``question_id``, ``option_order``, ``substantive_codes``,
            ``nonsubstantive_codes`` and ``kind`` are filled in here when absent.
        experiment: The survey experiment the question belongs to, or None.
        arm: The trial's arm of ``experiment``: the question is asked as that arm words it
            (:meth:`~simsurvey.instruments.models.Experiment.apply`: its text replaced, its vignette
            shown before it); ignored without an experiment.

    Returns:
        The request, with ``labels`` = the displayed labels in display order.

    Raises:
        UserError: an arm the experiment does not have.
    """
    if experiment is not None and arm is not None:
        if arm not in experiment.arm_ids:
            raise UserError(f"question '{question.id}': arm '{arm}' is not an arm of experiment "
                            f"'{experiment.id}' ({', '.join(experiment.arm_ids)})")
        question = experiment.apply(question, arm)
    if question.kind == "numeric":
        from simsurvey.respondents.numeric import logprob_labels

        # Logprob elicitation reads the scale's values (one bin each); the answer is text otherwise.
        value_labels = logprob_labels(question)
        labels = value_labels or ()
        if value_labels:
            option_order = question.substantive_codes
    else:
        labels = display_labels(option_order, label_style, question)
    messages = render_messages(
        cue=cue, question=question, option_order=option_order, label_style=label_style, prompt=prompt
    )
    ctx = {
        "question_id": question.id,
        "option_order": tuple(option_order),
        "substantive_codes": question.substantive_codes,
        "nonsubstantive_codes": tuple(o.code for o in question.options if o.non_substantive),
        "kind": question.kind,
        "battery": question.battery,
        "scale": question.scale.model_dump() if question.scale is not None else None,
        "persona": None,
        **context,
    }
    return Request(
        messages=messages,
        labels=labels,
        elicitation=model.elicitation,
        temperature=model.temperature,
        max_tokens=model.max_tokens,
        seed=seed,
        prefix_key=prefix_key if cue is not None else None,
        context=ctx,
    )
