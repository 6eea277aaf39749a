"""Wide exports of the responses for Stata (.dta) and SPSS (.sav).

One row per persona × model × replicate × form: a "form" numbers the condition sets when a
design shows the same question to the same persona under several conditions (within-persona
designs); in a between-persona design every row is form 1. Columns:

- ``model`` (string), ``persona_id``, ``replicate``, ``form``, ``weight``;
- each demographic as a labelled integer (value labels = the contract's codes);
- one labelled integer per question (the answer; value labels = option labels; missing when the
  answer was invalid or refused), its variable label the question text; a multi_select question
  gets one 0/1 variable per option (``<question>_1`` ... in canonical order, labelled with the
  option), missing when invalid;
- ``<question>_cond``: the design condition the question was shown under (string);
- ``<question>_val``: a numeric question's answer on the raw scale (``answer_value``; its bin is
  the labelled integer), missing when invalid or not a number (Don't know);
- ``<question>_pos``: in a sequential questionnaire, the question's 0-based position in the
  conversation (``question_position``), and for a battery item ``<question>_ipos``, its 0-based
  position within the battery (``item_position``); absent under ``context: independent``;
- ``arm_<experiment>``: per survey experiment, the persona's arm (labelled integer, 1..A in the
  experiment's declared order).

Answer integers are the option codes themselves when every code of a question is an integer
(``pid7`` 1..7 keeps its meaning), else 1..K in canonical order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from simsurvey.errors import UserError
from simsurvey.instruments.models import Instrument, Question
from simsurvey.io import atomic_path, read_responses
from simsurvey.population.variables import Variables, population_of, read_variables
from simsurvey.report._data import slug

#: Names Stata or SPSS reserve (lower-cased); a variable that would be one gets a ``q_`` prefix.
RESERVED = frozenset({
    "_all", "_b", "byte", "_coef", "_cons", "double", "float", "if", "in", "int", "long", "_n", "_pi",
    "_pred", "_rc", "_skip", "strl", "using", "with", "all", "and", "by", "eq", "ge", "gt", "le", "lt",
    "ne", "not", "or", "to",
})
STATA_NAME_MAX = 32
COND_SUFFIX = "_cond"
VALUE_SUFFIX = "_val"  # not longer than COND_SUFFIX: variable_name leaves room for that
#: Variable-label and value-label lengths each format accepts (Stata 80; SPSS 256 and 120 bytes).
LABEL_MAX = {"dta": (80, 80), "sav": (256, 120)}


def code_values(question: Question) -> dict[str, int]:
    """Integer for each option code: the code itself when all are integers, else 1..K."""
    codes = question.codes
    if all(re.fullmatch(r"-?\d+", c) for c in codes) and len({int(c) for c in codes}) == len(codes):
        return {c: int(c) for c in codes}
    return {c: i + 1 for i, c in enumerate(codes)}


def variable_name(name: str, taken: set[str], *, max_len: int = STATA_NAME_MAX - len(COND_SUFFIX)) -> str:
    """A valid Stata/SPSS variable name for ``name``, unique among ``taken`` (which it joins).

    Letters, digits and underscores; starts with a letter; at most ``max_len`` characters
    (default leaves room for the ``_cond`` suffix within Stata's 32); not a reserved word.
    """
    base = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not base or not base[0].isalpha() or base.lower() in RESERVED:
        base = "q_" + base
    base = base[:max_len]
    out, i = base, 2
    while out.lower() in taken:
        suffix = f"_{i}"
        out, i = base[: max_len - len(suffix)] + suffix, i + 1
    taken.add(out.lower())
    return out


def _truncate(text: str, limit: int, *, utf8: bool = False) -> str:
    if utf8:  # SPSS limits are in bytes
        data = text.encode("utf-8")[:limit]
        return data.decode("utf-8", errors="ignore")
    return text[:limit]


#: The responses.parquet columns the wide export reads (:func:`wide_frame`).
EXPORT_COLUMNS: tuple[str, ...] = (
    "persona_id", "question_id", "condition_id", "replicate", "model", "valid", "answer_code", "answer_value",
    "question_position", "item_position", "arm",
)


def wide_frame(
    responses: pd.DataFrame, personas: pd.DataFrame | None, instrument: Instrument,
    variables: Variables | None = None,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, dict[int, str]], dict[str, str]]:
    """Build the wide frame and its metadata. The persona columns are the population's
    ``variables`` (labelled integers in the spec's code order, value labels the spec's labels);
    without them, read off the personas.

    Returns:
        (frame, column_labels, value_labels, measures) where measures maps a column to
        nominal/ordinal/scale (for SPSS).
    """
    questions = list(instrument.questions)
    r = responses[responses["persona_id"].notna()].copy()
    r = r[r["question_id"].astype(str).isin([q.id for q in questions])]
    r["persona_id"] = r["persona_id"].astype("int64")
    r["question_id"] = r["question_id"].astype(str)
    r["condition_id"] = r["condition_id"].astype(str) if "condition_id" in r else "none"
    r["replicate"] = r["replicate"].astype("int64") if "replicate" in r else 0
    r["model"] = r["model"].astype(str)
    keys = ["model", "persona_id", "replicate"]
    r = r.sort_values([*keys, "question_id", "condition_id"], kind="stable")
    r["form"] = r.groupby([*keys, "question_id"]).cumcount() + 1
    valid = r["valid"].fillna(False).astype(bool) if "valid" in r else pd.Series(True, index=r.index)

    population = population_of(personas, None, variables)
    demographics = list(population.names)
    taken: set[str] = {"model", "persona_id", "replicate", "form", "weight", *demographics}
    labels: dict[str, str] = {"model": "Respondent model", "persona_id": "Persona id", "replicate": "Replicate",
                              "form": "Condition set (within-persona designs)", "weight": "Persona weight"}
    value_labels: dict[str, dict[int, str]] = {}
    measures: dict[str, str] = {"weight": "scale", "persona_id": "nominal", "replicate": "ordinal",
                                "form": "nominal", "model": "nominal"}
    wide = r[[*keys, "form"]].drop_duplicates().set_index([*keys, "form"]).sort_index()
    arm_of: dict[str, pd.Series] = {}
    for q in questions:
        var = variable_name(q.id, taken)
        sel = (r["question_id"] == q.id).to_numpy()
        rows = r[sel].set_index([*keys, "form"])
        ok = valid.loc[sel].to_numpy()
        if q.kind == "multi_select":
            for i, o in enumerate(q.options, start=1):
                col = variable_name(f"{var}_{i}", taken)
                chosen = rows["answer_code"].astype(object).map(
                    lambda a, c=o.code: float(c in str(a).split("|")) if isinstance(a, str) else float("nan"))
                wide[col] = chosen.where(ok).astype(float)
                labels[col] = f"{q.text} [{o.label}]"
                value_labels[col] = {0: "not selected", 1: "selected"}
                measures[col] = "nominal"
        else:
            values = code_values(q)
            wide[var] = rows["answer_code"].astype(object).map(values).where(ok).astype(float)
            labels[var] = q.text
            value_labels[var] = {v: q.option(c).label for c, v in values.items()}
            measures[var] = "ordinal" if q.kind == "ordinal" else "nominal"
        wide[var + COND_SUFFIX] = rows["condition_id"].astype(object)
        labels[var + COND_SUFFIX] = f"Condition shown for {q.id}"
        measures[var + COND_SUFFIX] = "nominal"
        if q.kind == "numeric" and "answer_value" in rows.columns:
            wide[var + VALUE_SUFFIX] = pd.to_numeric(rows["answer_value"], errors="coerce").where(ok).astype(float)
            labels[var + VALUE_SUFFIX] = f"{q.id} on the raw scale" + (f" ({q.scale.unit})" if q.scale and q.scale.unit else "")
            measures[var + VALUE_SUFFIX] = "scale"
        for column, suffix, what in (("question_position", "_pos", "Position in the conversation (0 = first)"),
                                     ("item_position", "_ipos", "Position within its battery (0 = first)")):
            if column in rows and rows[column].notna().any():
                wide[var + suffix] = pd.to_numeric(rows[column], errors="coerce").astype(float)
                labels[var + suffix] = f"{what}: {q.id}"
                measures[var + suffix] = "ordinal"
        if "arm" in rows and rows["arm"].notna().any():
            exp = instrument.experiment_of(q.id)
            if exp is not None:
                arm_of.setdefault(exp.id, rows["arm"].astype(object))
    for exp in instrument.experiments:
        if exp.id not in arm_of:
            continue
        col = variable_name(f"arm_{exp.id}", taken)
        codes = {a.id: i + 1 for i, a in enumerate(exp.arms)}
        arm = arm_of[exp.id].map(codes).astype(float)
        # A persona's arm holds for every row of the persona (its other forms and questions).
        wide[col] = arm.groupby(level=[0, 1, 2]).first().reindex(wide.index.droplevel("form")).to_numpy()
        labels[col] = f"Arm of experiment {exp.id}"
        value_labels[col] = {v: (exp.arm(a).label or a) for a, v in codes.items()}
        measures[col] = "nominal"
    wide = wide.reset_index()
    if personas is not None and "persona_id" in personas.columns:
        demo = [d for d in demographics if d in personas.columns]
        p = personas[["persona_id", *(["weight"] if "weight" in personas else []), *demo]].copy()
        p["persona_id"] = p["persona_id"].astype("int64")
        for d in demo:
            var = population[d]
            known = list(var.codes)
            extra = sorted(set(p[d].dropna().astype(str)) - set(known))
            mapping = {c: i + 1 for i, c in enumerate(known + extra)}
            p[d] = p[d].astype(object).map(mapping).astype(float)
            value_labels[d] = {v: var.label_of(c) for c, v in mapping.items()}
            labels[d] = var.label if var.label != d else d.replace("_", " ").capitalize()
            measures[d] = "ordinal" if var.ordered else "nominal"
        wide = wide.merge(p, on="persona_id", how="left")
    if "weight" not in wide:
        wide["weight"] = 1.0
    front = ["model", "persona_id", "replicate", "form", "weight", *[d for d in demographics if d in wide]]
    wide = wide[front + [c for c in wide.columns if c not in front]]
    # pyreadstat writes object strings and floats; pandas 3's string dtype and nullable ints
    # are converted explicitly.
    for c in wide.columns:
        if c in value_labels or c == "weight" or measures.get(c) == "scale" or pd.api.types.is_float_dtype(wide[c]):
            wide[c] = wide[c].astype(float)
        elif c in ("persona_id", "replicate", "form"):
            wide[c] = wide[c].astype("int64")
        else:
            wide[c] = wide[c].astype(object).where(wide[c].notna(), "")
    return wide, labels, value_labels, measures


def export_wide(
    run_dir: Path,
    instrument: Instrument,
    *,
    model: str | None = None,
    formats: Sequence[str] = ("dta", "sav"),
) -> list[Path]:
    """Write the responses in wide format as Stata and/or SPSS files under ``run_dir/exports``.

    Args:
        run_dir: run directory holding responses.parquet (and personas.parquet for weights and
            demographics).
        instrument: gives question texts (variable labels) and option labels (value labels).
        model: export only this model (file name gets its slug); None exports every model with
            a ``model`` column.
        formats: any of "dta", "sav".

    Returns:
        The written paths, in ``formats`` order.

    Raises:
        UserError: responses.parquet missing, unknown model or format.
    """
    import pyreadstat

    run_dir = Path(run_dir)
    bad = [f for f in formats if f not in LABEL_MAX]
    if bad:
        raise UserError(f"report.export_formats: unknown format {bad[0]!r} (use dta or sav)")
    path = run_dir / "responses.parquet"
    if not path.exists():
        raise UserError(f"report: export needs responses.parquet in {run_dir}; run the administer stage first")
    responses = read_responses(path, EXPORT_COLUMNS)
    if model is not None:
        models = sorted(responses["model"].astype(str).unique())
        if model not in models:
            raise UserError(f"report: model {model!r} not in {path} (models: {', '.join(models)})")
        responses = responses[responses["model"].astype(str) == model]
    ppath = run_dir / "personas.parquet"
    personas = pd.read_parquet(ppath) if ppath.exists() else None
    variables = read_variables(ppath) if ppath.exists() else None
    wide, labels, value_labels, measures = wide_frame(responses, personas, instrument, variables)

    out_dir = run_dir / "exports"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "responses_wide" + (f"_{slug(model)}" if model is not None else "")
    written = []
    for fmt in formats:
        var_max, val_max = LABEL_MAX[fmt]
        utf8 = fmt == "sav"
        col_labels = {c: _truncate(labels.get(c, c), var_max, utf8=utf8) for c in wide.columns}
        vlabels = {c: {v: _truncate(t, val_max, utf8=utf8) for v, t in m.items()} for c, m in value_labels.items()}
        target = out_dir / f"{stem}.{fmt}"
        if fmt == "dta":
            with atomic_path(target) as tmp:
                pyreadstat.write_dta(wide, tmp, file_label=_truncate(instrument.title, 80), column_labels=col_labels,
                                     variable_value_labels=vlabels)
        else:
            with atomic_path(target) as tmp:
                pyreadstat.write_sav(wide, tmp, file_label=instrument.title, column_labels=col_labels,
                                     variable_value_labels=vlabels,
                                     variable_measure={c: m for c, m in measures.items() if c in wide.columns})
        written.append(target)
    return written

