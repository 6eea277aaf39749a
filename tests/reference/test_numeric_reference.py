"""Numeric questions' human answers: the variable's value is the answer; where; errors."""

from __future__ import annotations

import pandas as pd
import pytest

from simsurvey import load_instrument
from simsurvey.errors import UserError
from simsurvey.instruments.config import SurveyConfig
from simsurvey.instruments.models import (
    Instrument,
    NumericScale,
    Option,
    Question,
    ReferenceMapping,
)
from simsurvey.reference import load_reference
from simsurvey.reference.builtin import BUILTIN
from simsurvey.reference.load import map_numeric

THERMS = "surveys/thermometers.yaml"


def test_thermometers_map_the_chosen_waves_on_the_raw_scale() -> None:
    inst = load_instrument(THERMS)
    ref = load_reference(inst, SurveyConfig(instrument=THERMS, reference=["anes_partytherms"]))
    raw = pd.read_parquet(BUILTIN["anes_partytherms"].path)
    raw = raw[raw["year"].isin([1980, 1988, 1996, 2004, 2012])].set_index("respondent_id")
    dem = ref[ref["question_id"] == "therm_dem"].set_index("respondent_id")
    assert len(dem) == raw["therm_dem"].notna().sum() == 12_164
    assert (dem["answer_value"] == raw.loc[dem.index, "therm_dem"]).all()
    q = inst.question("therm_dem")
    assert (dem["answer_code"] == [q.bin_code(v) for v in dem["answer_value"]]).all()
    assert dem.index.str[:4].value_counts().to_dict() == {"2012": 5_856, "1988": 1_926, "1996": 1_687,
                                                          "1980": 1_517, "2004": 1_178}
    # Heaping is kept as it is: 50 is the most common rating.
    assert dem["answer_value"].value_counts().idxmax() == 50


def _q(**ref) -> Question:
    return Question(id="t", text="Rate it", kind="numeric", scale=NumericScale(min=0, max=10),
                    options=(Option(code="dk", label="Don't know", non_substantive=True),),
                    reference=(ReferenceMapping(dataset="anes_partytherms", variable="x", **ref),))


def test_special_values_missing_and_out_of_scale() -> None:
    q = _q(codes={"98": "dk"}, missing=["99"])
    vals = pd.Series([0.0, 7.0, 10.0, 98.0, 99.0, float("nan"), 2.5])
    codes, values, keep = map_numeric(vals, q, {"98": "dk"}, ["99"], what="x")
    assert keep.tolist() == [True, True, True, True, False, False, True]
    assert codes[keep].tolist() == ["0", "7", "10", "dk", "3"]  # bins [2.5, 3.5) ...: 2.5 is in the bin of 3
    assert values[keep].isna().tolist() == [False, False, False, True, False]
    with pytest.raises(UserError, match=r"x: value '-1' is outside the scale 0-10 \(and 1 more\); add it to missing"):
        map_numeric(pd.Series([1.0, 11.0, -1.0]), q, {}, [], what="x")


def test_a_numeric_mapping_may_not_map_onto_bins() -> None:
    with pytest.raises(ValueError, match="maps value '5' to bin '5'"):
        _q(codes={"5": "5"})


def test_where_errors_name_the_column() -> None:
    inst = load_instrument(THERMS)
    q = inst.question("therm_dem")
    bad = q.model_copy(update={"reference": (q.reference[0].model_copy(update={"where": {"wave": ("2012",)}}),)})
    with pytest.raises(UserError, match=r"question 'therm_dem': anes_partytherms.therm_dem: where: no such variable"):
        load_reference(Instrument(id="x", title="x", questions=(bad,)), SurveyConfig(reference=["anes_partytherms"]))
    none = q.model_copy(update={"reference": (q.reference[0].model_copy(update={"where": {"year": ("2006",)}}),)})
    with pytest.raises(UserError, match="keeps no respondent"):
        load_reference(Instrument(id="x", title="x", questions=(none,)), SurveyConfig(reference=["anes_partytherms"]))
