"""Answer parsing: a model's raw text -> a canonical option code.

The text is read through the labels that were displayed (``A``/``B``..., ``1``/``2``..., or the
option texts) and the display order, in tiers from the most to the least explicit; the first
tier that finds something decides:

1. the whole answer is one label, or starts with one in the form ``B.``/``B)``/``(B)``/``B:``
   (``"B"``, ``"(b)"``, ``"**B**"``, ``"B. Strongly agree"``, ``"Answer: 2"``);
2. a label after an answer marker (``answer is B``, ``I'd say B``, ``I choose option 2``);
3. a refusal (``As an AI``, ``I can't``, ``I don't have personal opinions``) -> ``refusal``;
4. labels standing alone anywhere (``"B, definitely"``); a capital letter used as a word
   (``"A good question"``, ``"I think"``) is not a label;
5. option texts (case/punctuation-insensitive, whole words; a longer text hides the shorter one
   inside it, so "Strongly agree" is not also "agree");
6. the whole answer is the beginning of exactly one option text (``"Strongly ag"``).

Two different answers in the deciding tier (``"A or B"``) are ambiguous: ``valid=False`` with a
reason. A number when letters were shown (or a letter when numbers were) is not an answer.
A non-substantive option (Don't know) is a valid answer with its code. For ``multi_select``
questions every label/text found is kept and the codes are joined with ``|`` in the question's
canonical order.

Why a row is not valid is recorded in the ``invalid_reason`` column with one of the codes in
:data:`INVALID_REASONS` (the parser gives ``empty``, ``refusal``, ``ambiguous`` and
``unparseable``; the numeric parser, :mod:`simsurvey.respondents.numeric`, adds ``out_of_range``;
the runner adds ``no_mass_on_options`` and ``error``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from simsurvey.instruments.models import Question

#: ``invalid_reason`` codes (a public contract: runs are compared across versions).
INVALID_REASONS: dict[str, str] = {
    "empty": "the model returned no text",
    "refusal": "the model declined to answer",
    "ambiguous": "the answer names several options",
    "unparseable": "no option label or text was found in the answer",
    "no_mass_on_options": "logprob elicitation: none of the top tokens is an option label",
    "out_of_range": "numeric question: the number is outside the scale (see simsurvey.respondents.numeric)",
    "error": "the call failed (see the error column); a resume asks again",
}


@dataclass(frozen=True)
class ParsedAnswer:
    """A parsed answer.

    Attributes:
        code: Canonical option code (``"a|c"`` for multi_select), or None.
        valid: True when exactly one answer (or one set, for multi_select) was found.
        refusal: True when the model declined to answer.
        reason: Why the answer is not valid, in words (None when valid).
        kind: The same as a code of :data:`INVALID_REASONS` (None when valid).
        value: A numeric question's number on the raw scale (None otherwise; set for an
            ``out_of_range`` answer too, for inspection).
    """

    code: str | None
    valid: bool
    refusal: bool
    reason: str | None
    kind: str | None = None
    value: float | None = None


_REFUSALS = re.compile(
    r"\b(as an ai|as a language model|as an artificial intelligence|i am an ai|i'm an ai"
    r"|i(?: can ?not| can't| won't| will not| am unable to| am not able to|'m unable to|'m not able to)"
    r" (?:answer|provide|share|express|give|choose|pick|select|respond|take|say|have|form|comply|help)"
    r"|i (?:do not|don't) have (?:personal |my own )?(?:opinions?|beliefs?|views?|preferences?|feelings?|political)"
    r"|i (?:do not|don't) (?:hold|form|express) (?:personal )?(?:opinions?|beliefs?|views?)"
    r"|i(?:'d| would) (?:prefer|rather) not (?:to )?(?:answer|say|share)"
    r"|i'm sorry,? but|i apologi[sz]e,? but|not appropriate for me to)\b"
)


def is_refusal(text: str) -> bool:
    """True when the text declines to answer (``As an AI``, ``I can't answer``...)."""
    return bool(_REFUSALS.search(_clean(text).casefold()))


_MARKERS = (
    r"(?:answer|choice|response|selection|option|pick)\s*(?:is|would be|will be|=|:|-)?"
    r"|(?:i(?:'d| would| will|'ll)?|let's|lets)\s+(?:say|choose|pick|select|go with|answer|opt for|vote for)"
    r"|(?:choose|chose|select|selected|pick|picked|go with|going with)"
)
_WRAP = "*_`\"'“”‘’ \t\n"


def _clean(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"[*_`]+", "", text).strip()


def _norm(text: str) -> str:
    """Lowercase, apostrophes dropped, other punctuation -> spaces: for text comparison."""
    text = text.casefold().replace("’", "").replace("'", "")
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def _label_style(labels: Sequence[str]) -> str:
    n = len(labels)
    if tuple(labels) == tuple(string.ascii_uppercase[:n]):
        return "letters"
    if tuple(labels) == tuple(str(i + 1) for i in range(n)):
        return "numbers"
    return "text"


def _label_regex(lbl: str, *, strict: bool) -> str:
    """A label standing alone. ``strict``: a capital ``A``/``I`` followed by a lowercase word is
    the English word ("A good point", "I think"), not a label; a lowercase letter never counts."""
    if lbl.isdigit():
        return r"(?<![0-9A-Za-z.$])" + lbl + r"(?![0-9A-Za-z%]|[.,][0-9])"
    word = r"|\s+(?!(?:or|and|nor|then|to)\b)[a-z]" if strict and lbl in {"A", "I"} else ""
    return r"(?<![0-9A-Za-z'.\-])" + lbl + r"(?![0-9A-Za-z'\-]|\.[A-Za-z]" + word + ")"


def _whole_or_leading(text: str, labels: Sequence[str]) -> list[int]:
    """Tier 1: the answer is one label, or starts with ``B.``/``B)``/``(B)``/``B:``/``B -``."""
    t = re.sub(
        r"^(?:my\s+|the\s+)?(?:final\s+)?(?:answer|choice|response|option)\s*(?:is)?\s*[:\-=]?\s*", "", text, flags=re.I
    )
    t = t.strip(_WRAP)
    core = t.rstrip(".!").strip("()[] ").strip(_WRAP)
    found: list[int] = []
    for i, lbl in enumerate(labels):
        if core.casefold() == lbl.casefold():
            found.append(i)
        elif re.match(r"^[(\[]?" + re.escape(lbl) + r"(?:[).\]:]|\s+[-–]\s)", t, flags=re.I):
            found.append(i)
    return found


def _after_markers(text: str, labels: Sequence[str]) -> list[int]:
    """Tier 2: a label right after an answer marker (``answer is B``, ``I'd say 2``)."""
    found: list[int] = []
    for i, lbl in enumerate(labels):
        head = r"(?i:\b(?:" + _MARKERS + r"))\s*[(\[\"']?"
        pats = [head + _label_regex(lbl, strict=False)]
        if not lbl.isdigit():
            # "I'd say b" but not "I'd say a moderate one".
            pats.append(head + lbl.lower() + r"(?![0-9A-Za-z'\-]|\s+[a-z])")
        if any(re.search(p, text) for p in pats):
            found.append(i)
    return found


def _standalone(text: str, labels: Sequence[str]) -> list[int]:
    """Tier 4: labels standing alone anywhere in the answer."""
    return [i for i, lbl in enumerate(labels) if re.search(_label_regex(lbl, strict=True), text)]


def _text_matches(text: str, option_texts: Sequence[str]) -> list[int]:
    """Tier 5: option texts inside the answer; the longest match wins where matches overlap."""
    t = f" {_norm(text)} "
    spans: list[tuple[int, int, int]] = []
    for i, opt in enumerate(option_texts):
        o = _norm(opt)
        if not o:
            continue
        start = t.find(f" {o} ")
        while start != -1:
            spans.append((start, start + len(o) + 2, i))
            start = t.find(f" {o} ", start + 1)
    spans.sort(key=lambda s: (-(s[1] - s[0]), s[0]))
    taken: list[tuple[int, int]] = []
    found: list[int] = []
    for a, b, i in spans:
        if any(a < tb - 1 and ta < b - 1 for ta, tb in taken):
            continue
        taken.append((a, b))
        if i not in found:
            found.append(i)
    return found


def _prefix_match(text: str, option_texts: Sequence[str]) -> list[int]:
    """Tier 6: the whole answer is the start of an option text (at least 3 characters)."""
    t = _norm(text)
    if len(t) < 3:
        return []
    return [i for i, opt in enumerate(option_texts) if _norm(opt).startswith(t)]


def _result(hits: list[int], option_order: Sequence[str], question: Question, tier: str) -> ParsedAnswer:
    codes = {option_order[i] for i in hits}
    if question.kind == "multi_select":
        joined = "|".join(c for c in question.codes if c in codes)
        return ParsedAnswer(code=joined, valid=True, refusal=False, reason=None)
    if len(codes) == 1:
        return ParsedAnswer(code=codes.pop(), valid=True, refusal=False, reason=None)
    shown = ", ".join(sorted(codes))
    return ParsedAnswer(code=None, valid=False, refusal=False, reason=f"ambiguous: {tier} match several options ({shown})",
                        kind="ambiguous")


def parse_answer(
    text: str | None, question: Question, option_order: Sequence[str], labels: Sequence[str]
) -> ParsedAnswer:
    """Map a model's raw answer to a canonical option code.

    Args:
        text: The generated text (None when the backend gave none).
        question: The question asked.
        option_order: Canonical option codes in display order.
        labels: The labels displayed, in display order (``display_labels``).

    Returns:
        The parsed answer; ``valid=False`` with a reason when there is no single answer.
    """
    if len(labels) != len(option_order):
        raise ValueError(f"{len(labels)} labels for {len(option_order)} options")
    if text is None or not text.strip():
        return ParsedAnswer(code=None, valid=False, refusal=False, reason="empty answer", kind="empty")
    clean = _clean(text)
    option_texts = [question.option(c).label for c in option_order]
    letters_or_numbers = _label_style(labels) != "text"

    tiers = [("label", _whole_or_leading), ("answer-marker label", _after_markers)] if letters_or_numbers else []
    for name, fn in tiers:
        hits = fn(clean, labels)
        if hits:
            if question.kind == "multi_select":
                hits = sorted(set(hits) | set(_standalone(clean, labels)))
            return _result(hits, option_order, question, name)

    # A whole answer equal to an option text ("Don't know") is an answer even if it sounds
    # like a refusal ("I'd rather not say" offered as an option).
    exact = [i for i, o in enumerate(option_texts) if _norm(o) == _norm(clean)]
    if exact:
        return _result(exact, option_order, question, "option text")
    if is_refusal(clean):
        return ParsedAnswer(code=None, valid=False, refusal=True, reason="refusal", kind="refusal")

    if letters_or_numbers:
        hits = _standalone(clean, labels)
        if hits:
            return _result(hits, option_order, question, "label")
    hits = _text_matches(clean, option_texts)
    if hits:
        return _result(hits, option_order, question, "option text")
    hits = _prefix_match(clean, option_texts)
    if len(hits) == 1:
        return _result(hits, option_order, question, "option text prefix")
    if hits:
        return ParsedAnswer(code=None, valid=False, refusal=False, reason="ambiguous: the answer begins several option texts",
                            kind="ambiguous")
    return ParsedAnswer(code=None, valid=False, refusal=False, reason="no option label or text found",
                        kind="unparseable")


def render_top_tokens(top: Sequence[tuple[str, float]], limit: int = 20) -> str:
    """The top tokens of a logprob answer as text, for ``raw_text``: ``"A" 0.412, " A" 0.176``.

    Tokens are JSON-quoted so a leading space or a newline stays visible.
    """
    import json
    import math
    from json.encoder import encode_basestring  # json.dumps(str, ensure_ascii=False), minus its ~1.5 us set-up

    return ", ".join(f"{encode_basestring(tok) if type(tok) is str else json.dumps(tok, ensure_ascii=False)} "
                     f"{math.exp(lp):.3f}" for tok, lp in list(top)[:limit])
