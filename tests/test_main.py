"""The command line: user mistakes give one line, exit code 2, and leave nothing behind."""

from __future__ import annotations

import os
import signal
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


def _one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("foo=1", "foo: unknown config key"),
        ("population.nn=5", "population.nn: unknown config key"),
        ("model=nonexistent", "model=nonexistent: no such config option"),
        ("population.n=100000000", "population.n: at most 1,000,000 personas"),
    ],
)
def test_hydra_and_bound_errors_are_one_line(tmp_path, override, expected):
    run_dir = tmp_path / "run"
    line = _one_line_exit_2(run_cli("+experiment=politics", "stages=[sample]", override,
                                    f"hydra.run.dir={run_dir}", cwd=PROJECT_ROOT))
    assert expected in line
    assert not run_dir.exists()


def test_unknown_group_option_lists_the_available_ones(tmp_path):
    line = _one_line_exit_2(run_cli("+experiment=politics", "model=nonexistent", f"hydra.run.dir={tmp_path / 'r'}",
                                    cwd=PROJECT_ROOT))
    assert "available: " in line and "local" in line and "litellm" in line


def test_run_dir_that_is_a_file(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("mine")
    line = _one_line_exit_2(run_cli("+experiment=politics", "stages=[sample]", f"hydra.run.dir={target}",
                                    cwd=PROJECT_ROOT))
    assert str(target) in line and "is a file" in line
    assert target.read_text() == "mine"


def test_run_dir_that_cannot_be_created(tmp_path):
    if os.geteuid() == 0:
        parent = Path("/sys")  # even root may not create directories there
    else:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o555)
    line = _one_line_exit_2(run_cli("+experiment=politics", "stages=[sample]", f"hydra.run.dir={parent / 'run-x9'}",
                                    cwd=PROJECT_ROOT))
    assert "hydra.run.dir" in line and "run-x9" in line


def _instrument(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "inst.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


ONE_OPTION = """id: t
title: T
questions:
  - id: only
    kind: single_choice
    text: Pick one.
    options:
      - {code: a, label: The only option}
"""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (ONE_OPTION, "question 'only': a single_choice question needs at least 2 options shown (got 1)"),
        (ONE_OPTION.replace("Pick one.", "Caf\xe9?").encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
    ],
    ids=["one-option", "latin-1"],
)
def test_bad_instrument_files_are_one_line(tmp_path, content, expected):
    path = _instrument(tmp_path, content)
    run_dir = tmp_path / "run"
    line = _one_line_exit_2(run_cli("+experiment=politics", "model=baseline/uniform", f"survey.instrument={path}",
                                    f"hydra.run.dir={run_dir}", cwd=PROJECT_ROOT))
    assert expected in line and str(path) in line
    assert not run_dir.exists()


def test_sigterm_outside_administer_exits_with_a_resume_hint(tmp_path):
    # The population spec is a FIFO: the run blocks reading it (before administer) until the test
    # has sent SIGTERM, so the signal arrives at a known point without any timing.
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    run_dir = tmp_path / "run"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simsurvey", "+experiment=politics", "stages=[sample]", f"population.spec={fifo}",
         f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        with open(fifo, "w"):  # returns once the run opened the spec for reading
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert lines == [f"simsurvey: terminated; resume with hydra.run.dir={run_dir}"]
