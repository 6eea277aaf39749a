"""A user's own human data: CSV, parquet, Stata .dta or SPSS .sav, plus a YAML mapping.

The walk-through and every key with examples: ``docs/own-data.md`` ("Bring your own survey and
human data"). In short (paths relative to the mapping file)::

    id: mysurvey                 # source id written to the `source` column
    description: 2024 panel, wave 2, adults 18+
    file: mysurvey.sav           # .csv, .parquet, .dta or .sav
    respondent_id: caseid        # optional: row number when absent
    weight: wt                   # optional: weight 1 when absent
    demographics:                # attributes of the population spec (its names and codes)
      sex: {column: gender, codes: {1: male, 2: female}, missing: [9]}
      age: {expression: "2024 - birthyr", years: true, missing: [9999]}
      region: {column: state, states: true}      # place name / code -> region (the spec's states file)
      household_income: {column: inc, ranges: {under_50k: [0, 49999], 50k_100k: [50000, 99999], ...}}
      race_ethnicity:
        columns: [race, hispanic]
        table: [{race: 1, hispanic: 0, code: white_nh}, {race: "*", hispanic: 1, code: hispanic}, ...]
    questions:
      pid7: {column: q12, codes: {1: strong_democrat, ...}, missing: [98, 99]}
    experiments:                 # optional: the arm each respondent got in an instrument experiment
      mandate_order: {column: form, codes: {1: cannot_afford_second, 2: penalty_second}, missing: [9]}

An entry reads a ``column``, an ``expression`` or ``columns`` with a ``table``
(:mod:`simsurvey.reference.derive`), and maps it with ``codes``, ``years``, ``states``, ``ranges``
or (a numeric question) ``numeric: true``. Values are matched as strings (1.0 reads as '1');
.dta/.sav are read with their numeric codes, and their value labels are checked against the
mapping (:mod:`simsurvey.reference.labels`). A derived attribute of the spec (``college`` from
``education``) is filled from its source when the mapping gives only the source. Every mistake is
one line naming the file, key and value; a ``missing`` value that never occurs is a warning in the
provenance (``warnings``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from math import inf
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from simsurvey.instruments.models import (
    Instrument,
    _to_code,
    _to_code_list,
    _to_code_map,
)
from simsurvey.io import read_yaml
from simsurvey.population.variables import MAX_AGE
from simsurvey.reference.codes import value_keys
from simsurvey.reference.derive import (
    evaluate_expression,
    parse_expression,
    range_codes,
    table_codes,
)
from simsurvey.reference.labels import Category, check_labels, file_labels

if TYPE_CHECKING:
    from simsurvey.population.variables import Variables

_READERS = (".csv", ".parquet", ".pq", ".dta", ".sav", ".zsav")


def _to_table(value: Any) -> Any:
    """Table rows with their values as code strings (``*`` and lists kept)."""
    if not isinstance(value, (list, tuple)):
        return value
    rows = []
    for row in value:
        if not isinstance(row, dict):
            return value  # pydantic names the bad row
        rows.append({str(k): ([_to_code(x) for x in v] if isinstance(v, (list, tuple)) else _to_code(v))
                     for k, v in row.items()})
    return rows


def _to_code_keys(value: Any) -> Any:
    return {_to_code(k): v for k, v in value.items()} if isinstance(value, dict) else value


Bound = float | None


class ColumnMap(BaseModel):
    """One mapping entry: a value read from the file (a ``column``, an ``expression`` over
    columns, or ``columns`` with a ``table``) mapped onto codes (``codes``, ``years``,
    ``states``, ``ranges``, or a numeric question's value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | None = Field(default=None, description="Column in the data file.")
    columns: tuple[str, ...] = Field(default=(), description="Several columns, combined by `table`.")
    table: Annotated[tuple[dict[str, Any], ...], BeforeValidator(_to_table)] = Field(
        default=(), description="With `columns`: rows {<column>: value | [values] | '*', code: <code>}; the "
        "first matching row gives the code ('*' matches any non-missing value).")
    expression: str | None = Field(
        default=None, description="Arithmetic over the file's columns (e.g. '2016 - birthyr'), its result "
        "mapped by codes, years, ranges or numeric (see simsurvey.reference.derive).")
    codes: Annotated[dict[str, str], BeforeValidator(_to_code_map)] = Field(
        default_factory=dict, description="Value (as a string) -> code."
    )
    missing: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        default=(), description="Values of the columns read meaning 'no answer' (dropped, like empty cells)."
    )
    years: bool = Field(default=False, description="An attribute with age bands (years) only: the value is age in years.")
    states: bool = Field(default=False, description="An attribute with a places file only: the column is a place name or code.")
    ranges: Annotated[dict[str, tuple[Bound, Bound]], BeforeValidator(_to_code_keys)] = Field(
        default_factory=dict, description="Code -> inclusive [low, high] bounds of a number (null: open end); "
        "codes first, for exact (special) values.")
    numeric: bool = Field(
        default=False,
        description="A numeric question's column: its value is the answer (codes may map special values to "
        "non-substantive options, e.g. 998 -> dk).",
    )

    @model_validator(mode="after")
    def _check(self) -> ColumnMap:
        given = [k for k, v in (("column", self.column), ("columns", self.columns), ("expression", self.expression)) if v]
        if len(given) != 1:
            raise ValueError("give one of column, columns (with a table) or expression"
                             + (f", not {' and '.join(given)}" if given else ""))
        if bool(self.columns) != bool(self.table):
            raise ValueError("columns and table go together (a table row per combination of the columns' values)")
        kinds = [k for k in ("years", "states", "ranges", "numeric") if getattr(self, k)]
        if len(kinds) > 1:
            raise ValueError(f"{' and '.join(kinds)} cannot both be set")
        if self.table and (kinds or self.codes):
            raise ValueError(f"a table gives the codes itself; drop {(kinds or ['codes'])[0]}")
        if self.expression and self.states:
            raise ValueError("states: true reads a column of place names, not an expression")
        if not (self.codes or kinds or self.table):
            raise ValueError("needs codes (or years: true for age, states: true for region, ranges, a table, "
                             "numeric: true for a numeric question)")
        both = sorted(set(self.codes) & set(self.missing))
        if both:
            raise ValueError(f"value '{both[0]}' is both in codes and in missing")
        for i, row in enumerate(self.table, start=1):
            if "code" not in row:
                raise ValueError(f"table row {i}: needs a code")
            flags = [k for k, v in row.items() if isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v))]
            if flags:
                raise ValueError(f"table row {i}: {flags[0]} is a YAML true/false; quote it (\"yes\", \"no\")")
            extra = sorted(set(row) - set(self.columns) - {"code"})
            if extra:
                raise ValueError(f"table row {i}: '{extra[0]}' is not one of columns ({', '.join(self.columns)})")
            absent = [c for c in self.columns if c not in row]
            if absent:
                raise ValueError(f"table row {i}: no value for column '{absent[0]}' (use '*' for any value)")
        last: tuple[str, float] | None = None
        for code, (lo, hi) in sorted(self.ranges.items(), key=lambda kv: -inf if kv[1][0] is None else kv[1][0]):
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"ranges.{code}: low {lo:g} is above high {hi:g}")
            if last is not None and (lo is None or lo <= last[1]):
                raise ValueError(f"ranges.{code} overlaps ranges.{last[0]}")
            last = (code, inf if hi is None else hi)
        return self

    @property
    def source(self) -> str:
        """What the entry reads, for messages: ``column 'x'``, ``expression '...'``, ``columns a, b``."""
        if self.column:
            return f"column '{self.column}'"
        if self.expression:
            return f"expression '{self.expression}'"
        return f"columns {', '.join(self.columns)}"

    @property
    def label(self) -> str:
        """What the entry reads, for the provenance's ``variable``."""
        return self.column or self.expression or "+".join(self.columns)


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
    is the file as read, row-aligned with ``data``; ``labels`` its value labels (.sav/.dta);
    ``warnings`` what is suspicious but not wrong (a ``missing`` value that never occurs)."""

    name: str
    mapping: Mapping
    data: pd.DataFrame
    raw: pd.DataFrame
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


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
    return read_data_with_labels(path, name=name)[0]


def read_data_with_labels(path: Path, *, name: str) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """Read a data file and its value labels (``{column: {value: label}}``, .dta/.sav only)."""
    if not path.is_file():
        raise UserError(f"{name}: file: data file not found: {path}")
    ext = path.suffix.lower()
    try:
        if ext == ".csv":
            return pd.read_csv(path), {}
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path), {}
        if ext in (".dta", ".sav", ".zsav"):
            import pyreadstat

            reader = pyreadstat.read_dta if ext == ".dta" else pyreadstat.read_sav
            df, meta = reader(str(path), apply_value_formats=False)
            return df, file_labels(meta)
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
    # Distinct values first: a reference holds tens of thousands of rows and a handful of codes.
    bad = sorted({str(v) for v in pd.unique(col.dropna().to_numpy(dtype=object))} - set(codes))
    if bad:
        raise UserError(f"{what} has code '{bad[0]}', not a code of attribute {name} of population "
                        f"'{variables.name}' (codes: {', '.join(codes)})")


def sources(spec: ColumnMap, *, what: str) -> tuple[str, ...]:
    """The columns a mapping entry reads."""
    if spec.expression is not None:
        return parse_expression(spec.expression, what=what)[1]
    return (spec.column,) if spec.column else spec.columns


def read_values(raw: pd.DataFrame, spec: ColumnMap, *, what: str) -> tuple[pd.Series, pd.Series]:
    """A mapping entry's values: the column, or the expression's result, or (with a table) the
    codes the table gives.

    Returns:
        (values, NaN/None where missing; boolean mask of missing respondents).
    """
    if spec.table:
        return table_codes(raw, spec.columns, spec.table, spec.missing, what=what)
    if spec.expression is not None:
        return evaluate_expression(raw, spec.expression, spec.missing, what=what)
    col = _need(raw, spec.column, what=what)  # type: ignore[arg-type]
    keys = value_keys(col)
    miss = keys.isna() | keys.isin(list(spec.missing))
    return col.where(~miss.to_numpy()), miss


def question_values(ds: UserDataset, qid: str) -> tuple[pd.Series, pd.Series, bool]:
    """A question's values from the file through its mapping entry.

    Returns:
        (values, NaN where missing; boolean mask of missing respondents; whether the values are
        option codes already — a ``table`` or ``ranges`` — rather than values for ``codes``).
    """
    spec = ds.mapping.questions[qid]
    what = f"{ds.name}: question '{qid}': {spec.source}"
    values, miss = read_values(ds.raw, spec, what=what)
    if spec.ranges:
        return range_codes(values, value_keys(values), miss, spec.ranges, spec.codes, what=what), miss, True
    return values, miss, bool(spec.table)


def check_question_weights(ds: UserDataset, qid: str, keep: pd.Series) -> None:
    """The weight column is not 0 for every respondent who answered the question.

    Raises:
        UserError: ``<file>: weight: column 'w' is 0 for all N respondents who answered question 'q'``.
    """
    if ds.mapping.weight is None or not keep.any():
        return
    w = ds.data["weight"].to_numpy()[keep.to_numpy()]
    if not (w > 0).any():
        raise UserError(f"{ds.name}: weight: column '{ds.mapping.weight}' is 0 for all {len(w):,} respondents who"
                        f" answered question '{qid}'; check the weight column, or drop the question from the mapping")


def _demographic(raw: pd.DataFrame, var: str, spec: ColumnMap, *, name: str,
                 variables: Variables | None) -> pd.Series:
    what = f"{name}: demographics.{var}"
    if variables is not None:
        allowed = variables.codes(var)
        given = [*spec.codes.values(), *spec.ranges, *(str(r["code"]) for r in spec.table)]
        bad = sorted(set(given) - set(allowed))
        if bad:
            raise UserError(f"{what}: unknown code '{bad[0]}' (allowed: {', '.join(allowed)})")
    if spec.years and (variables is None or not variables[var].years):
        raise UserError(f"{what}: years: true is only for an attribute with age bands (years) in the population spec")
    if spec.states and (variables is None or var not in variables.places):
        raise UserError(f"{what}: states: true is only for an attribute with a states file in the population spec")
    values, is_missing = read_values(raw, spec, what=what)
    if spec.table:
        return values.astype("string")
    keys = value_keys(values)
    where = f"{what}: {spec.source}"
    if spec.years:
        number = pd.to_numeric(values, errors="coerce")
        banded, outside = variables.band(var, number)  # type: ignore[union-attr]
        bad = outside | (~is_missing & number.isna())
        if bad.any():
            raise UserError(f"{where} value '{keys[bad].iloc[0]}' is not an age in years (0-{MAX_AGE}); add it to missing")
        return banded
    if spec.states:
        out = variables.place(var, values)  # type: ignore[union-attr]
        unknown = ~is_missing & out.isna()
        if unknown.any():
            raise UserError(f"{where} value '{keys[unknown].iloc[0]}' is not a place of the"
                            " population's states file; add it to missing")
        return out
    if spec.ranges:
        return range_codes(values, keys, is_missing, spec.ranges, spec.codes, what=where).astype("string")
    mapped = keys.map(spec.codes).where(~is_missing, None)
    unmapped = ~is_missing & mapped.isna()
    if unmapped.any():
        raise UserError(f"{where} value '{keys[unmapped].iloc[0]}' has no code; add it to codes, or to missing")
    return mapped.astype("string")


def _check_entry_labels(raw: pd.DataFrame, labels: dict[str, dict[str, str]], spec: ColumnMap, *, what: str,
                        categories: list[Category], hint: str) -> None:
    single = spec.column is not None
    check_labels(raw, labels, what=what, columns=sources(spec, what=what),
                 codes=spec.codes if single else {}, missing=spec.missing, categories=categories,
                 table=spec.table, hint=hint)


def _unused_missing(raw: pd.DataFrame, spec: ColumnMap, *, what: str) -> list[str]:
    """Warnings for ``missing`` values that occur in none of the columns read (a typo, or the
    codebook of another wave)."""
    present: set[str] = set()
    for col in sources(spec, what=what):
        if col in raw.columns:
            present |= set(value_keys(raw[col]).dropna())
    return [f"{what}: missing value '{m}' never occurs in {spec.source}" for m in spec.missing if m not in present]


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
        given = [*spec.codes.values(), *spec.ranges, *(str(r["code"]) for r in spec.table)]
        bad = sorted(set(given) - set(q.codes))
        if bad:
            raise UserError(f"{name}: questions.{qid}: unknown option code '{bad[0]}' (allowed: {', '.join(q.codes)})")
        if spec.years or spec.states:
            raise UserError(f"{name}: questions.{qid}: years/states are only for demographics")
        if q.kind == "numeric" and (spec.table or spec.ranges):
            raise UserError(f"{name}: questions.{qid}: a numeric question's value is the answer; use numeric: true"
                            " (with a column or an expression), not a table or ranges")
    known = {e.id: e for e in instrument.experiments}
    for eid, spec in mapping.experiments.items():
        if eid not in known:
            raise UserError(f"{name}: experiments.{eid}: no such experiment in instrument '{instrument.id}'"
                            + (f" (it has: {', '.join(known)})" if known else ""))
        bad = sorted(set(spec.codes.values()) - set(known[eid].arm_ids))
        if bad:
            raise UserError(f"{name}: experiments.{eid}: unknown arm '{bad[0]}' (arms: {', '.join(known[eid].arm_ids)})")
        if spec.years or spec.states or spec.ranges or spec.numeric or not spec.column:
            raise UserError(f"{name}: experiments.{eid}: an arm is read from one column with codes")
    for var in mapping.demographics:
        if variables is not None and var not in variables:
            raise UserError(f"{name}: demographics.{var}: not an attribute of population '{variables.name}'"
                            f" (its attributes: {', '.join(variables.names)})")

    raw, labels = read_data_with_labels(path.parent / mapping.file, name=name)
    raw = raw.reset_index(drop=True)
    n = len(raw)
    if n == 0:
        raise UserError(f"{name}: file: {mapping.file} has no rows")
    warnings: list[str] = []
    entries = [(f"{name}: questions.{qid}", spec) for qid, spec in mapping.questions.items()]
    entries += [(f"{name}: experiments.{eid}", spec) for eid, spec in mapping.experiments.items()]
    entries += [(f"{name}: demographics.{var}", spec) for var, spec in mapping.demographics.items()]
    for what, spec in entries:
        for col in sources(spec, what=what):
            _need(raw, col, what=what)
        warnings += _unused_missing(raw, spec, what=what)
    _check_all_labels(raw, labels, mapping, instrument, variables, name=name)

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
    return UserDataset(name=name, mapping=mapping, data=data, raw=raw, labels=labels, warnings=tuple(warnings))


def _check_all_labels(raw: pd.DataFrame, labels: dict[str, dict[str, str]], mapping: Mapping,
                      instrument: Instrument, variables: Variables | None, *, name: str) -> None:
    """Every entry against the file's value labels (:mod:`simsurvey.reference.labels`)."""
    if not labels:
        return
    for qid, spec in mapping.questions.items():
        q = instrument.question(qid)
        cats = [Category(o.code, o.label, not o.non_substantive) for o in q.options]
        _check_entry_labels(raw, labels, spec, what=f"{name}: questions.{qid}", categories=cats,
                            hint="add it to missing, or map it to a non-substantive option (Don't know) under codes")
    for eid, spec in mapping.experiments.items():
        exp = next(e for e in instrument.experiments if e.id == eid)
        cats = [Category(a, a) for a in exp.arm_ids]
        _check_entry_labels(raw, labels, spec, what=f"{name}: experiments.{eid}", categories=cats, hint="add it to missing")
    for var, spec in mapping.demographics.items():
        if variables is not None:
            v = variables[var]
            cats = [Category(c, lab) for c, lab in zip(v.codes, v.labels)]
        else:
            cats = [Category(c, c) for c in dict.fromkeys(spec.codes.values())]
        _check_entry_labels(raw, labels, spec, what=f"{name}: demographics.{var}", categories=cats, hint="add it to missing")
