"""Persona cue text: the exact words shown to the model, in three styles.

- ``attributes``: an explicit list, one ``Label: value`` line per attribute.
- ``backstory``: first-person sentences, as in the ANES "backstories" of Argyle et al. (2023).
- ``name``: a name and a place only; demographics are left for the model to infer.

Vectorized with pyarrow: each attribute's per-category text is written once, gathered with
``take`` by the personas' category index, and all pieces are joined in one
``binary_join_element_wise`` call, so a million cues cost a few array operations.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simsurvey.errors import UserError
from simsurvey.population.spec import PopulationSpec

CUE_STYLES = ("attributes", "backstory", "name")


def as_str_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    """An arrow string array as a pandas ``str`` Series without a round trip through objects."""
    return pd.Series(pd.array(arr, dtype="str"))


def _col(frame: pd.DataFrame, name: str) -> pa.Array:
    return pa.array(frame[name].astype("str"))


def _lookup(frame: pd.DataFrame, name: str, mapping: dict[str, str]) -> pa.Array:
    # Category index by hash lookup in arrow, then gather the per-category text.
    idx = pc.index_in(_col(frame, name), value_set=pa.array(list(mapping)))
    return pa.array(list(mapping.values()), type=pa.large_string()).take(idx)


def _join(pieces: list[pa.Array | str], n: int) -> pd.Series:
    # Constant pieces are scalars: the kernel broadcasts them instead of materializing n copies.
    arrays = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p.cast(pa.large_string()) for p in pieces]
    return as_str_series(pc.binary_join_element_wise(*arrays, pa.scalar("", pa.large_string())))


def render_cues(frame: pd.DataFrame, spec: PopulationSpec, style: str) -> pd.Series:
    """The cue text of each persona.

    Args:
        frame: Personas with one column per spec attribute plus ``age_years`` and ``name``, and
            ``state_name``/``city`` when the spec has a states file.
        spec: The population spec (labels, backstory templates).
        style: ``attributes``, ``backstory`` or ``name``.

    Returns:
        A string Series aligned with ``frame`` (default index).

    Raises:
        UserError: an unknown style.
    """
    if style not in CUE_STYLES:
        raise UserError(f"design.cue: unknown cue style {style!r} (expected one of {', '.join(CUE_STYLES)})")
    n = len(frame)
    has_place = "state_name" in frame.columns
    age = pc.cast(pa.array(frame["age_years"].to_numpy()), pa.string())
    # Statements (the survey year...) come first in every style: they set the scene, not the person.
    lead: list[pa.Array | str] = []
    for key, attr in spec.attributes.items():
        if attr.statement is not None:
            texts = {c.code: attr.statement.format(label=c.label, text=c.text if c.text is not None else c.label)
                     for c in attr.categories}
            lead += [_lookup(frame, key, texts), "\n" if style == "attributes" else " "]
    if style == "name":
        if has_place:
            return _join([*lead, "Your name is ", _col(frame, "name"), " and you live in ", _col(frame, "city"), ", ",
                          _col(frame, "state_name"), "."], n)
        where = f" and you live in {spec.country}" if spec.country else ""
        return _join([*lead, "Your name is ", _col(frame, "name"), where + "."], n)
    pieces: list[pa.Array | str] = list(lead)
    if style == "attributes":
        if spec.country and not has_place:
            pieces.append(f"Country: {spec.country}")
        for key, attr in spec.attributes.items():
            if attr.statement is not None:
                continue
            pieces.append(("\n" if len(pieces) > len(lead) else "") + attr.label + ": ")
            if key == "age":
                pieces.append(age)
            elif key == "region" and has_place:
                pieces += [_lookup(frame, key, {c.code: c.label for c in attr.categories}), " (",
                           _col(frame, "state_name"), ")"]
            else:
                pieces.append(_lookup(frame, key, {c.code: c.label for c in attr.categories}))
        return _join(pieces, n)
    sex = _lookup(frame, "sex", {c.code: c.noun or c.label.lower() for c in spec.attributes["sex"].categories})
    pieces += ["I am a ", age, "-year-old ", sex]
    if has_place:
        pieces += [" living in ", _col(frame, "state_name"), "."]
    else:
        pieces.append(f" living in {spec.country}." if spec.country else ".")
    for key, attr in spec.attributes.items():
        if attr.backstory is None or attr.statement is not None or key in ("sex", "age"):
            continue
        texts = {c.code: " " + attr.backstory.format(text=c.text if c.text is not None else c.label) for c in attr.categories}
        pieces.append(_lookup(frame, key, texts))
    return _join(pieces, n)
