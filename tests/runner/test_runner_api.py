"""The runner's public API is pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import inspect

import simsurvey.runner as runner


def test_public_names():
    assert sorted(runner.__all__) == sorted([
        "RESPONSE_COLUMNS", "RESPONSE_SCHEMA", "AdministerResult", "administer", "administer_async",
        "model_slug", "prompt_hash", "read_parts",
    ])
    for name in runner.__all__:
        assert hasattr(runner, name)


def test_administer_signature():
    params = inspect.signature(runner.administer).parameters
    assert list(params)[:3] == ["trials", "personas", "instrument"]
    assert {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} == {
        "model", "prompt", "runner", "run_dir", "seed", "reference", "progress", "backend", "variables", "frame"}
    assert inspect.signature(runner.administer_async).parameters.keys() == params.keys()
    assert inspect.iscoroutinefunction(runner.administer_async)


def test_response_columns_follow_the_shared_contract():
    assert runner.RESPONSE_COLUMNS == (
        "persona_id", "question_id", "condition_id", "replicate", "order_mode", "label_style", "neutral_option",
        "cue_style", "option_order", "experiment", "arm", "question_position", "previous_question", "item_position",
        "model", "backend", "elicitation", "prompt_hash", "raw_text", "answer_code", "answer_value",
        "valid", "refusal", "invalid_reason", "probs", "missing_mass", "latency_s", "prompt_tokens", "completion_tokens", "cost_usd",
        "cached", "error",
    )
    assert str(runner.RESPONSE_SCHEMA.field("probs").type) == "map<string, double>"
