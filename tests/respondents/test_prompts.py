"""Prompt rendering and prompt-config validation."""

from __future__ import annotations

import re

import pytest

from pydantic import ValidationError

from simsurvey.config import format_validation_error
from simsurvey.errors import UserError
from simsurvey.instruments.models import Option, Question
from simsurvey.respondents.config import ModelConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.prompts import display_labels, render_request

Q = Question(
    id="capital",
    text="What is the capital of France?",
    kind="single_choice",
    options=(
        Option(code="lon", label="London"),
        Option(code="par", label="Paris"),
        Option(code="rom", label="Rome"),
        Option(code="dk", label="Don't know", non_substantive=True),
    ),
)
MULTI = Question(
    id="news", text="Where do you get news?", kind="multi_select",
    options=(Option(code="tv", label="Television"), Option(code="web", label="Websites")),
)
MODEL = ModelConfig(backend="local", name="m", elicitation="both", temperature=0.7, max_tokens=8)
CUE = "You are Maria, a 34-year-old nurse from Ohio."


def req(**kw):
    args = dict(cue=CUE, question=Q, option_order=("rom", "par", "lon", "dk"), label_style="letters",
                prompt=PromptConfig(), model=MODEL, seed=7, prefix_key="p1", context={"persona": {"sex": "female"}})
    args.update(kw)
    return render_request(**args)


def test_display_labels_per_style():
    order = ("rom", "par", "lon")
    assert display_labels(order, "letters", Q) == ("A", "B", "C")
    assert display_labels(order, "numbers", Q) == ("1", "2", "3")
    assert display_labels(order, "text", Q) == ("Rome", "Paris", "London")


@pytest.mark.parametrize(
    ("order", "style", "match"),
    [(("rom", "xx"), "letters", "unknown option code"), (("rom", "rom"), "letters", "repeats"),
     (("rom",), "roman", "label_style")],
)
def test_display_labels_rejects_bad_input(order, style, match):
    with pytest.raises(UserError, match=match):
        display_labels(order, style, Q)


def test_letters_support_at_most_26_options():
    big = Question(id="big", text="?", kind="single_choice",
                   options=tuple(Option(code=str(i), label=f"o{i}") for i in range(27)))
    assert display_labels(big.codes[:26], "letters", big)[-1] == "Z"
    with pytest.raises(UserError, match="at most 26"):
        display_labels(big.codes, "letters", big)


def test_request_persona_first_then_question_in_display_order():
    r = req()
    assert [m["role"] for m in r.messages] == ["system", "user"]
    assert CUE in r.messages[0]["content"]
    user = r.messages[1]["content"]
    assert user.startswith(Q.text)
    assert "A. Rome\nB. Paris\nC. London\nD. Don't know" in user
    assert user.endswith("Answer with the letter of one option.")
    assert r.labels == ("A", "B", "C", "D")
    assert (r.elicitation, r.temperature, r.max_tokens, r.seed, r.prefix_key) == ("both", 0.7, 8, 7, "p1")
    assert r.context["question_id"] == "capital"
    assert r.context["option_order"] == ("rom", "par", "lon", "dk")
    assert r.context["substantive_codes"] == ("lon", "par", "rom")
    assert r.context["persona"] == {"sex": "female"}


def test_same_persona_shares_the_system_message_across_questions():
    a, b = req(), req(question=MULTI, option_order=("web", "tv"))
    assert a.messages[0] == b.messages[0] and a.messages[1] != b.messages[1]


def test_numbers_and_text_styles():
    n = req(label_style="numbers").messages[1]["content"]
    assert "1. Rome\n2. Paris" in n and "number of one option" in n
    t = req(label_style="text")
    assert "- Rome\n- Paris" in t.messages[1]["content"] and t.labels == ("Rome", "Paris", "London", "Don't know")


def test_multi_select_instruction():
    r = req(question=MULTI, option_order=("web", "tv"))
    assert r.messages[1]["content"].endswith(
        "Select all that apply. Answer with the letters of the options you select, separated by commas.")


def test_no_persona_omits_the_persona_part():
    r = req(cue=None)
    assert r.messages == ({"role": "user", "content": r.messages[0]["content"]},)
    assert CUE not in r.messages[0]["content"] and r.prefix_key is None
    r2 = req(cue=None, prompt=PromptConfig(no_persona_system="Answer the survey."))
    assert r2.messages[0] == {"role": "system", "content": "Answer the survey."}


def test_persona_in_user_message():
    r = req(prompt=PromptConfig(persona_role="user"))
    assert len(r.messages) == 1 and r.messages[0]["content"].index(CUE) < r.messages[0]["content"].index(Q.text)


def test_custom_templates():
    p = PromptConfig(persona_template="Persona: {cue}", question_template="Q: {question}\n{options}",
                     option_template_letters="({label}) {text}")
    r = req(prompt=p)
    assert r.messages[0]["content"] == f"Persona: {CUE}"
    assert r.messages[1]["content"] == "Q: What is the capital of France?\n(A) Rome\n(B) Paris\n(C) London\n(D) Don't know"


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("question_template", "{question} {options} {persona}", r"prompt\.question_template: .*unknown placeholder \{persona\}"),
        ("persona_template", "You are someone.", r"prompt\.persona_template: .*missing placeholder \{cue\}"),
        ("option_template_letters", "{label}. {text} {0}", "positional"),
        ("instruction_letters", "Pick {label}", r"prompt\.instruction_letters: .*unknown placeholder \{label\}"),
        ("question_template", "{question:>5} {options}", "format spec"),
        ("question_template", "{question {options}", "prompt.question_template"),
        ("colour", "red", r"prompt\.colour: unknown key"),
    ],
)
def test_bad_templates_are_one_line_config_errors(key, value, match):
    # The same path validate_config takes for the prompt section (other sections stay out of it).
    with pytest.raises(ValidationError) as exc:
        PromptConfig.model_validate({key: value})
    line = format_validation_error(exc.value, prefix="prompt.")
    assert re.search(match, line) and "\n" not in line, line


def _experiment():
    from simsurvey.instruments.models import Arm, ArmChange, Experiment

    return Experiment(id="wording", arms=(
        Arm(id="control", questions={}),
        Arm(id="reworded", questions={"capital": ArmChange(text="Which city is the capital of France?")}),
        Arm(id="primed", questions={"capital": ArmChange(vignette="France is a country in Europe.")}),
    ))


def test_each_arm_words_the_question_its_own_way():
    exp = _experiment()
    control, reworded, primed = (req(experiment=exp, arm=a).messages[1]["content"]
                                 for a in ("control", "reworded", "primed"))
    assert control.startswith(Q.text)
    assert reworded.startswith("Which city is the capital of France?") and Q.text not in reworded
    # The vignette comes before the question, which keeps its wording.
    assert primed.startswith("France is a country in Europe.\n\n" + Q.text)
    # Options and instruction are the same in every arm; the system (persona) message too.
    for body in (reworded, primed):
        assert body.endswith("Answer with the letter of one option.") and "A. Rome\nB. Paris" in body
    assert req(experiment=exp, arm="primed").messages[0] == req().messages[0]
    assert req(experiment=exp, arm="reworded").context["question_id"] == "capital"
    # No experiment, or no arm: the question as written.
    assert req(arm="reworded").messages == req().messages == req(experiment=exp).messages


def test_an_unknown_arm_is_a_user_error():
    with pytest.raises(UserError, match="arm 'nope' is not an arm of experiment 'wording'"):
        req(experiment=_experiment(), arm="nope")
