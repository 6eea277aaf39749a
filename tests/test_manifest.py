import json

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
