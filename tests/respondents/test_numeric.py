"""Numeric answers: table-driven cases and property tests (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsurvey.respondents.numeric import parse_number
from simsurvey.respondents.parsing import INVALID_REASONS

DK = {"dk": "Don't know"}

# An independent spelling of 0..100 (not the parser's tables).
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def spell(n: int, sep: str = "-") -> str:
    if n == 100:
        return "one hundred"
    if n < 20:
        return _ONES[n]
    t, u = divmod(n, 10)
    return _TENS[t] + (sep + _ONES[u] if u else "")


def therm(text: str, **kw):
    return parse_number(text, lo=0, hi=100, step=1, nonsubstantive=DK, **kw)


FORMATS = [
    "{n}", "about {n}", "I'd say {n}.", "{n}/100", "{n}%", "{n} degrees", "**{n}**", "Answer: {n}",
    "My answer is {n}", "Around {n} degrees.", "{n} out of 100", "I would rate them at {n}.",
    "On a scale of 0 to 100, I'd say {n}.", "Rating: {n}/100", "{n}.\n\nI feel fairly warm toward them.",
    "I'd give the Democratic Party a {n}.", "\"{n}\"", "(Answer: {n})",
]


@pytest.mark.parametrize(
    ("text", "value"),
    [("70", 70), ("about 70", 70), ("I'd say 70.", 70), ("seventy", 70), ("seventy-five", 75),
     ("seventy five", 75), ("70/100", 70), ("70%", 70), ("70 degrees", 70), ("**70**", 70), ("Answer: 70", 70),
     ("a hundred", 100), ("zero", 0), ("Zero degrees.", 0), ("72.5", 73), ("72.4", 72), ("100.4", 100),
     ("70 or so", 70), ("70. Then again I'd say that's generous.", 70),
     ("No one likes them much. I'd rate them 15.", 15), ("1,000", None)],
)
def test_reads_numbers(text: str, value: float | None) -> None:
    r = therm(text)
    if value is None:
        assert r.kind == "out_of_range" and r.value == 1000
    else:
        assert r.valid and r.value == value and r.code is None and r.kind is None, r


@pytest.mark.parametrize(
    ("text", "kind"),
    [("60 or 70", "ambiguous"), ("between 60 and 70", "ambiguous"), ("60-70", "ambiguous"),
     ("60 to 70 degrees", "ambiguous"), ("I'd say 60, or maybe 70", "ambiguous"), ("150", "out_of_range"),
     ("-5", "out_of_range"), ("seven/10", "unparseable"), ("7 out of 10", "unparseable"), ("", "empty"),
     ("   ", "empty"), ("Hmm, hard to say.", "unparseable"), ("Scott Walker, February 20th", "unparseable"), ("As an AI, I can't answer that.", "refusal"),
     ("I don't know, maybe 50", "ambiguous")],
)
def test_flags_non_answers(text: str, kind: str) -> None:
    r = therm(text)
    assert not r.valid and r.kind == kind and kind in INVALID_REASONS, r
    assert r.refusal == (kind == "refusal")


def test_out_of_range_keeps_the_value_for_inspection() -> None:
    r = therm("I'd say 120 degrees!")
    assert (r.valid, r.kind, r.value) == (False, "out_of_range", 120.0)
    assert parse_number("-5", lo=-10, hi=10, step=1).value == -5.0
    assert parse_number("-5", lo=0, hi=10, step=1).kind == "out_of_range"
    assert parse_number("60 - 70", lo=0, hi=100, step=1).kind == "ambiguous"  # a range, not -70


def test_non_substantive_options_give_their_code() -> None:
    assert therm("Don't know").code == "dk"
    assert therm("I really don't know.").code == "dk"
    # An exact option text that sounds like a refusal is the option.
    r = parse_number("I'd rather not say", lo=0, hi=100, nonsubstantive={"rf": "I'd rather not say"})
    assert (r.code, r.valid, r.refusal) == ("rf", True, False)
    assert therm("I'd rather not say").refusal


def test_rounding_follows_the_step() -> None:
    assert parse_number("72.5", lo=0, hi=100, step=1).value == 73.0
    assert parse_number("72.5", lo=0, hi=100, step=None).value == 72.5
    assert parse_number("3.3", lo=0, hi=10, step=0.5).value == 3.5
    assert parse_number("3.2", lo=0, hi=10, step=0.5).value == 3.0
    # 1-10 scale: 10.4 rounds onto the scale, 10.6 rounds off it.
    assert parse_number("10.4", lo=1, hi=10, step=1).value == 10.0
    assert parse_number("10.6", lo=1, hi=10, step=1).kind == "out_of_range"


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 100), fmt=st.sampled_from(FORMATS))
def test_any_in_range_integer_in_any_format_parses_to_itself(n: int, fmt: str) -> None:
    r = therm(fmt.format(n=n))
    assert r.valid and r.value == n, (fmt.format(n=n), r)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 100), sep=st.sampled_from(["-", " "]), fmt=st.sampled_from(["{w}", "about {w}", "I'd say {w}.", "{W} degrees"]))
def test_words_for_0_to_100(n: int, sep: str, fmt: str) -> None:
    w = spell(n, sep)
    r = therm(fmt.format(w=w, W=w.capitalize()))
    assert r.valid and r.value == n, (w, r)


@settings(max_examples=200, deadline=None)
@given(n=st.one_of(st.integers(101, 10_000), st.integers(-10_000, -1)), fmt=st.sampled_from(["{n}", "I'd say {n}.", "{n} degrees"]))
def test_out_of_range_is_always_flagged(n: int, fmt: str) -> None:
    r = parse_number(fmt.format(n=n), lo=0, hi=100, step=None)
    r2 = parse_number(fmt.format(n=n), lo=0, hi=100, step=1)
    assert not r.valid and r.kind == "out_of_range" and r.value == n
    assert not r2.valid


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=200))
def test_never_raises_and_a_valid_value_is_on_the_scale(text: str) -> None:
    r = therm(text)
    assert r.valid == (r.kind is None)
    if r.valid and r.code is None:
        assert 0 <= r.value <= 100 and float(r.value).is_integer()
    if not r.valid:
        assert r.kind in INVALID_REASONS


@pytest.mark.parametrize(
    "text",
    ["Well, the party won around 50 thousand votes in the county and people argue a lot about it these days.",
     "On a 5-point likert scale people often answer the middle, which is what this is about really in the end.",
     "They got 44.2% of the vote last time, which tells you a lot about how people see them in this state.",
     "I remember the 1990s, when the party was in a very different place and people felt differently about it.",
     "They lost 3 times in a row"],
)
def test_a_number_the_text_talks_about_is_not_a_rating(text: str) -> None:
    # Found by the thermometers study: the last-resort tier took any lone number as the answer
    # (all five were valid answers before).
    r = therm(text, unit="degrees")
    assert not r.valid and r.kind == "unparseable" and r.value is None, r


@pytest.mark.parametrize(
    ("text", "value"),
    [("Hmm. 70.", 70), ("Warm enough: 65 degrees, I suppose, on most days of the week I think honestly.", 65),
     ("Overall they do fine, 70 out of 100 if you ask me, maybe less on the bad days at work.", 70),
     ("They are fine I guess, so 55", 55)],
)
def test_a_lone_number_given_as_a_rating_is_read(text: str, value: float) -> None:
    r = therm(text, unit="degrees")
    assert r.valid and r.value == value, r
