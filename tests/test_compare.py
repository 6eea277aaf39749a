from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simsurvey.compare import compare_runs, describe_runs, find_runs, main
from simsurvey.errors import UserError
from simsurvey.io import schema_version, write_parquet

MODELS = {"local": "SmolLM2-135M-Instruct", "baseline/uniform": "baseline/uniform"}


def _run(path: Path, *, model: str, cue: str, seed: int, hydra: bool = True) -> Path:
    """A sweep job directory: metrics.parquet (overall + one subgroup), manifest, overrides."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    rows = []
    for q in ("pid7", "ideo5", "religion"):
        for metric in ("js_divergence", "entropy_ratio"):
            for gv, val in (("all", "all"), ("sex", "male")):
                v = float(rng.uniform(0, 1))
                rows.append({"model": MODELS[model], "question_id": q, "group_var": gv, "group_value": val,
                             "metric": metric, "value": v, "ci_low": v - 0.1, "ci_high": v + 0.1,
                             "noise_floor": 0.01, "n_silicon": 100, "n_human": 500})
    write_parquet(pd.DataFrame(rows), path / "metrics.parquet", kind="metrics")
    config = {"seed": 1, "model": {"name": MODELS[model]}, "design": {"cue": cue}, "population": {"n": 100}}
    (path / "manifest.json").write_text(json.dumps({"seed": 1, "config": config}))
    if hydra:
        (path / ".hydra").mkdir()
        (path / ".hydra" / "overrides.yaml").write_text(
            f"- +experiment=politics\n- model={model}\n- design.cue={cue}\n")
    return path


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "multirun" / "2026-11-23" / "10-00-00"
    jobs = [("local", "attributes"), ("local", "backstory"), ("baseline/uniform", "attributes"),
            ("baseline/uniform", "backstory")]
    for i, (m, c) in enumerate(jobs):
        _run(root / str(i), model=m, cue=c, seed=i)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_find_runs(sweep, tmp_path):
    runs = find_runs([sweep])
    assert [r.name for r in runs] == ["0", "1", "2", "3"]
    assert find_runs([sweep / "2", sweep / "2"]) == [(sweep / "2").resolve()]
    with pytest.raises(UserError, match="not a directory"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run directories"):
        find_runs([tmp_path / "empty"])


def test_compare_runs_keeps_overall_rows(sweep):
    table = compare_runs(find_runs([sweep]))
    assert list(table.columns) == ["run", "overrides", "model", "question_id", "metric", "value", "ci_low", "ci_high"]
    assert len(table) == 4 * 3 * 2  # runs × questions × metrics, group_var == "all" only
    m = pd.read_parquet(sweep / "1" / "metrics.parquet")
    want = m[(m.group_var == "all") & (m.metric == "js_divergence") & (m.question_id == "ideo5")]["value"].iloc[0]
    got = table[(table.run == "1") & (table.metric == "js_divergence") & (table.question_id == "ideo5")]["value"]
    assert got.tolist() == [want]
    assert table[table.run == "1"]["overrides"].iloc[0] == "+experiment=politics model=local design.cue=backstory"


def test_overrides_from_manifest_diff_without_hydra(tmp_path):
    a = _run(tmp_path / "a", model="local", cue="attributes", seed=0, hydra=False)
    b = _run(tmp_path / "b", model="local", cue="backstory", seed=1, hydra=False)
    d = describe_runs([a, b])
    assert d == {a: 'design.cue="attributes"', b: 'design.cue="backstory"'}


def test_cli_writes_files_and_prints_pivot(sweep, tmp_path, capsys):
    out = tmp_path / "cmp" / "comparison.parquet"
    out.parent.mkdir()
    assert main([str(sweep), "--out", str(out), "--metric", "js_divergence"]) == 0
    printed = capsys.readouterr().out
    assert "4 run(s)" in printed and "js_divergence" in printed and "entropy_ratio" not in printed
    table = pd.read_parquet(out)
    assert set(table["metric"]) == {"js_divergence"} and schema_version(out) is not None
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert len(csv) == len(table) == 12
    # the printed pivot is the mean over questions of each run's overall metric
    m = pd.read_parquet(sweep / "3" / "metrics.parquet")
    mean = m[(m.group_var == "all") & (m.metric == "js_divergence")]["value"].mean()
    assert f"{mean:.4f}" in printed


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    _run(tmp_path / "r", model="local", cue="attributes", seed=0)
    assert main([str(tmp_path / "r"), "--metric", "nope", "--out", str(tmp_path / "c.parquet")]) == 2
    assert "--metric 'nope' not in" in capsys.readouterr().err
    assert not (tmp_path / "c.parquet").exists()


def test_module_entry_point(sweep, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "simsurvey.compare", str(sweep / "0"), str(sweep / "2"),
                           "--out", str(tmp_path / "c.parquet")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SmolLM2-135M-Instruct" in proc.stdout and (tmp_path / "c.csv").exists()


def test_pivot_labels_runs_by_what_differs(sweep):
    from simsurvey.compare import pivot, varying_overrides

    assert varying_overrides(["+e=p model=a x=1", "+e=p model=b x=1"]) == ["model=a", "model=b"]
    p = pivot(compare_runs(find_runs([sweep])))
    assert p.index.get_level_values("run").tolist() == [
        "0 model=local design.cue=attributes", "1 model=local design.cue=backstory",
        "2 model=baseline/uniform design.cue=attributes", "3 model=baseline/uniform design.cue=backstory"]
