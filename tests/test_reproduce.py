""""Reproduce this run" gives a command that really reproduces it (config dir, name, quoting kept)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.manifest import Manifest
from simsurvey.reproduce import reproduce_command

HYDRA = {
    "runtime": {"cwd": "/home/me/my study", "config_sources": [
        {"path": "hydra.conf", "schema": "pkg", "provider": "hydra"},
        {"path": str(PROJECT_ROOT / "conf"), "schema": "file", "provider": "main"},
        {"path": "/home/me/my conf", "schema": "file", "provider": "command-line"},
        {"path": "structured://", "schema": "structured", "provider": "schema"}]},
    "job": {"config_name": "config"},
    "overrides": {"task": ["+experiment=mine", "survey.instrument=my dir/x.yaml", "design.orders=[as_is,reversed]"],
                  "hydra": ["hydra.run.dir=/somewhere"]},
}


def test_command_keeps_config_dir_name_overrides_and_quoting():
    cmd = reproduce_command(HYDRA, seed=7, default_config_dir=PROJECT_ROOT / "conf")
    assert cmd.startswith("cd '/home/me/my study' && python -m simsurvey ")
    argv = shlex.split(cmd.split(" && ", 1)[1])
    assert argv == ["python", "-m", "simsurvey", "--config-dir=/home/me/my conf", "+experiment=mine",
                    "survey.instrument=my dir/x.yaml", "design.orders=[as_is,reversed]", "seed=7"]
    assert "hydra.run.dir" not in cmd  # a reproduction is a new run, not a resume
    other = {**HYDRA, "job": {"config_name": "study"},
             "runtime": {**HYDRA["runtime"], "config_sources": [
                 {"path": "/elsewhere/conf", "schema": "file", "provider": "main"}]},
             "overrides": {"task": ["seed=3", "model.api_key=sk-abcdefghijklmnopqrstuvwxyz123456"]}}
    cmd = reproduce_command(other, seed=7, default_config_dir=PROJECT_ROOT / "conf",
                            secrets=("sk-abcdefghijklmnopqrstuvwxyz123456",))
    assert "--config-path=/elsewhere/conf" in cmd and "--config-name=study" in cmd
    assert "seed=7" not in cmd and "seed=3" in cmd  # the override's own seed is kept
    assert "abcdefghijklmnop" not in cmd


def test_manifest_keeps_the_command_that_made_the_run_across_a_reanalysis(tmp_path):
    m = Manifest.start(tmp_path, config={}, seed=1, stages=["sample", "administer"],
                       command=["simsurvey", "a b"], reproduce="python -m simsurvey x=1")
    m.finish("finished")
    assert m.data["command"] == "simsurvey 'a b'"
    m = Manifest.start(tmp_path, config={}, seed=1, stages=["analyze"], reproduce="python -m simsurvey stages=[analyze]")
    assert m.data["reproduce"] == "python -m simsurvey x=1"
    assert m.data["attempts"][-1]["reproduce"] == "python -m simsurvey stages=[analyze]"


@pytest.mark.slow
def test_the_printed_command_reproduces_a_run_made_with_config_dir(tmp_path):
    """The bug: the report printed the task overrides alone, so a run made with --config-dir
    failed with exit 2 (no such experiment) when its command was run again."""
    conf = tmp_path / "my conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: baseline/uniform\n"
        "population:\n  n: 12\nbaselines: []\ndesign:\n  no_persona: false\n", encoding="utf-8")
    inst_dir = tmp_path / "my instruments"
    inst_dir.mkdir()
    # Two of the politics questions: the report (twice) dominates the test's time.
    pol = yaml.safe_load((PROJECT_ROOT / "surveys" / "politics.yaml").read_text(encoding="utf-8"))
    pol["questions"] = pol["questions"][:2]
    (inst_dir / "pol.yaml").write_text(yaml.safe_dump(pol, sort_keys=False), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "CI": "true", "SIMSURVEY_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    first = work / "first"
    proc = subprocess.run(
        [sys.executable, "-m", "simsurvey", "--config-dir", str(tmp_path / "my conf"), "+experiment=mine",
         "survey.instrument=../my instruments/pol.yaml", "design.orders=[as_is,reversed]",
         "stages=[sample,administer,report]", f"hydra.run.dir={first}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    command = json.loads((first / "manifest.json").read_text())["reproduce"]
    from html import escape

    assert escape(command, quote=True) in (first / "report.html").read_text(encoding="utf-8")
    # Run the printed command from elsewhere: it changes to the run's working directory itself.
    again = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    runs = [p for p in (work / "outputs").glob("*/*") if (p / "responses.parquet").exists()]
    assert len(runs) == 1
    keep = ["persona_id", "question_id", "condition_id", "replicate", "option_order", "prompt_hash", "answer_code",
            "valid"]
    a = pd.read_parquet(first / "responses.parquet")[keep]
    b = pd.read_parquet(runs[0] / "responses.parquet")[keep]
    assert len(a) == 24  # 12 personas x 2 questions, one condition each
    sort = ["persona_id", "question_id", "condition_id", "replicate"]
    pd.testing.assert_frame_equal(a.sort_values(sort).reset_index(drop=True), b.sort_values(sort).reset_index(drop=True))
