"""Human reference data -> the reference schema, driven by the instrument's mappings.

``reference.parquet`` has one row per human respondent x question: ``source``,
``respondent_id``, ``weight``, the population's demographic columns (the spec's variables, see
:class:`~simsurvey.population.variables.Variables`), ``question_id``, ``answer_code``
(a canonical option code of the instrument's question). A missing answer (NaN, or a value the
mapping lists under ``missing``) is dropped for that question and counted in the provenance,
never coded as an answer; a value with no code is a user error, never silently dropped.

Survey experiments: for a question of an experiment whose ``reference`` names the data set (or,
for a user's data, whose mapping has an ``experiments:`` entry), ``arm`` is the respondent's arm
(the data set's value mapped through the codes, data value -> arm id) and ``experiment`` the
experiment's id; both are null where the data set does not record the arm (a missing value too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simsurvey.config import resolve_path
from simsurvey.errors import UserError
from simsurvey.instruments.config import SurveyConfig
from simsurvey.instruments.models import (
    Experiment,
    Instrument,
    Question,
    ReferenceMapping,
)
from simsurvey.reference.builtin import BUILTIN
from simsurvey.reference.codes import reference_columns, value_keys
from simsurvey.reference.userdata import (
    UserDataset,
    check_codes,
    check_question_weights,
    load_user_dataset,
    question_values,
)

if TYPE_CHECKING:
    from simsurvey.population.variables import Variables


@dataclass(frozen=True)
class _Answers:
    frame: pd.DataFrame  # reference schema rows of one question from one source
    n_missing: int
    variable: str


def _is_mapping_file(entry: str) -> bool:
    return entry.lower().endswith((".yaml", ".yml"))


def _check_entry(entry: str) -> None:
    if entry not in BUILTIN and not _is_mapping_file(entry):
        raise UserError(
            f"survey.reference: unknown data set '{entry}' (built in: {', '.join(BUILTIN)};"
            " or the path of a mapping .yaml file)"
        )


def read_builtin(dataset: str) -> pd.DataFrame:
    """The committed derived frame of a built-in data set (see :mod:`.builtin`)."""
    ds = BUILTIN[dataset]
    if not ds.path.exists():
        raise UserError(f"survey.reference: {dataset}: {ds.path} is missing; run scripts/build_reference.py")
    return pd.read_parquet(ds.path)


def builtin_demographics(data: pd.DataFrame) -> list[str]:
    """A built-in data set's own demographic columns: those before ``age_years`` (its layout)."""
    cols = list(data.columns)
    end = cols.index("age_years") if "age_years" in cols else 2
    return [c for c in cols[:end] if c not in ("respondent_id", "weight")]


def _raw_columns(data: pd.DataFrame) -> list[str]:
    cols = list(data.columns)
    return cols[cols.index("age_years") + 1:] if "age_years" in cols else [c for c in cols if c not in ("respondent_id", "weight")]


def with_population(data: pd.DataFrame, dataset: str, variables: Variables | None) -> pd.DataFrame:
    """A built-in frame with the population's demographic columns: each variable from the data
    set's column of that name, null where it has none, derived variables filled from their sources.
    Without ``variables``, the data set's own columns.

    Codes are checked against the spec by :func:`_check_builtin_codes` on the respondents the
    instrument's mappings keep, not here: a data set may hold waves or groups a mapping's ``where``
    leaves out (GSS 1972-2018 with a population of six waves)."""
    if variables is None:
        return data
    out = data.copy()
    for name in variables.names:
        if name not in data.columns:
            out[name] = pd.array([None] * len(data), dtype="string")
            continue
        out[name] = pd.Series(value_keys(data[name]), index=data.index).astype("string")
    return variables.derive(out)


def _check_builtin_codes(frame: pd.DataFrame, source: str, variables: Variables) -> None:
    """The reference rows of a built-in data set carry only the population's codes."""
    for name in variables.names:
        check_codes(frame[name], variables, name, what=f"survey.reference: {source}: column '{name}'")


def map_answers(
    values: pd.Series, codes: dict[str, str], missing: tuple[str, ...] | list[str], *, what: str
) -> tuple[pd.Series, pd.Series]:
    """Map raw answer values onto option codes.

    Args:
        values: The raw column.
        codes: Value (as a string, ``'1'`` for 1.0) -> option code.
        missing: Values that mean "no answer".
        what: Names the variable in error messages.

    Returns:
        (answer codes with None where missing, boolean mask of kept rows).

    Raises:
        UserError: a non-missing value has no code.
    """
    keys = value_keys(values)
    is_missing = keys.isna() | keys.isin(list(missing))
    mapped = keys.map(codes)
    unmapped = ~is_missing & mapped.isna()
    if unmapped.any():
        bad = sorted({str(k) for k in keys[unmapped]})
        raise UserError(
            f"{what}: value '{bad[0]}' has no option code"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            + "; add it to codes, or to missing"
        )
    return mapped, ~is_missing


def _assemble(data: pd.DataFrame, source: str, question_id: str, answers: pd.Series, keep: pd.Series,
              arms: pd.Series | None = None, experiment: str | None = None,
              names: tuple[str, ...] = ()) -> pd.DataFrame:
    sub = data.loc[keep.to_numpy()]
    out = pd.DataFrame(
        {
            "source": pd.array([source] * len(sub), dtype="string"),
            "respondent_id": pd.array(sub["respondent_id"].astype(str).to_numpy(), dtype="string"),
            "weight": sub["weight"].astype("float64").to_numpy(),
        }
    )
    for col in names:
        out[col] = pd.array(sub[col].astype("string").to_numpy() if col in sub else [None] * len(sub), dtype="string")
    out["question_id"] = pd.array([question_id] * len(sub), dtype="string")
    out["answer_code"] = pd.array(answers[keep].astype(str).to_numpy(), dtype="string")
    out["answer_value"] = np.full(len(sub), np.nan, dtype="float64")
    arm = [None] * len(sub) if arms is None else arms[keep].to_numpy(dtype=object)
    out["arm"] = pd.array(arm, dtype="string")
    out["experiment"] = pd.array(np.where(out["arm"].notna(), experiment, None), dtype="string")
    return out


def map_arms(values: pd.Series, codes: dict[str, str], missing: tuple[str, ...] | list[str], *,
             what: str) -> pd.Series:
    """Map the values of a data set's arm variable onto arm ids (None where missing).

    A respondent with no recorded arm keeps their answer with a null arm (it still counts in
    the question's pooled distribution, not in the treatment effects).

    Raises:
        UserError: a non-missing value has no arm.
    """
    arms, keep = map_answers(values, codes, missing, what=what)
    return arms.where(keep, None).astype(object)


def _arms_of(exp: Experiment | None, frame: pd.DataFrame, dataset: str,
             spec: Any = None) -> pd.Series | None:
    """Arm id per row of ``frame`` from the experiment's reference for ``dataset`` (or a user
    mapping's ``experiments`` entry ``spec``); None when the data set does not record the arm."""
    if exp is None:
        return None
    if spec is not None:
        column, codes, missing = spec.column, spec.codes, spec.missing
        what = f"{dataset}: experiments.{exp.id}: column '{column}'"
    else:
        ref = exp.reference_for(dataset)
        if ref is None:
            return None
        column, codes, missing = ref.variable, ref.codes, ()
        what = f"experiment '{exp.id}': reference {dataset}.{ref.variable}"
    if column not in frame.columns:
        raise UserError(f"{what}: no such variable in the data set")
    return map_arms(frame[column], codes, missing, what=what)


def _require_column(data: pd.DataFrame, variable: str, what: str) -> None:
    if variable not in data.columns:
        raw = _raw_columns(data)
        raise UserError(f"{what}: no such variable in the data set (it has: {', '.join(raw)})")


def _where(data: pd.DataFrame, ref: ReferenceMapping, what: str) -> pd.DataFrame:
    """The respondents a mapping's ``where`` keeps (all of them without one)."""
    keep = pd.Series(True, index=data.index)
    for variable, values in ref.where.items():
        _require_column(data, variable, f"{what}: where")
        keep &= value_keys(data[variable]).isin(list(values))
    if not keep.any():
        raise UserError(f"{what}: where {dict(ref.where)} keeps no respondent")
    return data.loc[keep.to_numpy()].reset_index(drop=True) if ref.where else data


def map_selected(data: pd.DataFrame, q: Question, ref: ReferenceMapping, *, what: str) -> tuple[pd.Series, pd.Series]:
    """A multi_select answer from one yes/no variable per option (``ReferenceMapping.selected``).

    Returns:
        (answer codes: the selected options joined by ``|`` in canonical order, or ``ref.none`` for
        none, None where missing; boolean mask of kept rows). A respondent missing any of the
        variables (NaN or a value in ``missing``) is dropped, since an answer set with an unknown
        member is unknown.

    Raises:
        UserError: a value in neither yes, no nor missing; a respondent who selected nothing when
            the mapping names no ``none`` option.
    """
    n = len(data)
    chosen = {}
    keep = pd.Series(True, index=data.index)
    for code, item in ref.selected.items():
        _require_column(data, item.variable, f"{what}: selected.{code}")
        keys = value_keys(data[item.variable])
        miss = keys.isna() | keys.isin(list(ref.missing))
        yes, no = keys.isin(list(item.yes)), keys.isin(list(item.no))
        bad = ~miss & ~yes & ~no
        if bad.any():
            raise UserError(f"{what}: selected.{code}: {item.variable} value '{sorted(set(keys[bad]))[0]}' is in"
                            " neither yes nor no; add it to one of them, or to missing")
        chosen[code] = yes.to_numpy()
        keep &= ~miss
    order = [c for c in q.codes if c in chosen]
    sets = ["|".join(c for c in order if chosen[c][i]) for i in range(n)]
    answers = pd.Series(sets, index=data.index, dtype=object)
    empty = keep & (answers == "")
    if empty.any():
        if ref.none is None:
            raise UserError(f"{what}: {int(empty.sum())} respondents selected none of the options; name the"
                            " question's 'none of these' option code in the mapping's none")
        answers[empty] = ref.none
    return answers.where(keep, None), keep


def map_numeric(values: pd.Series, q: Question, codes: dict[str, str], missing: tuple[str, ...] | list[str], *,
                what: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """A numeric question's raw values -> (answer codes, answer values, boolean mask of kept rows).

    The value is the answer: its code is its bin (``Question.bin_code``). ``codes`` may map special
    values to non-substantive options (998 -> dk: a code and no value); ``missing`` values and NaN
    are dropped. A value off the scale that is neither is a user error, never silently dropped.
    """
    keys = value_keys(values)
    num = pd.to_numeric(values, errors="coerce").astype("float64")
    is_missing = keys.isna() | keys.isin(list(missing))
    special = keys.map(codes)
    coded = ~is_missing & special.notna()
    bins = pd.Series([q.bin_code(v) if np.isfinite(v) else None for v in num.to_numpy()], index=values.index, dtype=object)
    bad = ~is_missing & ~coded & bins.isna()
    if bad.any():
        shown = sorted({str(k) for k in keys[bad]})
        scale = q.scale
        raise UserError(
            f"{what}: value '{shown[0]}' is outside the scale {scale.min:g}-{scale.max:g}"  # type: ignore[union-attr]
            + (f" (and {len(shown) - 1} more)" if len(shown) > 1 else "")
            + "; add it to missing, or map it to a non-substantive option under codes"
        )
    answer = bins.where(~coded, special)
    value = num.where(~coded & ~is_missing)
    return answer, value, ~is_missing


def _builtin_answers(data: pd.DataFrame, dataset: str, q: Question, exp: Experiment | None = None,
                     names: tuple[str, ...] = ()) -> _Answers | None:
    ref = q.reference_for(dataset)
    if ref is None:
        return None
    what = f"question '{q.id}': {dataset}.{ref.label}"
    # Respondents outside `where` are not this question's sample (not "missing").
    data = _where(data, ref, what)
    values = None
    if ref.selected:
        answers, keep = map_selected(data, q, ref, what=what)
    else:
        _require_column(data, ref.variable, what)
        if q.kind == "numeric":
            answers, values, keep = map_numeric(data[ref.variable], q, ref.codes, ref.missing, what=what)
        else:
            answers, keep = map_answers(data[ref.variable], ref.codes, ref.missing, what=what)
    if not keep.any():
        raise UserError(f"{what}: no respondent has a mapped answer")
    arms = _arms_of(exp, data, dataset)
    frame = _assemble(data, dataset, q.id, answers, keep, arms, exp.id if exp else None, names)
    if values is not None:
        frame["answer_value"] = values[keep].to_numpy(dtype="float64")
    return _Answers(frame, int((~keep).sum()), ref.label)


def _user_answers(ds: UserDataset, q: Question, exp: Experiment | None = None,
                  names: tuple[str, ...] = ()) -> _Answers | None:
    spec = ds.mapping.questions.get(q.id)
    if spec is None:
        return None
    what = f"{ds.name}: question '{q.id}': {spec.source}"
    raw_values, missing, coded = question_values(ds, q.id)
    values = None
    if q.kind == "numeric":
        if not spec.numeric:
            raise UserError(f"{what}: '{q.id}' is a numeric question; set numeric: true (its value is the answer)")
        answers, values, keep = map_numeric(raw_values, q, spec.codes, spec.missing, what=what)
    else:
        if spec.numeric:
            raise UserError(f"{what}: numeric: true is only for numeric questions ('{q.id}' is {q.kind})")
        if coded:  # a table or ranges gave the option codes
            answers, keep = raw_values, ~missing
        else:
            answers, keep = map_answers(raw_values, spec.codes, spec.missing, what=what)
    if not keep.any():
        raise UserError(f"{what}: no respondent has a mapped answer")
    arm_spec = ds.mapping.experiments.get(exp.id) if exp is not None else None
    arms = _arms_of(exp, ds.raw, ds.mapping.id if arm_spec is None else ds.name, arm_spec)
    check_question_weights(ds, q.id, keep)
    frame = _assemble(ds.data, ds.mapping.id, q.id, answers, keep, arms, exp.id if exp else None, names)
    if values is not None:
        frame["answer_value"] = values[keep].to_numpy(dtype="float64")
    return _Answers(frame, int((~keep).sum()), spec.label)


def _collect(instrument: Instrument, cfg: SurveyConfig,
             variables: Variables | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    for entry in cfg.reference:
        _check_entry(entry)
    sources: list[tuple[str, Any]] = []  # (source id, builtin frame | UserDataset)
    for entry in cfg.reference:
        if entry in BUILTIN:
            sources.append((entry, with_population(read_builtin(entry), entry, variables)))
        else:
            ds = load_user_dataset(resolve_path(entry, key="survey.reference"), instrument, variables)
            sources.append((ds.mapping.id, ds))
    if variables is not None:
        names = variables.names
    else:  # each data set's own demographic columns, in order of appearance
        seen: dict[str, None] = {}
        for _, src in sources:
            for c in (src.data.columns[2:] if isinstance(src, UserDataset) else builtin_demographics(src)):
                seen.setdefault(c, None)
        names = tuple(seen)
    frames: list[pd.DataFrame] = []
    per_question: dict[str, list[dict[str, Any]]] = {q.id: [] for q in instrument.questions}
    for source, src in sources:
        for q in instrument.questions:
            if cfg.combine == "first" and per_question[q.id]:
                continue
            exp = instrument.experiment_of(q.id)
            got = (_user_answers(src, q, exp, names) if isinstance(src, UserDataset)
                   else _builtin_answers(src, source, q, exp, names))
            if got is None:
                continue
            if variables is not None and not isinstance(src, UserDataset):
                _check_builtin_codes(got.frame, source, variables)
            frames.append(got.frame)
            per_question[q.id].append(
                {"source": source, "variable": got.variable, "n": len(got.frame), "n_missing_dropped": got.n_missing}
            )
    out = pd.concat(frames, ignore_index=True) if frames else empty_reference(names)
    summary = {
        "questions": per_question,
        "no_reference": [qid for qid, v in per_question.items() if not v],
        # Suspicious but not wrong (a `missing` value that never occurs): `simsurvey check` prints them.
        "warnings": [w for _, src in sources if isinstance(src, UserDataset) for w in src.warnings],
    }
    return out[list(reference_columns(names))], summary


def empty_reference(names: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """A reference-schema frame with no rows (right columns and dtypes) for demographics ``names``."""
    cols: dict[str, Any] = {c: pd.array([], dtype="string") for c in reference_columns(names)}
    cols["weight"] = pd.array([], dtype="float64")
    cols["answer_value"] = pd.array([], dtype="float64")
    return pd.DataFrame(cols)


def load_reference(instrument: Instrument, cfg: SurveyConfig, variables: Variables | None = None) -> pd.DataFrame:
    """Human answers to the instrument's questions, in the reference schema.

    Args:
        instrument: Only its questions are loaded; each question's reference mappings say
            which variable of a built-in data set holds its answers (a user's mapping file
            names its own columns).
        cfg: ``survey.reference`` lists the sources in priority order; with ``combine: first``
            each question takes the first source that has it, with ``all`` every source.
        variables: The population's variables: the demographic columns are exactly these (a
            data set's code outside the spec's codes is an error; derived ones are filled).
            Without, each data set's own demographic columns.

    Returns:
        One row per respondent x question: ``source``, ``respondent_id``, ``weight``, the
        demographic columns (null where the source lacks them), ``question_id``,
        ``answer_code``, ``answer_value``, ``experiment``, ``arm``.

    Raises:
        UserError: unknown data set, missing file or column, a value with no option code, or a
            question with no mapped answer at all (one line naming the variable).
    """
    return _collect(instrument, cfg, variables)[0]


def load_reference_with_provenance(instrument: Instrument, cfg: SurveyConfig,
                                   variables: Variables | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`load_reference` and :func:`reference_provenance` (with the instrument) from one
    pass over the data sets."""
    frame, summary = _collect(instrument, cfg, variables)
    return frame, {**reference_provenance(cfg), **summary}


def reference_provenance(cfg: SurveyConfig, instrument: Instrument | None = None,
                         variables: Variables | None = None) -> dict[str, Any]:
    """What each reference sample is and is not, for the manifest and the report.

    Args:
        cfg: The survey config (its ``reference`` list).
        instrument: When given, adds per question the source and variable used, the number of
            answers and the number of missing answers dropped.

    Returns:
        ``{"sources": {id: provenance dict}, "combine": ..., "questions": {...}, "no_reference": [...]}``.
    """
    sources: dict[str, Any] = {}
    for entry in cfg.reference:
        _check_entry(entry)
        if entry in BUILTIN:
            path = BUILTIN[entry].provenance_path
            sources[entry] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"dataset": entry}
        else:
            from simsurvey.reference.userdata import read_mapping

            mapping = read_mapping(resolve_path(entry, key="survey.reference"))
            sources[mapping.id] = {
                "dataset": mapping.id,
                "mapping_file": entry,
                "file": mapping.file,
                "description": mapping.description,
                "weights": f"column '{mapping.weight}'" if mapping.weight else "none: every respondent has weight 1",
            }
    out: dict[str, Any] = {"sources": sources, "combine": cfg.combine}
    if instrument is not None:
        out.update(_collect(instrument, cfg, variables)[1])
    return out
