"""The command line: user mistakes give one line, exit code 2, and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simsurvey.config import PROJECT_ROOT


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "simsurvey", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("population.n=0", "population.n"),
        ("population.n=-5", "population.n"),
        ("population.spec=personas/nope.yaml", "nope.yaml"),
        ("seed=-1", "seed"),
        ("stages=[sample,bogus]", "stages"),
        ("+population.colour=blue", "population.colour"),
    ],
)
def test_bad_values_one_line_exit_2_nothing_written(tmp_path, override, expected):
    run_dir = tmp_path / "run"
    proc = run_cli("+experiment=politics", "stages=[sample]", override, f"hydra.run.dir={run_dir}", cwd=PROJECT_ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()


def test_unknown_config_group_option_exits_2(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("+experiment=politics", "population=atlantis", f"hydra.run.dir={run_dir}", cwd=PROJECT_ROOT)
    assert proc.returncode == 2
    assert "atlantis" in proc.stderr
    assert not run_dir.exists()
