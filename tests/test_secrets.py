"""Credentials never reach a file or a stream: the scrubbing function, and a whole run with a
planted key grepped for in every file of its run directory and in stdout/stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.secrets import MARK, known_secrets, looks_like_key, scrub

KEY = "sk-test-PLANTED0a1b2c3d4e5f6g7h8i9j"  # looks like an OpenAI key
ENV_VALUE = "PLANTEDenvvalue-no-pattern-4242"  # looks like nothing: only known as the variable's value


def test_scrub_text_patterns_keep_names_and_counts():
    text = (f"+model.params.api_key={KEY} model.api_key_env=OPENAI_API_KEY prompt_tokens=10 max_tokens: 16 "
            "Authorization: Bearer abcdefgh12345678 password=hunter22 token: xyz12345")
    out = scrub(text)
    assert KEY not in out and "abcdefgh12345678" not in out and "hunter22" not in out and "xyz12345" not in out
    assert "+model.params.api_key=<redacted>" in out
    assert "model.api_key_env=OPENAI_API_KEY" in out and "prompt_tokens=10" in out and "max_tokens: 16" in out


def test_scrub_data_and_exact_values():
    data = {"model": {"api_key": "short", "api_key_env": "MY_KEY", "params": {"user": f"x {ENV_VALUE} y"}},
            "stats": {"prompt_tokens": 3}, "list": [KEY, {"secret": 1}]}
    out = scrub(data, [ENV_VALUE])
    assert out == {"model": {"api_key": MARK, "api_key_env": "MY_KEY", "params": {"user": f"x {MARK} y"}},
                   "stats": {"prompt_tokens": 3}, "list": [MARK, {"secret": MARK}]}


def test_known_secrets_and_what_looks_like_a_key():
    env = {"MY_KEY": ENV_VALUE, "HF_TOKEN": "hf_" + "a" * 30, "DEBUG": "1", "HOME": "/root", "X_PASSWORD": "abc"}
    assert set(known_secrets("MY_KEY", env)) == {ENV_VALUE, "hf_" + "a" * 30}  # "abc": too short to scrub
    assert known_secrets(KEY, env)[0] == KEY  # a key pasted where a variable name belongs
    assert looks_like_key(KEY) and looks_like_key("AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW")
    assert not looks_like_key("OPENAI_API_KEY") and not looks_like_key("my_key")


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true", "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "simsurvey", *args], check=False, cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def _grep(run_dir: Path, proc: subprocess.CompletedProcess, needle: str) -> list[str]:
    hits = [str(p) for p in run_dir.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]
    return hits + [name for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)) if needle in text]


@pytest.mark.slow
def test_a_planted_key_appears_in_no_file_and_no_stream(tmp_path):
    run_dir = tmp_path / "run"
    proc = _cli("+experiment=politics", "model=baseline/uniform", "baselines=[]", "population.n=6",
                f"runner.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}",
                f"+model.params.api_key={KEY}", "+model.api_key_env=SIMSURVEY_TEST_KEY",
                f"+model.params.user={ENV_VALUE}", env_extra={"SIMSURVEY_TEST_KEY": ENV_VALUE})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("report.html", "manifest.json", ".hydra/overrides.yaml", ".hydra/config.yaml", ".hydra/hydra.yaml"):
        assert (run_dir / name).exists(), name
    assert "Reproduce this run" in (run_dir / "report.html").read_text(encoding="utf-8")
    assert _grep(run_dir, proc, "PLANTED") == []
    assert "+model.params.api_key=<redacted>" in (run_dir / ".hydra" / "overrides.yaml").read_text()


def test_a_key_given_as_api_key_env_is_refused_without_echo(tmp_path):
    run_dir = tmp_path / "run"
    proc = _cli("+experiment=politics", "model=baseline/uniform", "stages=[sample]", f"+model.api_key_env={KEY}",
                f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "model.api_key_env" in lines[0] and "not shown" in lines[0]
    assert "PLANTED" not in proc.stderr + proc.stdout
    assert not run_dir.exists()


def test_a_key_given_as_api_key_env_on_resume_is_stored_nowhere(tmp_path):
    run_dir = tmp_path / "run"
    first = _cli("+experiment=politics", "model=baseline/uniform", "stages=[sample]", "population.n=6",
                 f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-2000:]
    proc = _cli("+experiment=politics", "model=baseline/uniform", "stages=[sample]", "population.n=6",
                f"+model.api_key_env={KEY}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2
    assert _grep(run_dir, proc, "PLANTED") == []


def test_a_multirun_keeps_the_key_out_of_the_sweep_and_the_console(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _cli("-m", "+experiment=politics", "model=baseline/uniform,baseline/majority", "stages=[sample]",
                "population.n=6", f"+model.params.api_key={KEY}", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "multirun.yaml").exists() and (sweep / "1" / ".hydra" / "overrides.yaml").exists()
    assert "<redacted>" in proc.stdout  # Hydra's launcher prints each job's overrides
    assert _grep(sweep, proc, "PLANTED") == []
