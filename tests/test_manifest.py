import json

import pytest

from simsurvey.errors import DamagedStateError
from simsurvey.manifest import Manifest, redact


def test_redact_hides_credentials_but_keeps_env_var_names_and_token_counts():
    data = {
        "model": {"api_key": "sk-123", "api_key_env": "OPENAI_API_KEY", "params": {"Authorization": "Bearer x"}},
        "stats": {"prompt_tokens": 10, "completion_tokens": 3},
        "list": [{"password": "hunter2"}],
    }
    out = redact(data)
    assert out["model"]["api_key"] == "<redacted>"
    assert out["model"]["api_key_env"] == "OPENAI_API_KEY"
    assert out["model"]["params"]["Authorization"] == "<redacted>"
    assert out["stats"] == {"prompt_tokens": 10, "completion_tokens": 3}
    assert out["list"][0]["password"] == "<redacted>"


def test_manifest_start_stage_and_resume(tmp_path):
    m = Manifest.start(tmp_path, config={"model": {"api_key": "sk-secret"}}, seed=7)
    m.stage("sample", {"n": 10})
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["seed"] == 7 and saved["stages"]["sample"] == {"n": 10}
    assert "sk-secret" not in (tmp_path / "manifest.json").read_text()
    again = Manifest.start(tmp_path, config={}, seed=7)
    assert again.data["resumed"] == 1
    assert again.data["stages"]["sample"] == {"n": 10}
    assert again.data["started_at"] == saved["started_at"]


def test_attempts_history_sums_spend_and_marks_a_killed_attempt(tmp_path):
    models = {"m": {"calls": 5, "retries": 1, "prompt_tokens": 100, "completion_tokens": 10, "cost_usd": 0.25},
              "baseline/uniform": {"calls": 7, "cost_usd": 0.0}}
    m = Manifest.start(tmp_path, config={}, seed=1, stages=["administer"])
    m.stage("administer", {"models": models})
    # A SIGKILL leaves the attempt "running" (nothing closes it).
    m2 = Manifest.start(tmp_path, config={}, seed=1, stages=["administer"])
    m2.stage("administer", {"models": {"m": {"calls": 2, "prompt_tokens": 40, "cost_usd": 0.1}}})
    m2.finish("finished")
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert [a["status"] for a in saved["attempts"]] == ["killed", "finished"]
    assert saved["attempts"][0]["spend"]["calls"] == 12
    assert saved["spend"] == {"calls": 14, "retries": 1, "prompt_tokens": 140, "completion_tokens": 10,
                              "cost_usd": 0.35}
    assert saved["stages"]["administer"]["models"]["m"]["calls"] == 2  # the last attempt's diagnostics
    assert saved["finished_at"] == saved["attempts"][1]["finished_at"]


def test_the_command_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["simsurvey", "+model.params.api_key=sk-abcdefgh12345678", "x=PLAINVALUE99"])
    Manifest.start(tmp_path, config={}, seed=1, secrets=["PLAINVALUE99"])
    text = (tmp_path / "manifest.json").read_text()
    assert "sk-abcdefgh12345678" not in text and "PLAINVALUE99" not in text
    assert "+model.params.api_key=<redacted>" in text


def test_a_damaged_manifest_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text('{"seed": 1, "stag')
    with pytest.raises(DamagedStateError, match="manifest.json: damaged manifest"):
        Manifest.start(tmp_path, config={}, seed=1)
