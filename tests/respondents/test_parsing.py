"""Answer parsing: table-driven over real-looking model outputs."""

from __future__ import annotations

import math

import pytest

from simsurvey.instruments.models import Option, Question
from simsurvey.respondents.parsing import ParsedAnswer, parse_answer
from simsurvey.respondents.prompts import display_labels

AGREE = Question(
    id="agree5",
    text="Immigration is good for the country.",
    kind="ordinal",
    options=(
        Option(code="sa", label="Strongly agree"),
        Option(code="a", label="Agree"),
        Option(code="n", label="Neither agree nor disagree"),
        Option(code="d", label="Disagree"),
        Option(code="sd", label="Strongly disagree"),
        Option(code="dk", label="Don't know", non_substantive=True),
    ),
)
ORDER = ("sa", "a", "n", "d", "sd", "dk")
REVERSED = tuple(reversed(ORDER))

MULTI = Question(
    id="news",
    text="Where do you get news?",
    kind="multi_select",
    options=(
        Option(code="tv", label="Television"),
        Option(code="web", label="Websites"),
        Option(code="paper", label="Newspapers"),
        Option(code="radio", label="Radio"),
    ),
)


def parse(text, style="letters", order=ORDER, q=AGREE) -> ParsedAnswer:
    return parse_answer(text, q, order, display_labels(order, style, q))


# (raw text, label style, expected code) -- canonical order unless noted.
VALID = [
    ("B", "letters", "a"),
    ("(B)", "letters", "a"),
    ("b.", "letters", "a"),
    ("b", "letters", "a"),
    ("B)", "letters", "a"),
    ("Answer: B", "letters", "a"),
    ("**B**", "letters", "a"),
    ("**B.** Agree", "letters", "a"),
    ("B. Agree", "letters", "a"),
    ("E. Strongly disagree", "letters", "sd"),
    ("The answer is C.", "letters", "n"),
    ("I'd say B, definitely.", "letters", "a"),
    ("I would choose D because I care about jobs.", "letters", "d"),
    ("Option A", "letters", "sa"),
    ("A", "letters", "sa"),
    ("A.", "letters", "sa"),
    ("A good question! My answer is D.", "letters", "d"),
    ("I think E", "letters", "sd"),
    ("B definitely", "letters", "a"),
    ("  d  ", "letters", "d"),
    ("2", "numbers", "a"),
    ("Answer: 2", "numbers", "a"),
    ("5. Strongly disagree", "numbers", "sd"),
    ("I'd pick 4.", "numbers", "d"),
    ("Strongly agree", "letters", "sa"),
    ("strongly agree.", "numbers", "sa"),
    ("I agree.", "letters", "a"),
    ("Neither agree nor disagree", "letters", "n"),
    ("I somewhat disagree with that.", "letters", "d"),
    ("Strongly disagree", "text", "sd"),
    ("strongly DISAGREE!", "text", "sd"),
    ("Disagree", "text", "d"),
    ("Strongly ag", "text", "sa"),
    ("Neither", "text", "n"),
    ("Don't know", "text", "dk"),
    ("I don't know", "letters", "dk"),
    ("F", "letters", "dk"),
    ("dont know", "text", "dk"),
    ("- Agree", "text", "a"),
    ("“Agree”", "text", "a"),
]


@pytest.mark.parametrize(("text", "style", "code"), VALID)
def test_valid_answers(text, style, code):
    got = parse(text, style)
    assert got == ParsedAnswer(code=code, valid=True, refusal=False, reason=None), got


@pytest.mark.parametrize(
    ("text", "style", "code"),
    [("A", "letters", "dk"), ("B", "letters", "sd"), ("1", "numbers", "dk"), ("Agree", "text", "a"), ("F. Strongly agree", "letters", "sa")],
)
def test_labels_are_read_through_the_display_order(text, style, code):
    assert parse(text, style, order=REVERSED).code == code


INVALID = [
    ("A or B", "letters", "ambiguous"),
    ("B or C, hard to say", "letters", "ambiguous"),
    ("1 or 2", "numbers", "ambiguous"),
    ("Strongly agree or strongly disagree", "text", "ambiguous"),
    ("Agree, or maybe disagree", "letters", "ambiguous"),
    ("1", "letters", "no option"),
    ("G", "letters", "no option"),
    ("7", "numbers", "no option"),
    ("B", "numbers", "no option"),
    ("Abstain", "letters", "no option"),
    ("Apples are tasty", "letters", "no option"),
    ("In 2016 things changed", "numbers", "no option"),
    ("Str", "text", "ambiguous"),
    ("", "letters", "empty"),
    ("   \n", "letters", "empty"),
    (None, "letters", "empty"),
]


@pytest.mark.parametrize(("text", "style", "reason"), INVALID)
def test_invalid_answers(text, style, reason):
    got = parse(text, style)
    assert not got.valid and got.code is None and not got.refusal
    assert got.reason is not None and got.reason.startswith(reason), got
    assert got.kind == {"no option": "unparseable"}.get(reason, reason), got


def test_every_reason_code_is_documented():
    from simsurvey.respondents.parsing import INVALID_REASONS, render_top_tokens

    kinds = {parse(text, style).kind for text, style, _ in INVALID} | {parse("I can't answer that", "letters").kind}
    assert kinds <= set(INVALID_REASONS) and {"empty", "ambiguous", "unparseable", "refusal"} <= kinds
    assert render_top_tokens([("A", math.log(0.5)), (" B", math.log(0.25))]) == '"A" 0.500, " B" 0.250'


REFUSALS = [
    "As an AI, I don't have personal opinions.",
    "I'm sorry, but I can't answer that.",
    "I cannot provide a personal opinion on political matters.",
    "As a language model I do not have political views.",
    "I don't have personal beliefs about immigration.",
    "I'd prefer not to answer.",
    "I'm unable to share an opinion on this.",
]


@pytest.mark.parametrize("text", REFUSALS)
@pytest.mark.parametrize("style", ["letters", "numbers", "text"])
def test_refusals(text, style):
    assert parse(text, style) == ParsedAnswer(code=None, valid=False, refusal=True, reason="refusal", kind="refusal")


def test_an_explicit_answer_beats_a_refusal_preamble():
    got = parse("As an AI I don't have opinions, but if I had to choose, I'd say B.")
    assert got.code == "a" and got.valid and not got.refusal


def test_a_refusal_worded_option_is_an_answer():
    q = Question(
        id="q",
        text="Q?",
        kind="single_choice",
        options=(Option(code="y", label="Yes"), Option(code="r", label="I'd prefer not to answer", non_substantive=True)),
    )
    got = parse_answer("I'd prefer not to answer", q, ("y", "r"), ("A", "B"))
    assert got.code == "r" and got.valid


@pytest.mark.parametrize(
    ("text", "style", "code"),
    [
        ("A, C", "letters", "tv|paper"),
        ("C, A", "letters", "tv|paper"),
        ("A and D", "letters", "tv|radio"),
        ("B", "letters", "web"),
        ("1, 3, 4", "numbers", "tv|paper|radio"),
        ("Television, Radio", "text", "tv|radio"),
        ("I use newspapers and websites.", "letters", "web|paper"),
    ],
)
def test_multi_select_joins_codes_in_canonical_order(text, style, code):
    got = parse(text, style, order=MULTI.codes, q=MULTI)
    assert got.valid and got.code == code, got


def test_multi_select_with_nothing_found_is_invalid():
    got = parse("No idea", "letters", order=MULTI.codes, q=MULTI)
    assert not got.valid and got.code is None


def test_labels_must_match_options():
    with pytest.raises(ValueError):
        parse_answer("A", AGREE, ORDER, ("A", "B"))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(order=st.permutations(ORDER), style=st.sampled_from(["letters", "numbers", "text"]), k=st.integers(0, 5),
       form=st.sampled_from(["{l}", "{l}.", "({l})", "Answer: {l}", "**{l}**", "I'd say {l}.", "{l}. {t}", "{t}"]))
def test_any_displayed_label_round_trips_to_its_code(order, style, k, form):
    labels = display_labels(order, style, AGREE)
    text = form.format(l=labels[k], t=AGREE.option(order[k]).label)
    got = parse_answer(text, AGREE, order, labels)
    assert got.valid and got.code == order[k], (text, got)
