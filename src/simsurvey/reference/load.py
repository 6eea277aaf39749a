"""Human reference data -> the reference schema, driven by the instrument's mappings.

``reference.parquet`` has one row per human respondent x question: ``source``,
``respondent_id``, ``weight``, the shared demographic columns, ``question_id``, ``answer_code``
(a canonical option code of the instrument's question). A missing answer (NaN, or a value the
mapping lists under ``missing``) is dropped for that question and counted in the provenance,
never coded as an answer; a value with no code is a user error, never silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.config import resolve_path
from simsurvey.errors import UserError
from simsurvey.instruments.config import SurveyConfig
from simsurvey.instruments.models import Instrument, Question
from simsurvey.reference.builtin import BUILTIN
from simsurvey.reference.codes import DEMOGRAPHICS, REFERENCE_COLUMNS, value_keys
from simsurvey.reference.userdata import UserDataset, load_user_dataset


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


def _assemble(data: pd.DataFrame, source: str, question_id: str, answers: pd.Series, keep: pd.Series) -> pd.DataFrame:
    sub = data.loc[keep.to_numpy()]
    out = pd.DataFrame(
        {
            "source": pd.array([source] * len(sub), dtype="string"),
            "respondent_id": pd.array(sub["respondent_id"].astype(str).to_numpy(), dtype="string"),
            "weight": sub["weight"].astype("float64").to_numpy(),
        }
    )
    for col in DEMOGRAPHICS:
        out[col] = pd.array(sub[col].astype("string").to_numpy() if col in sub else [None] * len(sub), dtype="string")
    out["question_id"] = pd.array([question_id] * len(sub), dtype="string")
    out["answer_code"] = pd.array(answers[keep].astype(str).to_numpy(), dtype="string")
    out["answer_value"] = np.full(len(sub), np.nan, dtype="float64")
    out["experiment"] = pd.array([None] * len(sub), dtype="string")
    out["arm"] = pd.array([None] * len(sub), dtype="string")
    return out


def _builtin_answers(data: pd.DataFrame, dataset: str, q: Question) -> _Answers | None:
    ref = q.reference_for(dataset)
    if ref is None:
        return None
    what = f"question '{q.id}': {dataset}.{ref.variable}"
    if ref.variable not in data.columns:
        raw = [c for c in data.columns if c not in ("respondent_id", "weight", "age_years", *DEMOGRAPHICS)]
        raise UserError(f"{what}: no such variable in the data set (it has: {', '.join(raw)})")
    answers, keep = map_answers(data[ref.variable], ref.codes, ref.missing, what=what)
    if not keep.any():
        raise UserError(f"{what}: no respondent has a mapped answer")
    return _Answers(_assemble(data, dataset, q.id, answers, keep), int((~keep).sum()), ref.variable)


def _user_answers(ds: UserDataset, q: Question) -> _Answers | None:
    spec = ds.mapping.questions.get(q.id)
    if spec is None:
        return None
    what = f"{ds.name}: question '{q.id}': column '{spec.column}'"
    answers, keep = map_answers(ds.raw[spec.column], spec.codes, spec.missing, what=what)
    if not keep.any():
        raise UserError(f"{what}: no respondent has a mapped answer")
    return _Answers(_assemble(ds.data, ds.mapping.id, q.id, answers, keep), int((~keep).sum()), spec.column)


def _collect(instrument: Instrument, cfg: SurveyConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    for entry in cfg.reference:
        _check_entry(entry)
    frames: list[pd.DataFrame] = []
    per_question: dict[str, list[dict[str, Any]]] = {q.id: [] for q in instrument.questions}
    for entry in cfg.reference:
        if entry in BUILTIN:
            data = read_builtin(entry)
            source = entry

            def get(q: Question, data: pd.DataFrame = data, source: str = source) -> _Answers | None:
                return _builtin_answers(data, source, q)
        else:
            ds = load_user_dataset(resolve_path(entry, key="survey.reference"), instrument)
            source = ds.mapping.id

            def get(q: Question, ds: UserDataset = ds) -> _Answers | None:
                return _user_answers(ds, q)

        for q in instrument.questions:
            if cfg.combine == "first" and per_question[q.id]:
                continue
            got = get(q)
            if got is None:
                continue
            frames.append(got.frame)
            per_question[q.id].append(
                {"source": source, "variable": got.variable, "n": len(got.frame), "n_missing_dropped": got.n_missing}
            )
    if frames:
        out = pd.concat(frames, ignore_index=True)
    else:
        out = empty_reference()
    summary = {
        "questions": per_question,
        "no_reference": [qid for qid, v in per_question.items() if not v],
    }
    return out[list(REFERENCE_COLUMNS)], summary


def empty_reference() -> pd.DataFrame:
    """A reference-schema frame with no rows (right columns and dtypes)."""
    cols: dict[str, Any] = {c: pd.array([], dtype="string") for c in REFERENCE_COLUMNS}
    cols["weight"] = pd.array([], dtype="float64")
    cols["answer_value"] = pd.array([], dtype="float64")
    return pd.DataFrame(cols)


def load_reference(instrument: Instrument, cfg: SurveyConfig) -> pd.DataFrame:
    """Human answers to the instrument's questions, in the reference schema.

    Args:
        instrument: Only its questions are loaded; each question's reference mappings say
            which variable of a built-in data set holds its answers (a user's mapping file
            names its own columns).
        cfg: ``survey.reference`` lists the sources in priority order; with ``combine: first``
            each question takes the first source that has it, with ``all`` every source.

    Returns:
        One row per respondent x question: ``source``, ``respondent_id``, ``weight``, the
        shared demographic columns (null where the source lacks them), ``question_id``,
        ``answer_code``.

    Raises:
        UserError: unknown data set, missing file or column, a value with no option code, or a
            question with no mapped answer at all (one line naming the variable).
    """
    return _collect(instrument, cfg)[0]


def reference_provenance(cfg: SurveyConfig, instrument: Instrument | None = None) -> dict[str, Any]:
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
        out.update(_collect(instrument, cfg)[1])
    return out
