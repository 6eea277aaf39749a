"""``simsurvey check`` and the coverage check of every run, through the CLI, with a user's CSV whose
race codes cannot express Hispanic personas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simsurvey.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

INSTRUMENT = {
    "id": "mini", "title": "Mini survey",
    "questions": [{"id": "pid3", "kind": "single_choice", "text": "Which party do you feel closest to?",
                   "options": [{"code": "dem", "label": "Democrat"}, {"code": "rep", "label": "Republican"},
                               {"code": "ind", "label": "Independent"}]}],
}


def write_study(root: Path, n: int = 400, seed: int = 1) -> tuple[Path, Path]:
    """A CSV with sex, age in years and a race item without Hispanic (1 white, 2 black, 3 asian,
    4 other), its mapping and a one-question instrument. Returns (instrument, mapping)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "id": np.arange(n), "wt": rng.uniform(0.5, 1.5, n), "gender": rng.choice([1, 2], n),
        "age": rng.integers(18, 90, n), "race": rng.choice([1, 2, 3, 4], n, p=[0.6, 0.2, 0.1, 0.1]),
        "party": rng.choice([1, 2, 3, 9], n),
    }).to_csv(root / "data.csv", index=False)
    (root / "mine.yaml").write_text(yaml.safe_dump({
        "id": "mine", "file": "data.csv", "respondent_id": "id", "weight": "wt",
        "demographics": {
            "sex": {"column": "gender", "codes": {1: "male", 2: "female"}},
            "age": {"column": "age", "years": True},
            "race_ethnicity": {"column": "race", "codes": {1: "white_nh", 2: "black_nh", 3: "asian_nh",
                                                           4: "other_multiple_nh"}},
        },
        "questions": {"pid3": {"column": "party", "codes": {1: "dem", 2: "rep", 3: "ind"}, "missing": [9]}},
    }), encoding="utf-8")
    (root / "mini.yaml").write_text(yaml.safe_dump(INSTRUMENT), encoding="utf-8")
    return root / "mini.yaml", root / "mine.yaml"


def run_cli(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "CI": "true"}
    return subprocess.run([sys.executable, "-m", "simsurvey", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("check")
    inst, mapping = write_study(base / "study")
    return base, inst, mapping


def _study_args(inst: Path, mapping: Path) -> list[str]:
    return [f"survey.instrument={inst}", f"survey.reference=[{mapping}]", "population.n=200"]


def test_check_refuses_personas_the_human_data_cannot_express(study):
    base, inst, mapping = study
    run_dir = base / "refused"
    proc = run_cli("check", *_study_args(inst, mapping), f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2, proc.stderr
    # the table is printed first, the hispanic row flagged
    assert "Mini survey" in proc.stdout and "pid3: mine.party:" in proc.stdout
    assert "targets: spec" in proc.stdout
    hisp = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("hispanic")]
    assert len(hisp) == 1 and "no human respondent" in hisp[0]
    assert "not in the human data (subgroups on them cannot be compared): education, college, region, household_income" \
        in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "mine has no respondent with race_ethnicity hispanic" in lines[0]
    assert "survey.accept_uncovered=true" in lines[0] and "population.targets=reference" in lines[0]
    assert not run_dir.exists()


def test_check_accepts_explicitly_and_matched_personas_pass(study):
    base, inst, mapping = study
    run_dir = base / "accepted"
    proc = run_cli("check", *_study_args(inst, mapping), "survey.accept_uncovered=[race_ethnicity]",
                   f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    assert "without a human counterpart, accepted" in proc.stdout and "a run would proceed" in proc.stdout
    assert not run_dir.exists()
    proc = run_cli("check", *_study_args(inst, mapping), "population.targets=reference", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    assert "drawn to the weighted composition of mine (targets: reference)" in proc.stdout
    assert "every persona has a human counterpart" in proc.stdout
    assert "education: spec targets, independent of the others (not in mine)" in proc.stdout
    assert not run_dir.exists()


def test_a_run_is_refused_before_any_model_call_and_an_accepted_one_is_counted(study):
    base, inst, mapping = study
    args = [*_study_args(inst, mapping), "model=baseline/uniform", "baselines=[]", "design.no_persona=false",
            "design.orders=[as_is]", "design.labels=[letters]", "population.n=40",
            f"runner.cache_dir={base / 'cache'}"]
    refused = base / "run_refused"
    proc = run_cli(*args, f"hydra.run.dir={refused}")
    assert proc.returncode == 2 and "race_ethnicity hispanic" in proc.stderr
    assert not refused.exists() and not (base / "cache").exists()  # nothing half-written, nothing asked
    run_dir = base / "run_accepted"
    proc = run_cli(*args, "survey.accept_uncovered=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "personas have no human counterpart in race_ethnicity (accepted" in proc.stdout
    man = json.loads((run_dir / "manifest.json").read_text())
    cov = man["coverage"]
    personas = pd.read_parquet(run_dir / "personas.parquet")
    n_hisp = int((personas["race_ethnicity"] == "hispanic").sum())
    assert n_hisp > 0 and cov["ok"] and cov["uncovered_personas"] == n_hisp
    assert cov["accepted_attributes"] == ["race_ethnicity"] and cov["targets"] == "spec"
    rows = {c["code"]: c for c in man["composition"]["sources"]["mine"]["variables"]["race_ethnicity"]["codes"]}
    assert rows["hispanic"]["persona_n"] == n_hisp and not rows["hispanic"]["covered"]
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Personas and the human sample" in html
    assert f"{n_hisp:,} of 40 personas" in html and "have no human counterpart" in html
    assert "targets: spec" in html


def test_check_prints_the_mappings_warnings(tmp_path):
    inst, mapping = write_study(tmp_path / "study")
    m = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    m["questions"]["pid3"]["missing"] = [9, 99]  # 99 never occurs in the column
    mapping.write_text(yaml.safe_dump(m), encoding="utf-8")
    proc = run_cli("check", *_study_args(inst, mapping), "survey.accept_uncovered=true",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stdout.splitlines() if ln.startswith("mapping warning:")]
    assert len(warned) == 1 and "99" in warned[0] and "party" in warned[0], proc.stdout
