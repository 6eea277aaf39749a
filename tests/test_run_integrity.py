"""Run-directory integrity through the CLI (offline baselines, so each run takes seconds):
the fingerprint refuses a resume or re-analysis under other settings, the lock refuses a second
process, damaged files are one line naming them, the manifest sums spend over attempts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simsurvey.config import PROJECT_ROOT
from simsurvey.runner._checkpoint import part_paths

BASE = ["+experiment=politics", "model=baseline/uniform", "baselines=[reference]", "population.n=6"]


def cli(run_dir: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "simsurvey", *BASE, f"runner.cache_dir={cache}", f"hydra.run.dir={run_dir}", *extra],
        check=False, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in {"simsurvey.log", ".lock"}}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("integrity")
    run_dir, cache = base / "run", base / "cache"
    proc = cli(run_dir, cache, "stages=[sample,administer,analyze]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, cache


@pytest.fixture
def run(base_run, tmp_path):
    """A fresh copy of the base run (sample, administer, analyze done)."""
    src, cache = base_run
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst, cache


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["prompt.persona_role=user"], "prompt.persona_role"),
        (["+model.temperature=0"], "model.temperature"),
        (["model.elicitation=logprobs"], "model.elicitation"),
        (["design.cue=backstory"], "design.cue"),
        (["population.n=7"], "population.n"),
        (["design.replicates=2"], "design.replicates"),
    ],
)
def test_a_resume_under_other_settings_is_refused_naming_them(run, change, named):
    run_dir, cache = run
    before = snapshot(run_dir)
    line = one_line(cli(run_dir, cache, *change))
    assert named in line and "start a new run" in line and "drop hydra.run.dir" in line
    assert snapshot(run_dir) == before  # nothing written: not the parts, manifest or .hydra record


def test_a_changed_instrument_is_refused_naming_the_question(run, tmp_path):
    run_dir, cache = run
    text = (PROJECT_ROOT / "surveys" / "politics.yaml").read_text(encoding="utf-8")
    assert "do you think of yourself as a Democrat" in text
    changed = tmp_path / "politics.yaml"
    changed.write_text(text.replace("do you think of yourself as a Democrat", "are you a Democrat"), encoding="utf-8")
    line = one_line(cli(run_dir, cache, f"survey.instrument={changed}"))
    assert "instrument question 'pid7'" in line


def test_a_resume_under_the_same_settings_goes_on_and_spend_is_summed_over_attempts(run):
    run_dir, cache = run
    # Settings that do not change answers are free to change on resume.
    proc = cli(run_dir, cache, "stages=[sample,administer]", "runner.concurrency=2", "runner.max_retries=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    attempts = manifest["attempts"]
    assert [a["status"] for a in attempts] == ["finished", "finished"]
    first, second = attempts[0]["spend"]["calls"], attempts[1]["spend"]["calls"]
    assert first > 0 and second == 0  # every row was checkpointed: the resume made no call
    assert manifest["spend"]["calls"] == first + second
    assert manifest["stages"]["administer"]["models"]["baseline/uniform"]["calls"] == 0


def test_reanalysis_reads_what_the_run_stored(run):
    run_dir, cache = run
    stored = pd.read_parquet(run_dir / "reference.parquet")
    proc = cli(run_dir, cache, "stages=[analyze]", "model=local")  # analysis does not depend on the model setting
    assert proc.returncode == 0, proc.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "reference.parquet"), stored)


@pytest.mark.parametrize("change", ["survey.reference=[anes1996,cces2016]", "survey.combine=all"])
def test_reanalysis_with_another_reference_is_refused(run, change):
    run_dir, cache = run
    before = snapshot(run_dir)
    line = one_line(cli(run_dir, cache, "stages=[analyze]", change))
    assert "survey." in line and "start a new run" in line
    assert snapshot(run_dir) == before


def test_reanalysis_with_another_reference_is_refused_without_a_fingerprint(run):
    # A run directory made before fingerprints: the stored reference.parquet itself is compared.
    run_dir, cache = run
    (run_dir / "fingerprint.json").unlink()
    before = snapshot(run_dir)
    line = one_line(cli(run_dir, cache, "stages=[analyze]", "survey.reference=[anes1996,cces2016]"))
    assert line.startswith("simsurvey: error: survey.reference: the human reference differs")
    assert snapshot(run_dir) == before


_HOLDER = """
import sys
from pathlib import Path
from simsurvey.rundir import lock_run_dir
with lock_run_dir(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_a_second_process_on_a_locked_run_dir_fails_fast(run):
    run_dir, cache = run
    before = snapshot(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = one_line(cli(run_dir, cache))
        assert f"pid {holder.pid}" in line and "another simsurvey process" in line
        assert snapshot(run_dir) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    # Released with its holder: the run goes on.
    assert cli(run_dir, cache, "stages=[administer]").returncode == 0


def _damage(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_damaged_part_is_named_and_dropped_on_request(run):
    run_dir, cache = run
    part = part_paths(run_dir / "parts" / "responses" / "baseline_uniform")[0]
    _damage(part)
    line = one_line(cli(run_dir, cache, "stages=[administer]"))
    assert str(part) in line and "runner.drop_damaged_parts=true" in line
    proc = cli(run_dir, cache, "stages=[administer]", "runner.drop_damaged_parts=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"dropped damaged part {part}" in proc.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stats = manifest["stages"]["administer"]["models"]["baseline/uniform"]
    assert stats["new_rows"] > 0 and stats["rows"] == manifest["stages"]["administer"]["trials"]


@pytest.mark.parametrize(
    ("name", "stages", "fix"),
    [
        ("manifest.json", "[administer]", "move it aside"),
        ("fingerprint.json", "[administer]", "start a new run"),
        ("personas.parquet", "[administer]", "rerun with 'sample' in stages"),
        ("responses.parquet", "[analyze]", "rebuilt from the checkpoint parts"),
        ("reference.parquet", "[analyze]", "rebuilt from survey.reference"),
    ],
)
def test_a_damaged_run_file_is_one_line_naming_it(run, name, stages, fix):
    run_dir, cache = run
    _damage(run_dir / name)
    line = one_line(cli(run_dir, cache, f"stages={stages}"))
    assert str(run_dir / name) in line and fix in line
