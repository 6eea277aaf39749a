"""A .sav / .dta file's value labels checked against the codes a mapping gives its values.

A Stata or SPSS file says what each value means (pyreadstat's ``variable_value_labels``); a
mapping that contradicts it is almost always a mistake that would otherwise run silently. Two
contradictions are flagged, and nothing else:

1. **Swapped codes**: a value mapped (``codes``) to one category whose file label *is* the label or
   the code of another category of the same attribute or question (1 labelled "Male" mapped to
   ``female``). Labels are compared after normalization (case, punctuation and apostrophes
   ignored, ``_`` read as a space, a leading value prefix such as ``1.`` or ``.d:`` dropped) and
   only by equality: a label that names neither category, or names the mapped one, is never
   flagged ("Not strong Democrat" mapped to ``weak_democrat`` is fine).
2. **A missing-value code used as data**: a value that occurs in a column read by the mapping,
   whose file label says it is no answer (:data:`MISSING_LABELS`: "Don't know", "Refused", "No
   answer", "NA", "Inapplicable", "Skipped", "Not asked", ... or a label starting with one of
   them), and that is neither listed in ``missing`` nor mapped to a non-substantive option (a
   question's Don't know) — whether it is mapped to a substantive code, read as a number (age in
   years, ``ranges``, ``numeric``, an ``expression``) or matched by a table's ``*``. An option
   whose own label is such a label (an instrument that offers "Don't know" as a substantive
   option) accepts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from simsurvey.errors import UserError
from simsurvey.reference.codes import value_key, value_keys

#: Normalized labels meaning "no answer" (a label equal to one, or starting with one and a space).
MISSING_LABELS: frozenset[str] = frozenset({
    "dont know", "do not know", "dk", "refused", "refusal", "no answer", "na", "n a", "not applicable",
    "inapplicable", "iap", "nap", "skipped", "skip", "legitimate skip", "valid skip", "not asked",
    "missing", "system missing", "sysmis", "no response", "nonresponse", "prefer not to say",
    "prefer not to answer", "dk na", "dk na ref", "dont know refused", "uncodeable",
    "not ascertained",
})

_PREFIX = re.compile(r"^\s*[(\[]?(\d+|\.[a-z])[)\]]?\s*[.:)=-]?\s+")


def normalize(label: str) -> str:
    """A label compared by meaning: lower case, apostrophes dropped, punctuation and ``_`` as
    spaces, a leading value prefix (``1.``, ``(2)``, ``.d:``) dropped."""
    text = _PREFIX.sub("", str(label).lower(), count=1)
    text = text.replace("'", "").replace("\u2019", "")
    return re.sub(r"[^0-9a-z]+", " ", text).strip()


def says_missing(label: str) -> bool:
    """The label says the value is no answer (see :data:`MISSING_LABELS`)."""
    text = normalize(label)
    return any(text == m or text.startswith(m + " ") for m in MISSING_LABELS)


@dataclass(frozen=True)
class Category:
    """A code of an attribute or question, as the label check sees it."""

    code: str
    label: str
    substantive: bool = True


def file_labels(meta: object) -> dict[str, dict[str, str]]:
    """pyreadstat metadata -> {column: {value key ('1' for 1.0): label}}."""
    out: dict[str, dict[str, str]] = {}
    for col, labels in (getattr(meta, "variable_value_labels", None) or {}).items():
        keyed = {value_key(v): str(lab) for v, lab in labels.items()}
        out[col] = {k: v for k, v in keyed.items() if k is not None}
    return out


def _names(cat: Category) -> set[str]:
    return {n for n in (normalize(cat.label), normalize(cat.code.replace("_", " "))) if n}


def check_labels(raw: pd.DataFrame, labels: Mapping[str, Mapping[str, str]], *, what: str,
                 columns: Sequence[str], codes: Mapping[str, str], missing: Iterable[str],
                 categories: Sequence[Category], table: Sequence[Mapping[str, object]] = (),
                 hint: str = "add it to missing") -> None:
    """Check a mapping entry against the file's value labels (see the module docstring).

    Args:
        raw: The data file.
        labels: :func:`file_labels` of the file (empty for CSV / parquet: nothing is checked).
        what: Names the mapping key in errors (``<file>: demographics.sex``).
        columns: The columns the entry reads.
        codes: Its ``codes`` (value -> code), for a single column.
        missing: Its ``missing`` values.
        categories: The attribute's or question's codes and labels.
        table: Its ``table`` rows (a value named there with a non-substantive code is accepted).
        hint: What to do with a missing-value code used as data.

    Raises:
        UserError: swapped codes, or a missing-value code used as data, naming the column,
            value, label and code.
    """
    missing = set(missing)
    by_code = {c.code: c for c in categories}
    owner: dict[str, str | None] = {}
    for cat in categories:
        for name in _names(cat):
            owner[name] = cat.code if name not in owner else None  # a name two categories share names none
    for col in columns:
        col_labels = labels.get(col)
        if not col_labels:
            continue
        present = set(value_keys(raw[col]).dropna()) if col in raw.columns else set()
        for value, label in col_labels.items():
            mapped = by_code.get(codes.get(value, "")) if len(columns) == 1 else None
            if mapped is not None:
                named = owner.get(normalize(label))
                if named is not None and named != mapped.code:
                    raise UserError(
                        f"{what}: column '{col}' value '{value}' is labelled '{label}' in the file but mapped to"
                        f" '{mapped.code}' ({mapped.label}); the label names '{named}': are the codes swapped?")
            if value not in present or value in missing or not says_missing(label):
                continue
            if mapped is not None and (not mapped.substantive or says_missing(mapped.label)):
                continue
            in_rows = [by_code.get(str(r["code"])) for r in table
                       if r.get(col) == value or (isinstance(r.get(col), (list, tuple)) and value in r[col])]
            if in_rows and all(c is not None and (not c.substantive or says_missing(c.label)) for c in in_rows):
                continue
            used = (f"mapped to '{mapped.code}' ({mapped.label})" if mapped is not None
                    else "not listed in missing" if codes and len(columns) == 1 else "read as data")
            raise UserError(f"{what}: column '{col}' value '{value}' is labelled '{label}' in the file, a"
                            f" missing-value code, but {used}; {hint}")
