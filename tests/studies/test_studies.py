"""The built-in studies (abortion, personality, thermometers): population specs built from their
human samples, instruments mapped to their data sets, and a tiny end-to-end run of each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simsurvey import load_instrument
from simsurvey.config import PROJECT_ROOT
from simsurvey.instruments.config import SurveyConfig
from simsurvey.reference import load_reference
from simsurvey.reference.builtin import BFI_REVERSE_KEYED, BUILTIN

PERSONAS = PROJECT_ROOT / "personas"
GSS_WAVES = [1977, 1985, 1994, 2000, 2010, 2018]
ANES_WAVES = [1980, 1988, 1996, 2004, 2012]
GSS_ITEMS = ["abdefect", "abnomore", "abhlth", "abpoor", "abrape", "absingle", "abany"]

# spec -> (data set, waves, answer columns, attributes taken from the data)
SPECS = {
    "us_gss_waves": ("gss_abortion", GSS_WAVES, GSS_ITEMS, ["year", "sex", "age", "education"]),
    "us_anes_waves": ("anes_partytherms", ANES_WAVES, ["therm_dem", "therm_gop"],
                      ["year", "age", "education", "race_ethnicity", "region"]),
    "bfi_sample": ("bfi", None, [f"{f}{i}" for f in "ACENO" for i in range(1, 6)], ["sex", "age", "education"]),
}


def _spec(name: str) -> dict:
    return yaml.safe_load((PERSONAS / f"{name}.yaml").read_text(encoding="utf-8"))


def _study_rows(name: str) -> pd.DataFrame:
    """The study rows recomputed here, from the reference file, without the build script."""
    dataset, waves, answers, attrs = SPECS[name]
    df = pd.read_parquet(BUILTIN[dataset].path)
    if waves is not None:
        df = df[df["year"].isin(waves)].copy()
        df["year"] = df["year"].astype(int).astype(str)
    df = df[df[answers].notna().any(axis=1)]
    return df.dropna(subset=[*attrs, "age_years"])


@pytest.mark.parametrize("name", list(SPECS))
def test_spec_shares_are_the_samples_weighted_shares(name: str) -> None:
    spec = _spec(name)
    rows = _study_rows(name)
    for attr in SPECS[name][3]:
        cats = spec["attributes"][attr]["categories"]
        shares = {str(c["code"]): c["share"] for c in cats}
        expected = rows.groupby(attr)["weight"].sum() / rows["weight"].sum()
        assert set(shares) == set(expected.index), attr
        for code, share in shares.items():
            # Rounded to 4 decimals (largest remainder): within one unit of the last decimal.
            assert abs(share - expected[code]) < 1e-4 + 1e-12, (attr, code, share, expected[code])
        assert abs(sum(shares.values()) - 1.0) < 1e-12
    # The seed is the same rows.
    seed = pd.read_parquet(PERSONAS / spec["seed"]["file"])
    assert len(seed) == len(rows)
    assert not seed[SPECS[name][3]].isna().any().any()
    for attr in SPECS[name][3]:
        assert seed[attr].value_counts().sort_index().equals(rows[attr].astype(str).value_counts().sort_index())


def test_gss_spec_is_year_conditioned_and_leaves_race_out() -> None:
    spec = _spec("us_gss_waves")
    year = spec["attributes"]["year"]
    assert year["statement"] == "It is {label}."
    assert [c["code"] for c in year["categories"]] == [str(w) for w in GSS_WAVES]
    assert "race_ethnicity" not in spec["attributes"]
    # Every chosen wave asked all seven items (abany from 1977 on).
    gss = pd.read_parquet(BUILTIN["gss_abortion"].path)
    asked = gss[gss["year"].isin(GSS_WAVES)].groupby("year")[GSS_ITEMS].count()
    assert (asked > 0).all().all() and len(asked) == len(GSS_WAVES)
    # Race/ethnicity is null in the GSS before 2000, so it cannot be an attribute of these waves.
    assert gss.loc[gss["year"] < 2000, "race_ethnicity"].isna().all()
    assert spec["derived"]["college"]["from"] == "education"


def test_anes_spec_race_codes_and_sex() -> None:
    spec = _spec("us_anes_waves")
    attrs = spec["attributes"]
    assert [c["code"] for c in attrs["race_ethnicity"]["categories"]] == ["white_nh", "black_nh", "hispanic"]
    assert "household_income" not in attrs
    # Sex is not in the data: the census share, and no baseline cell or compare variable uses it.
    us = yaml.safe_load((PERSONAS / "us_adults.yaml").read_text(encoding="utf-8"))
    assert attrs["sex"]["categories"] == [{k: c[k] for k in ("code", "label", "share", "noun")}
                                          for c in us["attributes"]["sex"]["categories"]]
    assert "sex" not in spec["compare"]
    assert all("sex" not in cell for cell in spec["baseline_cells"])
    assert spec["baseline_cells"][-1] == []


def test_age_bands_end_at_the_oldest_respondent() -> None:
    for name in SPECS:
        rows = _study_rows(name)
        cats = _spec(name)["attributes"]["age"]["categories"]
        assert cats[-1]["years"] == [65, int(rows["age_years"].max())]
        for c in cats:
            ages = rows.loc[rows["age"] == c["code"], "age_years"]
            assert ages.between(*c["years"]).all(), c


def test_build_script_check_passes() -> None:
    proc = subprocess.run([sys.executable, "scripts/build_study_specs.py", "--check"], check=False, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")})
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- instruments --------------------------------------------------------------------------------


def _reference(instrument: str, dataset: str) -> tuple[object, pd.DataFrame]:
    inst = load_instrument(instrument)
    return inst, load_reference(inst, SurveyConfig(instrument=instrument, reference=[dataset]))


def test_abortion_battery_maps_the_chosen_waves() -> None:
    inst, ref = _reference("surveys/abortion.yaml", "gss_abortion")
    assert [q.id for q in inst.questions] == GSS_ITEMS
    assert {q.battery for q in inst.questions} == {"abortion"}
    assert len({q.stem for q in inst.questions}) == 1
    gss = pd.read_parquet(BUILTIN["gss_abortion"].path)
    gss = gss[gss["year"].isin(GSS_WAVES)]
    for item in GSS_ITEMS:
        got = ref[ref["question_id"] == item]
        assert len(got) == gss[item].notna().sum()
        yes = (gss[item] == 1).sum()
        assert (got["answer_code"] == "yes").sum() == yes
        assert set(got["respondent_id"].str[:4].astype(int)) == set(GSS_WAVES)
    assert len(ref[ref["question_id"] == "abany"]) == 9_416


def test_personality_batteries_and_reverse_keys() -> None:
    inst, ref = _reference("surveys/personality.yaml", "bfi")
    assert len(inst.questions) == 25
    batteries = {}
    for q in inst.questions:
        batteries.setdefault(q.battery, []).append(q.id)
    assert [ids[0][0] for ids in batteries.values()] == list("ACENO")
    assert all(len(ids) == 5 for ids in batteries.values())
    assert sorted(q.id for q in inst.questions if q.reverse_keyed) == sorted(BFI_REVERSE_KEYED)
    assert all(len(q.codes) == 6 for q in inst.questions)
    bfi = pd.read_parquet(BUILTIN["bfi"].path)
    n = ref.groupby("question_id").size()
    for q in inst.questions:
        assert n[q.id] == bfi[q.id].notna().sum()
        # 1 = very inaccurate ... 6 = very accurate, in scale order.
        counts = ref[ref["question_id"] == q.id]["answer_code"].value_counts()
        raw = bfi[q.id].value_counts()
        assert [counts.get(code, 0) for code in q.codes] == [raw.get(float(v), 0) for v in range(1, 7)]


def test_thermometers_map_both_parties_by_year() -> None:
    _inst, ref = _reference("surveys/thermometers.yaml", "anes_partytherms")
    raw = pd.read_parquet(BUILTIN["anes_partytherms"].path)
    raw = raw[raw["year"].isin(ANES_WAVES)]
    for q in ("therm_dem", "therm_gop"):
        got = ref[ref["question_id"] == q]
        years = got["respondent_id"].str[:4].astype(int).value_counts().sort_index()
        expected = raw.loc[raw[q].notna(), "year"].astype(int).value_counts().sort_index()
        assert years.to_dict() == expected.to_dict()
        assert np.isclose(got["answer_value"].mean(), raw[q].mean())


# -- tiny end-to-end runs (baselines only: no embedded-model call) --------------------------------

RUNS = {
    # experiment: (model, waves or None)
    "abortion": ("baseline/reference", GSS_WAVES),
    "personality": ("baseline/uniform", None),
    "thermometers": ("baseline/reference", ANES_WAVES),
}


def _run(experiment: str, base: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    model = RUNS[experiment][0]
    run_dir = base / experiment
    env = {**os.environ, "CI": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run(
        [sys.executable, "-m", "simsurvey", f"+experiment={experiment}", f"model={model}", "baselines=[]",
         "population.n=4", "analysis.bootstrap=0", "analysis.null_draws=20", "analysis.min_group_n=1",
         # The report of the tiny runs adds nothing these tests read (the report has its own tests).
         "stages=[sample,administer,analyze]",
         f"runner.cache_dir={base / 'cache'}", f"hydra.run.dir={run_dir}", *extra],
        check=False, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    return proc, run_dir


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(RUNS))
def test_tiny_end_to_end_run(experiment: str, tmp_path: Path) -> None:
    from simsurvey.population.variables import read_variables

    proc, run_dir = _run(experiment, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    personas = pd.read_parquet(run_dir / "personas.parquet")
    responses = pd.read_parquet(run_dir / "responses.parquet")
    reference = pd.read_parquet(run_dir / "reference.parquet")
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    assert len(personas) == 4
    inst = load_instrument(PROJECT_ROOT / "surveys" / f"{experiment}.yaml")
    answered = responses[responses["persona_id"].notna()].groupby("persona_id")["question_id"].nunique()
    assert (answered == len(inst.questions)).all() and len(answered) == 4
    waves = RUNS[experiment][1]
    variables = read_variables(run_dir / "personas.parquet")
    if waves is None:
        assert "year" not in personas.columns
        assert not personas["cue"].str.startswith("It is").any()
        return
    # Year-conditioned: the cue opens with the persona's survey year, which is one of the waves, and
    # the human answers carry their respondent's year as the same variable.
    codes = [str(w) for w in waves]
    assert variables.codes("year") == tuple(codes)
    assert set(personas["year"]) <= set(codes)
    for year, cue in zip(personas["year"], personas["cue"]):
        assert cue.startswith(f"It is {year}.\n"), cue
    assert set(reference["year"]) == set(codes)
    assert (reference["respondent_id"].str[:4] == reference["year"]).all()
    # The analysis compares by year (the spec's compare list puts it first).
    by_year = metrics[metrics["group_var"] == "year"]
    # ('*': a statistic over all of year's groups at once, e.g. the subgroup-structure rows.)
    assert set(by_year["group_value"]) - {"*"} <= set(codes) and len(by_year)
    if experiment == "thermometers":
        # Means close, variance collapsed: both read per year.
        assert {"value_mean_diff", "value_variance_ratio"} <= set(by_year["metric"])
