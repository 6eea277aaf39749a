"""Packaging: the wheel carries the config and data, and an installed copy runs from anywhere;
importing the config stays light (every CLI start pays for it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from simsurvey.paths import DATA_DIRS

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(CHECKOUT)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("simsurvey-*.whl")
    return whl


def test_the_wheel_carries_every_config_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for d in DATA_DIRS:
        files = [p for p in (CHECKOUT / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, d
        missing = [str(p.relative_to(CHECKOUT)) for p in files
                   if f"simsurvey/_data/{p.relative_to(CHECKOUT).as_posix()}" not in names]
        assert missing == [], missing
    assert "simsurvey/paths.py" in names and "simsurvey/__main__.py" in names


def test_an_installed_wheel_runs_the_experiment_from_another_directory(wheel, tmp_path):
    # The wheel unpacked as pip installs it (a wheel is a zip of site-packages' layout), run
    # from a directory with no conf/, personas/ or surveys/: the package's copy is used.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HYDRA_FULL_ERROR": "0"}
    code = "import simsurvey, simsurvey.paths as p; print(simsurvey.__file__); print(p.PROJECT_ROOT)"
    where = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                           timeout=120, check=True).stdout.split()
    assert where == [str(site / "simsurvey" / "__init__.py"), str(site / "simsurvey" / "_data")]
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simsurvey", "+experiment=politics", "stages=[sample]", "population.n=20",
         f"hydra.run.dir={run}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "personas.parquet").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["population"]["n"] == 20


def test_importing_the_config_does_not_import_the_stages():
    # simsurvey.config is imported on every CLI start, before the config is even validated;
    # the stages' packages, pandas, torch and litellm load only when a stage runs.
    code = (
        "import sys, simsurvey.config\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              check=True).stdout.split())
    # The package inits re-export lazily: only they, the config modules and two leaves load.
    allowed = {"simsurvey", "simsurvey.config", "simsurvey.errors", "simsurvey.paths",
               "simsurvey.analysis", "simsurvey.analysis.config", "simsurvey.population", "simsurvey.population.config",
               "simsurvey.instruments", "simsurvey.instruments.config", "simsurvey.report", "simsurvey.report.config",
               "simsurvey.respondents", "simsurvey.respondents.config", "simsurvey.respondents.prompt_config",
               "simsurvey.secrets"}
    assert sorted(m for m in mods if m.split(".")[0] == "simsurvey" and m not in allowed) == []
    heavy = sorted(m for m in mods if m.split(".")[0] in {"pandas", "numpy", "scipy", "pyarrow", "torch", "transformers",
                                                          "litellm", "matplotlib", "faker", "hydra"})
    assert heavy == []
