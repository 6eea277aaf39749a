"""RunnerConfig and the model presets: defaults, YAML files, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from simsurvey.config import PROJECT_ROOT, format_validation_error
from simsurvey.respondents.config import ModelConfig, RunnerConfig

CONF = PROJECT_ROOT / "conf"


def test_defaults_match_the_brief_and_the_yaml():
    d = RunnerConfig()
    assert (d.concurrency, d.rpm, d.tpm, d.max_retries, d.backoff_base_s, d.backoff_max_s, d.timeout_s, d.cache,
            d.cache_dir, d.flush_every, d.flush_seconds) == (8, None, None, 6, 0.5, 30, 60, True, None, 200, 5)
    assert RunnerConfig.model_validate(yaml.safe_load((CONF / "runner" / "default.yaml").read_text())) == d


def test_every_field_is_described():
    for model in (RunnerConfig, ModelConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


@pytest.mark.parametrize("bad", [{"concurrency": 0}, {"rpm": -1}, {"timeout_s": 0}, {"flush_every": 0}, {"nope": 1}])
def test_bad_values_give_one_line(bad):
    with pytest.raises(ValidationError) as info:
        RunnerConfig(**bad)
    line = format_validation_error(info.value, prefix="runner.")
    assert "\n" not in line and line.startswith(f"runner.{next(iter(bad))}")


def _compose_model(path: Path) -> dict:
    """Resolve a preset's `defaults: [litellm]` by hand (no Hydra below __main__)."""
    data = yaml.safe_load(path.read_text())
    base: dict = {}
    for entry in data.pop("defaults", []):
        if entry != "_self_":
            base.update(_compose_model(path.parent / f"{entry}.yaml"))
    return {**base, **data}


@pytest.mark.parametrize("preset", ["openai_gpt4o_mini", "anthropic_claude_haiku", "ollama", "vllm", "llamacpp"])
def test_model_presets_validate(preset):
    cfg = ModelConfig.model_validate(_compose_model(CONF / "model" / f"{preset}.yaml"))
    assert cfg.backend == "litellm" and cfg.top_logprobs == 20
    assert cfg.api_key_env is None or cfg.api_key_env.endswith("_API_KEY")  # a variable name, never a key


def test_litellm_preset_requires_a_model_name():
    assert yaml.safe_load((CONF / "model" / "litellm.yaml").read_text())["name"] == "???"
