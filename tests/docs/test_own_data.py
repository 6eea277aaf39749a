"""docs/own-data.md runs as written: its commands (with a baseline model, so they are fast), its
Python snippet, and the script that built the example's CSV. The commands are read from the page
itself, so a page that drifts from the code fails here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simsurvey.config import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "own-data.md"
TEXT = DOC.read_text(encoding="utf-8")
#: Fast settings added after each documented run command (later overrides win).
FAST = ["model=baseline/majority", "baselines=[]", "population.n=40"]


def _commands() -> list[tuple[list[str], int]]:
    """(argv after ``python -m simsurvey``, expected exit code) of each documented command; a
    trailing ``# exit N`` comment gives the expected code (default 0)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", TEXT, flags=re.DOTALL):
        for line in (raw.strip() for raw in block.splitlines()):
            if not line.startswith("python -m simsurvey "):
                continue
            command, _, comment = line.partition("  #")
            code = re.match(r"\s*exit (\d+)", comment)
            out.append((shlex.split(command)[3:], int(code.group(1)) if code else 0))
    return out


COMMANDS = _commands()
RUNS = [c for c in COMMANDS if c[0][0] != "check"]
CHECKS = [c for c in COMMANDS if c[0][0] == "check"]


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "SIMSURVEY_CACHE_DIR": str(tmp_path / "cache"),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-m", "simsurvey", *args], check=False, cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_page_documents_the_three_commands_and_the_config_dir() -> None:
    assert len(CHECKS) == 3 and len(RUNS) == 2, COMMANDS
    assert any("--config-dir" in args for args, _ in RUNS)
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/own-data.md" in readme
    for args, _ in [*CHECKS[:2], *RUNS[:1]]:  # the README's three commands are the page's
        assert "python -m simsurvey " + shlex.join(args).replace("'", "") in readme.replace("'", "")


@pytest.mark.slow
@pytest.mark.parametrize("args", [a for a, _ in RUNS], ids=["overrides", "config-dir"])
def test_a_documented_run_makes_a_report(tmp_path: Path, args: list[str]) -> None:
    run_dir = tmp_path / "run"
    proc = _cli([*args, *FAST, f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"open the report: {run_dir / 'report.html'}" in proc.stdout
    ref = pd.read_parquet(run_dir / "reference.parquet")
    assert set(ref["source"]) == {"gss2018"}
    assert set(ref["question_id"]) == {"abany", "abrape", "abhlth", "partyid"}
    people = ref.drop_duplicates("respondent_id")
    # the mapping did its work: a table (race x hispanic), ranges (education), codes (sex)
    assert set(people["race_ethnicity"].dropna()) == {"white_nh", "black_nh", "hispanic", "other_multiple_nh"}
    assert set(people["education"].dropna()) == {"less_than_high_school", "high_school_graduate",
                                                 "some_college_or_associates", "bachelors", "graduate_or_professional"}
    assert set(people["sex"].dropna()) == {"female", "male"} and people["region"].isna().all()


@pytest.mark.parametrize(("args", "code"), CHECKS, ids=["refused", "accepted", "matched"])
def test_a_documented_check(tmp_path: Path, args: list[str], code: int) -> None:
    run_dir = tmp_path / "run"
    proc = _cli([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == code, proc.stderr[-3000:]
    if code:
        assert "race_ethnicity" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    else:
        assert "composition: persona share vs weighted human share" in proc.stdout
        assert "a run would proceed" in proc.stdout
    assert not run_dir.exists()  # check writes nothing


def test_the_python_snippet_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    (snippet,) = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)
    monkeypatch.chdir(PROJECT_ROOT)
    scope: dict = {}
    exec(compile(snippet, str(DOC), "exec"), scope)  # noqa: S102 - the page's own example
    ref = scope["reference"]
    assert len(ref) > 5000 and set(ref["question_id"]) == {"abany", "abrape", "abhlth", "partyid"}


def test_the_example_csv_is_what_its_script_builds() -> None:
    proc = subprocess.run([sys.executable, "scripts/build_own_data_example.py", "--check"], check=False,
                          cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _entries(node: object) -> list[dict]:
    """Every mapping entry (a dict that reads a column, columns or an expression) in a YAML tree."""
    if isinstance(node, dict):
        if {"column", "columns", "expression"} & set(node):
            return [node]
        return [e for v in node.values() for e in _entries(v)]
    return []


def test_every_mapping_snippet_is_a_valid_entry() -> None:
    import yaml

    from simsurvey.reference.userdata import ColumnMap

    section = TEXT[TEXT.index("## The mapping, key by key"):TEXT.index("### Value labels")]
    entries = []
    for block in re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL):
        # "..." stands for entries left out of a snippet
        entries += _entries(yaml.safe_load(re.sub(r",\s*\.\.\.", "", block)))
    assert len(entries) >= 15
    for entry in entries:
        ColumnMap.model_validate(entry)


def _documented_mistakes() -> list[str]:
    section = TEXT[TEXT.index("## Mistakes, and what they look like"):]
    (block,) = re.findall(r"```\n(.*?)```", section[:section.index("\n## ", 5)], flags=re.DOTALL)
    return block.strip().splitlines()


def _mistake(tmp_path: Path, change, data: pd.DataFrame | None = None, *, name: str = "gss2018.yaml") -> str:
    """The error of the example's mapping after ``change`` (a function of the mapping dict)."""
    import yaml

    from simsurvey.errors import UserError
    from simsurvey.instruments import SurveyConfig, load_instrument
    from simsurvey.reference import load_reference
    from simsurvey.reference.builtin import us_variables

    example = PROJECT_ROOT / "examples" / "own_data"
    mapping = yaml.safe_load((example / "gss2018.yaml").read_text(encoding="utf-8"))
    mapping["file"] = str(example / mapping["file"])
    if data is not None:
        mapping["file"] = "data.csv"
        data.to_csv(tmp_path / "data.csv", index=False)
    change(mapping)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_reference(load_instrument(example / "abortion.yaml"), SurveyConfig(reference=[str(path)]), us_variables())
    return str(info.value).replace(str(tmp_path) + "/", "")


def test_the_documented_mistakes_are_the_real_messages(tmp_path: Path) -> None:
    """Each line of the page's list of mistakes is what simsurvey says (paths aside)."""
    csv = pd.read_csv(PROJECT_ROOT / "examples" / "own_data" / "gss2018.csv")
    weighted = csv.assign(wt=1.0)

    def demo(key: str, **entry):
        return lambda m: m["demographics"].__setitem__(key, entry)

    def weight(m):
        m["weight"] = "wt"

    got = [
        _mistake(tmp_path, lambda m: m["demographics"]["sex"]["codes"].pop("Female")),
        _mistake(tmp_path, lambda m: m["questions"]["partyid"].pop("missing")),
        _mistake(tmp_path, lambda m: None, csv.assign(age=csv["age"].fillna(999))),
        _mistake(tmp_path, lambda m: None, csv.assign(educ=csv["educ"].fillna(98))),
        _mistake(tmp_path, lambda m: None, csv.assign(hispanic=csv["hispanic"].where(csv["race"] != "Other", 2))),
        _mistake(tmp_path, demo("age", expression="abs(2016 - birthyr)", years=True)),
        _mistake(tmp_path, lambda m: m["demographics"]["race_ethnicity"]["table"].append(
            {"race": "Other", "hispanic": 0, "code": "asian"})),
        _mistake(tmp_path, weight, weighted.assign(wt=weighted["wt"].where(weighted.index != 5, -1.0))),
        _mistake(tmp_path, weight, weighted.assign(wt=weighted["wt"].where(weighted["abany"].isna(), 0.0))),
    ]
    documented = [line.replace("examples/own_data/", "") for line in _documented_mistakes()
                  if line.startswith("examples/own_data/gss2018.yaml")]
    assert len(documented) == len(got)
    for want, line in zip(documented, got):
        assert re.fullmatch(re.escape(want).replace(r"\(\.\.\.\)", r"\(.*\)"), line), (want, line)


def test_the_documented_label_mistakes_are_the_real_messages(tmp_path: Path) -> None:
    import pyreadstat

    data = pd.DataFrame({"gender": [1, 2, 1], "age": [30, 98, 45], "abany": [1, 0, 1]})
    pyreadstat.write_sav(data, str(tmp_path / "mine.sav"),
                         variable_value_labels={"gender": {1: "Male", 2: "Female"}, "age": {98: "Don't know"}})

    def mine(**demographics):
        def change(m):
            m.update(file="mine.sav", demographics=demographics,
                     questions={"abany": {"column": "abany", "codes": {1: "yes", 0: "no"}}})
        return change

    got = [
        _mistake(tmp_path, mine(sex={"column": "gender", "codes": {1: "female", 2: "male"}}), name="mine.yaml"),
        _mistake(tmp_path, mine(age={"column": "age", "years": True}), name="mine.yaml"),
    ]
    documented = [line for line in _documented_mistakes() if line.startswith("mine.yaml")]
    assert got == documented
