"""Numeric answers: a model's raw text -> a number on a bounded scale (e.g. a 0-100 thermometer).

Numbers are read as digits (``"70"``, ``"72.5"``) or English words up to 999 (``"seventy"``,
``"seventy-five"``, ``"a hundred"``), with the decorations people and models put around them
(``"about 70"``, ``"70/100"``, ``"70 out of 100"``, ``"70%"``, ``"70 degrees"``, ``"**70**"``,
``"Answer: 70"``); an ordinal (``"20th"``) is not a number. In tiers, the first that finds something decides (as in
:mod:`simsurvey.respondents.parsing`):

1. the answer starts with the number, after at most an answer marker and a hedge
   (``"70."``, ``"Answer: about 70 degrees"``, ``"I'd say 70"``);
2. numbers right after an answer marker anywhere (``"... so I would rate them at 70"``);
3. an exact non-substantive option text (``"Don't know"``) -> its code; then a refusal
   (the parser's refusal detector) -> ``refusal``;
4. numbers standing alone anywhere; with none, a non-substantive option text inside the answer.

Two different numbers in the deciding tier (``"60 or 70"``, ``"between 60 and 70"``,
``"60-70"``) are ``ambiguous``: a range is not an answer on a scale that asks for one value.
A restatement of the scale itself (``"on a scale of 0 to 100"``) is not a number of the answer.
``x/N`` or ``x out of N`` is ``x`` when ``N`` is the scale's maximum; another ``N`` is a rating on
a different scale, which is not converted (``unparseable``).

Rules, chosen for survey practice:

- **Rounding.** On a scale with a ``step`` (1 = whole numbers) a value off the grid is rounded to
  the nearest step, halves up (``72.5`` -> 73): interviewers record the whole number a respondent
  means, and ANES thermometer data hold whole numbers only. The raw text is kept in the row.
  ``step=None`` is a continuous scale: no rounding.
- **Range.** After rounding, a value outside ``[lo, hi]`` is ``out_of_range`` (``valid=False``).
  The parsed value stays on the :class:`~simsurvey.respondents.parsing.ParsedAnswer` (``value``)
  for inspection, but the runner records ``answer_value`` only for valid answers, so a non-null
  ``answer_value`` always means a valid answer on the scale; the raw text keeps what was said.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from simsurvey.instruments.models import MAX_VALUE_BINS, Question
from simsurvey.respondents.parsing import ParsedAnswer, _clean, _norm, is_refusal

_UNITS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}
_TENS["fourty"] = 40
_DIGIT = "one|two|three|four|five|six|seven|eight|nine"
_BELOW100 = (
    r"(?:(?P<tens>" + "|".join(_TENS) + r")(?:[\s-]+(?P<tunit>" + _DIGIT + r"))?"
    r"|(?P<unit>" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r"))"
)
_WORD_NUMBER = re.compile(
    r"\b(?:(?:(?P<hmul>a|" + _DIGIT + r")\s+)?(?P<hundred>hundred)(?:\s+(?:and\s+)?" + _BELOW100.replace("?P<", "?P<h_")
    + r")?|" + _BELOW100 + r")\b"
)
# "no one", "this one", "the one": the pronoun, not the number.
_PRONOUN_ONE = re.compile(r"\b(?:no|any|some|every|this|that|the|which|each|another|a)\s+$")

# A number with what may follow it: a denominator ("/100", "out of 100").
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-\u2212])?(?P<num>\d+(?:\.\d+)?)(?!\.?\d)(?!(?:st|nd|rd|th)\b)(?:ish\b)?"
    r"(?:\s*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?))?"
)
_CONNECTOR = re.compile(
    r"^\s*,?\s*(?:-|\u2013|\u2014|to|or|and|/|,)(?:\s+(?:maybe|perhaps|possibly|even|about|around))?\s*$"
)
_HEDGE = r"(?:about|around|roughly|approximately|approx\.?|maybe|probably|perhaps|likely|like|say|~|a|an|at)"
_LEAD = re.compile(
    r"^(?:(?:my\s+|the\s+)?(?:final\s+)?(?:answer|rating|score|response|number|value|choice)\s*(?:is|would\s+be|:|=|-)?\s*"
    r"|i(?:'d|\s+would|\s+will|'ll)?\s+(?:say|rate\s+(?:it|them|that)?|give\s+(?:it|them)?|go\s+with|put\s+(?:it|them)?(?:\s+at)?)\s*)?"
    r"(?:" + _HEDGE + r"\s+)*[\s:=\-(\[\"']*$"
)
# An answer marker directly before a number ("I'd say 70", "rate the party at 70", "my rating is 70").
_MARKER = re.compile(
    r"(?:\b(?:answer|rating|score|response|number|value|choice)\s*(?:is|would\s+be|will\s+be|of|:|=|-)?"
    r"|\bi(?:'d|\s+would|\s+will|'ll)?\s+(?:say|go\s+with|choose|pick|answer)"
    r"|\b(?:rate|rating|give|giving|put|putting|score)\b(?:\s+[a-z'.]+){0,4}?\s+(?:at|a|an)?"
    r")\s*(?:" + _HEDGE + r"\s+)*[\s:=\-(\[\"']*$"
)


@dataclass(frozen=True)
class _Num:
    value: float
    start: int
    end: int
    den: float | None


def _words_to_digits(text: str) -> str:
    """Replace English number words with digits ("seventy-five" -> "75"); text is casefolded."""

    def below100(m: re.Match[str], p: str = "") -> int | None:
        if m.group(p + "tens"):
            return _TENS[m.group(p + "tens")] + (_UNITS[m.group(p + "tunit")] if m.group(p + "tunit") else 0)
        if m.group(p + "unit"):
            return _UNITS[m.group(p + "unit")]
        return None

    def repl(m: re.Match[str]) -> str:
        if m.group("hundred"):
            mul = m.group("hmul")
            n = 100 * (1 if mul in (None, "a") else _UNITS[mul]) + (below100(m, "h_") or 0)
            return str(n)
        if m.group("unit") == "one" and _PRONOUN_ONE.search(text[: m.start()]):
            return m.group(0)
        return str(below100(m))

    return _WORD_NUMBER.sub(repl, text)


def _numbers(text: str) -> list[_Num]:
    out: list[_Num] = []
    for m in _NUMBER.finditer(text):
        v = float(m.group("num"))
        # A dash after a number is a range ("60 - 70"), not a sign.
        if m.group("sign") and not re.search(r"\d\s*$", text[: m.start()]):
            v = -v
        den = float(m.group("den")) if m.group("den") else None
        out.append(_Num(v, m.start(), m.end(), den))
    return out


def _drop_scale_echo(nums: list[_Num], text: str, lo: float, hi: float) -> list[_Num]:
    """Drop "lo to hi" pairs that restate the scale ("on a scale of 0 to 100")."""
    out: list[_Num] = []
    i = 0
    while i < len(nums):
        a = nums[i]
        if i + 1 < len(nums):
            b = nums[i + 1]
            if (math.isclose(a.value, lo) and math.isclose(b.value, hi) and a.den is None
                    and _CONNECTOR.match(text[a.end:b.start]) and text[a.end:b.start].strip() in ("-", "\u2013", "to", "and")):
                i += 2
                continue
        out.append(a)
        i += 1
    return out


def _snap(value: float, lo: float, step: float | None) -> float:
    return float(_snap_raw(value, lo, step))


def _snap_raw(value: float, lo: float, step: float | None) -> float:
    if step is None or step <= 0:
        return value
    k = (value - lo) / step
    if math.isclose(k, round(k), abs_tol=1e-9):
        return lo + round(k) * step
    snapped = lo + math.floor(k + 0.5) * step
    # Keep the grid's decimals (0.1 steps: 0.30000000000000004 -> 0.3).
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return round(snapped, decimals + 6)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


#: A text of at most this many words whose only number is that number answers with it.
SHORT_ANSWER_WORDS = 12
# A number followed by these is a quantity the text talks about, not a rating.
_QUANTITY = re.compile(r"^\s*(?:%|percent\b|per\s*cent\b|thousand\b|million\b|billion\b|k\b|-?\s*point\s+(?:scale|likert)"
                       r"|-\s*point\b|votes?\b|people\b|years?\b|times\b|th\b|st\b|nd\b|rd\b)")


def _reads_as_rating(nums: list[_Num], text: str, hi: float, unit: str | None) -> bool:
    """Whether the one number found (maybe written several times) reads as a rating (see
    :func:`parse_number`)."""
    after = [text[n.end:n.end + 40] for n in nums]
    if any(_QUANTITY.match(a) for a in after):
        return False
    marks = [r"degrees?\b", r"(?:/|out\s+of)\s*" + re.escape(_fmt(hi))]
    if unit:
        marks.append(re.escape(unit.casefold()))
    if any(re.match(r"^\s*(?:" + "|".join(marks) + ")", a) for a in after) or any(n.den is not None for n in nums):
        return True
    return len(text.split()) <= SHORT_ANSWER_WORDS


def parse_number(
    text: str | None,
    *,
    lo: float,
    hi: float,
    step: float | None = 1.0,
    nonsubstantive: Mapping[str, str] | None = None,
    unit: str | None = None,
) -> ParsedAnswer:
    """Read a number on the scale ``[lo, hi]`` from a model's raw answer.

    The number is the answer when the text starts with it, when it follows an answer marker
    ("my rating is 70"), or — the last resort — when it is the only number in the text and reads
    as a rating: the text is short (at most :data:`SHORT_ANSWER_WORDS` words), or the number is
    followed by the scale's unit, "degrees" or "out of <max>"; never a number followed by a
    magnitude or a count ("50 thousand votes", "44% of the vote", "a 5-point scale"), which is
    something the text talks about, not a rating.

    Args:
        text: The generated text (None when the backend gave none).
        lo: The scale's minimum.
        hi: The scale's maximum.
        step: The scale's grid (1 = whole numbers; None = continuous). Off-grid values are
            rounded to the nearest step, halves up.
        nonsubstantive: Code -> label of the question's non-substantive options (Don't know).
        unit: The scale's unit ("degrees"), which marks a number as the rating.

    Returns:
        A :class:`ParsedAnswer`: ``value`` set for a number (also when out of range, for
        inspection), ``code`` set for a non-substantive option; ``valid=False`` with ``kind``
        one of ``empty``, ``refusal``, ``ambiguous``, ``out_of_range``, ``unparseable``.
    """
    nonsub = dict(nonsubstantive or {})
    if text is None or not text.strip():
        return ParsedAnswer(code=None, valid=False, refusal=False, reason="empty answer", kind="empty")
    clean = _clean(text).casefold()
    clean = re.sub(r"(?<=\d),(?=\d{3}\b)", "", clean)  # 1,000 -> 1000 (an out-of-range answer, not two)
    digits = _words_to_digits(clean)
    nums = _drop_scale_echo(_numbers(digits), digits, lo, hi)

    def decide(found: list[_Num], tier: str) -> ParsedAnswer:
        for n in found:
            if n.den is not None and not math.isclose(n.den, hi):
                return ParsedAnswer(code=None, valid=False, refusal=False, kind="unparseable",
                                    reason=f"a rating out of {_fmt(n.den)}, not out of {_fmt(hi)}")
        values = sorted({_snap(n.value, lo, step) for n in found})
        if len(values) > 1:
            shown = ", ".join(_fmt(v) for v in values)
            return ParsedAnswer(code=None, valid=False, refusal=False, kind="ambiguous",
                                reason=f"ambiguous: {tier} gives several numbers ({shown})")
        v = values[0]
        if not (lo - 1e-9 <= v <= hi + 1e-9):
            return ParsedAnswer(code=None, valid=False, refusal=False, kind="out_of_range", value=v,
                                reason=f"out of range: {_fmt(v)} is outside {_fmt(lo)}-{_fmt(hi)}")
        return ParsedAnswer(code=None, valid=True, refusal=False, reason=None, value=v)

    # Tier 1: the answer starts with the number ("70", "Answer: about 70", "I'd say 70").
    if nums and _LEAD.match(digits[: nums[0].start]):
        lead = [nums[0]]
        # "60-70", "60 or 70": a range or an alternative is ambiguous.
        for nxt in nums[1:]:
            if _CONNECTOR.match(digits[lead[-1].end:nxt.start]):
                lead.append(nxt)
            else:
                break
        return decide(lead, "the leading number")
    # Tier 2: numbers right after an answer marker.
    marked = [n for n in nums if _MARKER.search(digits[max(0, n.start - 60): n.start])]
    if marked:
        return decide(marked, "answer-marker number")
    # Tier 3: an exact non-substantive option text, then a refusal.
    norm = _norm(clean)
    for code, label in nonsub.items():
        if _norm(label) == norm:
            return ParsedAnswer(code=code, valid=True, refusal=False, reason=None)
    if is_refusal(clean):
        return ParsedAnswer(code=None, valid=False, refusal=True, reason="refusal", kind="refusal")
    # Tier 4: numbers anywhere; else a non-substantive option text inside the answer.
    inside = [code for code, label in nonsub.items() if _norm(label) and f" {_norm(label)} " in f" {norm} "]
    if nums:
        if inside:
            return ParsedAnswer(code=None, valid=False, refusal=False, kind="ambiguous",
                                reason=f"ambiguous: a number and the option '{nonsub[inside[0]]}'")
        if len({_snap(n.value, lo, step) for n in nums}) == 1 and not _reads_as_rating(nums, digits, hi, unit):
            return ParsedAnswer(code=None, valid=False, refusal=False, kind="unparseable",
                                reason="the only number in the text is not given as the answer")
        return decide(nums, "the text")
    if len(inside) == 1:
        return ParsedAnswer(code=inside[0], valid=True, refusal=False, reason=None)
    if inside:
        return ParsedAnswer(code=None, valid=False, refusal=False, kind="ambiguous",
                            reason="ambiguous: several non-substantive options")
    return ParsedAnswer(code=None, valid=False, refusal=False, reason="no number found", kind="unparseable")


def logprob_labels(question: Question) -> tuple[str, ...] | None:
    """The labels logprob elicitation reads for a numeric question, or None when it cannot.

    A whole-number scale of at most ``MAX_VALUE_BINS`` values with the default bins (one value
    per bin, e.g. 0-10 or 1-7): the labels are the values ("0", ..., "10"), each one next token,
    and the distribution over them is the distribution over the bins. A wide scale (0-100) is not
    one next token per value ("100" may be "10" then "0"; the first token of "70" is also that of
    "7"), so its distribution cannot be read from one position: None (sample instead).
    """
    scale = question.scale
    if question.kind != "numeric" or scale is None or scale.bins or not scale.whole:
        return None
    values = scale.values
    if values is None or len(values) > MAX_VALUE_BINS:
        return None
    return tuple(str(int(v)) for v in values)


def parse_numeric_answer(text: str | None, question: Question) -> ParsedAnswer:
    """:func:`parse_number` on a numeric question's scale and non-substantive options; a valid
    number gets its bin code as ``code`` (the substantive answer in the question's options)."""
    scale = question.scale
    assert scale is not None
    nonsub = {o.code: o.label for o in question.options if o.non_substantive}
    parsed = parse_number(text, lo=scale.min, hi=scale.max, step=scale.step, nonsubstantive=nonsub, unit=scale.unit)
    if parsed.valid and parsed.value is not None:
        return ParsedAnswer(code=question.bin_code(parsed.value), valid=True, refusal=False, reason=None,
                            value=parsed.value)
    return parsed
