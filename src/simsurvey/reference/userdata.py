"""A user's own human data: CSV, parquet, Stata .dta or SPSS .sav, plus a YAML mapping.

Mapping file format (paths relative to the mapping file)::

    id: mysurvey                 # source id written to the `source` column
    description: 2024 panel, wave 2, adults 18+
    file: mysurvey.sav           # .csv, .parquet, .dta or .sav
    respondent_id: caseid        # optional: row number when absent
    weight: wt                   # optional: weight 1 when absent
    demographics:                # attributes of the population spec (its names and codes)
      sex: {column: gender, codes: {1: male, 2: female}, missing: [9]}
      age: {column: age_years, years: true}      # age in years -> the spec's age band
      region: {column: state, states: true}      # place name / code -> region (the spec's states file)
      education: {column: educ, codes: {1: less_than_high_school, ...}}
    questions:
      pid7: {column: q12, codes: {1: strong_democrat, ...}, missing: [98, 99]}
    experiments:                 # optional: the arm each respondent got in an instrument experiment
      mandate_order: {column: form, codes: {1: cannot_afford_second, 2: penalty_second}, missing: [9]}

Values are matched as strings (1.0 reads as '1'); .dta/.sav are read with their numeric codes,
not their value labels. A derived attribute of the spec (``college`` from ``education``) is filled
from its source when the mapping gives only the source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from simsurvey.config import format_validation_error
from simsurvey.errors import UserError
from simsurvey.instruments.models import Instrument, _to_code_list, _to_code_map
from simsurvey.io import read_yaml
from simsurvey.reference.codes import value_keys

if TYPE_CHECKING:
    from simsurvey.population.variables import Variables

_READERS = (".csv", ".parquet", ".pq", ".dta", ".sav", ".zsav")


class ColumnMap(BaseModel):
    """One column of the user's file mapped onto codes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description="Column in the data file.")
    codes: Annotated[dict[str, str], BeforeValidator(_to_code_map)] = Field(
        default_factory=dict, description="Value (as a string) -> code."
    )
    missing: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        default=(), description="Values meaning 'no answer' (dropped, like empty cells)."
    )
    years: bool = Field(default=False, description="An attribute with age bands (years) only: the column is age in years.")
    states: bool = Field(default=False, description="An attribute with a places file only: the column is a place name or code.")
    numeric: bool = Field(
        default=False,
        description="A numeric question's column: its value is the answer (codes may map special values to "
        "non-substantive options, e.g. 998 -> dk).",
    )

    @model_validator(mode="after")
    def _check(self) -> ColumnMap:
        if self.years and self.states:
            raise ValueError("years and states cannot both be set")
        if not (self.codes or self.years or self.states or self.numeric):
            raise ValueError("needs codes (or years: true for age, states: true for region, numeric: true for a numeric question)")
        both = sorted(set(self.codes) & set(self.missing))
        if both:
            raise ValueError(f"value '{both[0]}' is both in codes and in missing")
        return self


class Mapping(BaseModel):
    """A user's data mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Source id written to the `source` column.")
    description: str = Field(default="", description="What the sample is (and is not).")
    file: str = Field(description="Data file, relative to the mapping file.")
    respondent_id: str | None = Field(default=None, description="Respondent id column (row number if absent).")
    weight: str | None = Field(default=None, description="Weight column (weight 1 if absent).")
    demographics: dict[str, ColumnMap] = Field(default_factory=dict, description="Population attribute -> column map.")
    questions: dict[str, ColumnMap] = Field(min_length=1, description="Instrument question id -> column map.")
    experiments: dict[str, ColumnMap] = Field(
        default_factory=dict,
        description="Instrument experiment id -> the column holding each respondent's arm (codes: value -> arm id).",
    )


@dataclass(frozen=True)
class UserDataset:
    """A loaded user data set: ``data`` has respondent_id, weight and the demographics; ``raw``
    is the file as read, row-aligned with ``data``."""

    name: str
    mapping: Mapping
    data: pd.DataFrame
    raw: pd.DataFrame


def read_mapping(path: str | os.PathLike) -> Mapping:
    """Read and validate a mapping YAML file (UserError naming the file and key)."""
    p = Path(path)
    data = read_yaml(p, what="mapping file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with id, file and questions")
    try:
        return Mapping.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, prefix=f"{path}: ")) from None


def read_data_file(path: Path, *, name: str) -> pd.DataFrame:
    """Read a CSV / parquet / .dta / .sav file (numeric codes, not value labels)."""
    if not path.is_file():
        raise UserError(f"{name}: file: data file not found: {path}")
    ext = path.suffix.lower()
    try:
        if ext == ".csv":
            return pd.read_csv(path)
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if ext in (".dta", ".sav", ".zsav"):
            import pyreadstat

            reader = pyreadstat.read_dta if ext == ".dta" else pyreadstat.read_sav
            df, _meta = reader(str(path), apply_value_formats=False)
            return df
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure is the user's file
        raise UserError(f"{name}: file: cannot read {path.name}: {str(err).splitlines()[0]}") from None
    raise UserError(f"{name}: file: unsupported type '{ext}' (use one of {', '.join(_READERS)})")


def _need(raw: pd.DataFrame, column: str, *, what: str) -> pd.Series:
    if column not in raw.columns:
        raise UserError(f"{what}: column '{column}' is not in the data file")
    return raw[column]


def check_codes(col: pd.Series, variables: Variables, name: str, *, what: str) -> None:
    """Every non-null value of ``col`` is a code of variable ``name`` of the population.

    Raises:
        UserError: ``<what> has code '<x>', not a code of attribute <name> of population <spec>
            (codes: ...)``.
    """
    codes = variables.codes(name)
    bad = sorted(set(col.dropna().astype(str)) - set(codes))
    if bad:
        raise UserError(f"{what} has code '{bad[0]}', not a code of attribute {name} of population "
                        f"'{variables.name}' (codes: {', '.join(codes)})")


def _demographic(raw: pd.DataFrame, var: str, spec: ColumnMap, *, name: str,
                 variables: Variables | None) -> pd.Series:
    what = f"{name}: demographics.{var}"
    col = _need(raw, spec.column, what=what)
    keys = value_keys(col)
    is_missing = keys.isna() | keys.isin(list(spec.missing))
    if spec.years:
        if variables is None or not variables[var].years:
            raise UserError(f"{what}: years: true is only for an attribute with age bands (years) in the population spec")
        banded, outside = variables.band(var, col.where(~is_missing.to_numpy()))
        if outside.any():
            raise UserError(f"{what}: column '{spec.column}' value '{keys[outside].iloc[0]}' is not an age in years;"
                            " add it to missing")
        return banded
    if spec.states:
        if variables is None or var not in variables.places:
            raise UserError(f"{what}: states: true is only for an attribute with a states file in the population spec")
        out = variables.place(var, col.where(~is_missing.to_numpy()))
        unknown = ~is_missing & out.isna()
        if unknown.any():
            raise UserError(f"{what}: column '{spec.column}' value '{col[unknown].iloc[0]}' is not a place of the"
                            " population's states file; add it to missing")
        return out
    if variables is not None:
        allowed = variables.codes(var)
        bad = sorted(set(spec.codes.values()) - set(allowed))
        if bad:
            raise UserError(f"{what}: unknown code '{bad[0]}' (allowed: {', '.join(allowed)})")
    mapped = keys.map(spec.codes).where(~is_missing, None)
    unmapped = ~is_missing & mapped.isna()
    if unmapped.any():
        raise UserError(
            f"{what}: column '{spec.column}' value '{keys[unmapped].iloc[0]}' has no code; add it to codes, or to missing"
        )
    return mapped.astype("string")


def load_user_dataset(path: str | os.PathLike, instrument: Instrument, variables: Variables | None = None) -> UserDataset:
    """Load a user's data set through its mapping file and check it against the instrument and
    the population's variables (``demographics`` keys are its attributes, codes its codes).

    Raises:
        UserError: one line naming the mapping file and the key, column or value that is wrong
            (unknown question or option code, missing column, unmapped value, bad weight,
            duplicate respondent id, an empty demographic).
    """
    path = Path(path)
    name = str(path)
    mapping = read_mapping(path)
    for qid, spec in mapping.questions.items():
        try:
            q = instrument.question(qid)
        except KeyError:
            raise UserError(f"{name}: questions.{qid}: no such question in instrument '{instrument.id}'") from None
        bad = sorted(set(spec.codes.values()) - set(q.codes))
        if bad:
            raise UserError(f"{name}: questions.{qid}: unknown option code '{bad[0]}' (allowed: {', '.join(q.codes)})")
        if spec.years or spec.states:
            raise UserError(f"{name}: questions.{qid}: years/states are only for demographics")
    known = {e.id: e for e in instrument.experiments}
    for eid, spec in mapping.experiments.items():
        if eid not in known:
            raise UserError(f"{name}: experiments.{eid}: no such experiment in instrument '{instrument.id}'"
                            + (f" (it has: {', '.join(known)})" if known else ""))
        bad = sorted(set(spec.codes.values()) - set(known[eid].arm_ids))
        if bad:
            raise UserError(f"{name}: experiments.{eid}: unknown arm '{bad[0]}' (arms: {', '.join(known[eid].arm_ids)})")
        if spec.years or spec.states:
            raise UserError(f"{name}: experiments.{eid}: years/states are only for demographics")
    for var in mapping.demographics:
        if variables is not None and var not in variables:
            raise UserError(f"{name}: demographics.{var}: not an attribute of population '{variables.name}'"
                            f" (its attributes: {', '.join(variables.names)})")

    raw = read_data_file((path.parent / mapping.file), name=name).reset_index(drop=True)
    n = len(raw)
    if n == 0:
        raise UserError(f"{name}: file: {mapping.file} has no rows")
    for qid, spec in mapping.questions.items():
        _need(raw, spec.column, what=f"{name}: questions.{qid}")
    for eid, spec in mapping.experiments.items():
        _need(raw, spec.column, what=f"{name}: experiments.{eid}")

    if mapping.respondent_id:
        rid = value_keys(_need(raw, mapping.respondent_id, what=f"{name}: respondent_id"))
        if rid.isna().any():
            raise UserError(f"{name}: respondent_id: column '{mapping.respondent_id}' has empty values")
        dup = rid[rid.duplicated()]
        if len(dup):
            raise UserError(f"{name}: respondent_id: column '{mapping.respondent_id}' repeats id '{dup.iloc[0]}'")
    else:
        rid = pd.Series(np.arange(n).astype(str), dtype=object)
    if mapping.weight:
        w = pd.to_numeric(_need(raw, mapping.weight, what=f"{name}: weight"), errors="coerce")
        if w.isna().any() or (w < 0).any() or not (w > 0).any():
            raise UserError(
                f"{name}: weight: column '{mapping.weight}' must be numbers >= 0, not all 0, with no empty cells"
            )
    else:
        w = pd.Series(np.ones(n))

    data = pd.DataFrame({"respondent_id": pd.array(rid.astype(str).to_numpy(), dtype="string"), "weight": w.astype("float64").to_numpy()})
    for var in (variables.names if variables is not None else tuple(mapping.demographics)):
        spec = mapping.demographics.get(var)
        if spec is None:
            data[var] = pd.array([None] * n, dtype="string")
            continue
        col = _demographic(raw, var, spec, name=name, variables=variables)
        if col.isna().all():
            raise UserError(f"{name}: demographics.{var}: column '{spec.column}' has no mapped value")
        data[var] = pd.array(col.to_numpy(), dtype="string")
    if variables is not None:
        data = variables.derive(data)
    return UserDataset(name=name, mapping=mapping, data=data, raw=raw)
