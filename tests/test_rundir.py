"""The run-directory lock and fingerprint, in process (the CLI tests are in test_run_integrity.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from simsurvey.config import PROJECT_ROOT, validate_config
from simsurvey.errors import DamagedStateError, RunDirError
from simsurvey.rundir import (
    check_fingerprint,
    depends_on,
    fingerprint,
    frame_digest,
    lock_run_dir,
    reference_hash,
)


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=["+experiment=politics", "model=litellm", "model.name=openai/x", *overrides])
    return validate_config(OmegaConf.to_container(cfg, resolve=True))


def _changed(a, b) -> set[str]:
    return {k for g in a for k in a[g] if a[g][k] != b[g].get(k)}


def test_each_answer_changing_setting_has_its_own_key_and_others_none():
    base = fingerprint(_cfg())
    assert _changed(base, fingerprint(_cfg("model.temperature=0"))) == {"model.temperature"}
    assert _changed(base, fingerprint(_cfg("+model.params.top_p=0.5"))) == {"model.params"}
    assert _changed(base, fingerprint(_cfg("design.cue=backstory"))) == {"design.cue"}
    assert _changed(base, fingerprint(_cfg("seed=1"))) == {"seed"}
    # How the key is found, how calls are sent and run, and a credential itself change no answer.
    for same in ("model.api_key_env=OTHER_KEY", "model.transport=http", "runner.concurrency=1", "analysis.bootstrap=10",
                 "+model.params.api_key=sk-abcdefgh12345678"):
        assert _changed(base, fingerprint(_cfg(same))) == set(), same
    assert "sk-abcdefgh" not in json.dumps(fingerprint(_cfg("+model.params.api_key=sk-abcdefgh12345678")))


def test_the_reference_is_fingerprinted_as_data():
    cfg = _cfg()
    ref = pd.DataFrame({"respondent_id": ["1", "2"], "question_id": ["q", "q"], "answer_code": ["a", None],
                        "weight": [1.0, 1.0]})
    a = fingerprint(cfg, reference=ref)
    b = fingerprint(cfg, reference=ref.assign(answer_code=["a", "b"]))
    assert _changed(a, b) == {"reference data"}
    assert a["analyze"]["reference data"] == reference_hash(ref)  # what re-analysis compares the stored file with
    # A parquet round trip (object vs string dtypes, None vs NA) is the same data.
    assert frame_digest(ref) == frame_digest(ref.astype({"answer_code": "string", "respondent_id": "string"}))


def test_check_records_then_refuses_only_what_the_stages_depend_on(tmp_path):
    cfg = fingerprint(_cfg())
    check_fingerprint(tmp_path, cfg, ["sample"])
    assert set(json.loads((tmp_path / "fingerprint.json").read_text())["settings"]["administer"]) == set()
    # Nothing was administered yet: the model may still change.
    other_model = fingerprint(_cfg("model.temperature=0"))
    check_fingerprint(tmp_path, other_model, ["administer"])
    with pytest.raises(RunDirError, match=r"other settings \(model.temperature\)"):
        check_fingerprint(tmp_path, cfg, ["administer"])
    # Re-analysis does not depend on the model setting.
    check_fingerprint(tmp_path, cfg, ["analyze", "report"])
    assert depends_on(["analyze"]) == ("analyze",) and depends_on(["administer"]) == ("sample", "administer", "analyze")


def test_a_damaged_fingerprint_is_named(tmp_path):
    (tmp_path / "fingerprint.json").write_text("{")
    with pytest.raises(DamagedStateError, match="fingerprint.json: damaged run fingerprint"):
        check_fingerprint(tmp_path, fingerprint(_cfg()), ["sample"])


def test_the_lock_is_exclusive_and_released(tmp_path):
    with lock_run_dir(tmp_path), pytest.raises(RunDirError, match="another simsurvey process"), lock_run_dir(tmp_path):
        pass
    with lock_run_dir(tmp_path):  # released on exit
        pass
