"""Persona cue text: the exact words shown to the model, in three styles.

- ``attributes``: an explicit list, one ``Label: value`` line per attribute.
- ``backstory``: first-person sentences, as in the ANES "backstories" of Argyle et al. (2023).
- ``name``: a name and a place only; demographics are left for the model to infer.

Built with vectorized string concatenation: each attribute's per-category text is computed once
and indexed by the personas' codes, so a million cues cost a few array operations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsurvey.errors import UserError
from simsurvey.population.spec import PopulationSpec

CUE_STYLES = ("attributes", "backstory", "name")


def _lookup(values: pd.Series, mapping: dict[str, str]) -> pd.Series:
    # Categorical codes index a small array of per-category strings: no per-row Python.
    cat = pd.Categorical(values.astype(str), categories=list(mapping))
    return pd.Series(np.asarray(list(mapping.values()), dtype=object)[cat.codes], index=values.index, dtype="string")


def render_cues(frame: pd.DataFrame, spec: PopulationSpec, style: str) -> pd.Series:
    """The cue text of each persona.

    Args:
        frame: Personas with one column per spec attribute plus ``age_years`` and ``name``, and
            ``state_name``/``city`` when the spec has a states file.
        spec: The population spec (labels, backstory templates).
        style: ``attributes``, ``backstory`` or ``name``.

    Returns:
        A string Series aligned with ``frame``.

    Raises:
        UserError: an unknown style.
    """
    if style not in CUE_STYLES:
        raise UserError(f"design.cue: unknown cue style {style!r} (expected one of {', '.join(CUE_STYLES)})")
    has_place = "state_name" in frame.columns
    place = (frame["city"].astype("string") + ", " + frame["state_name"].astype("string")) if has_place else None
    age = frame["age_years"].astype("string")
    if style == "name":
        out = "Your name is " + frame["name"].astype("string")
        return (out + " and you live in " + place + ".") if has_place else out + "."
    if style == "attributes":
        lines = []
        for key, attr in spec.attributes.items():
            if key == "age":
                lines.append("Age: " + age)
            elif key == "region" and has_place:
                labels = {c.code: f"{c.label} (" for c in attr.categories}
                lines.append("Region: " + _lookup(frame[key], labels) + frame["state_name"].astype("string") + ")")
            else:
                lines.append(attr.label + ": " + _lookup(frame[key], {c.code: c.label for c in attr.categories}))
        out = lines[0]
        for line in lines[1:]:
            out = out + "\n" + line
        return out
    # backstory
    sex = _lookup(frame["sex"], {c.code: c.noun or c.label.lower() for c in spec.attributes["sex"].categories})
    out = "I am a " + age + "-year-old " + sex
    out = (out + " living in " + frame["state_name"].astype("string") + ".") if has_place else out + "."
    for key, attr in spec.attributes.items():
        if attr.backstory is None or key in ("sex", "age"):
            continue
        texts = {c.code: attr.backstory.format(text=c.text if c.text is not None else c.label) for c in attr.categories}
        out = out + " " + _lookup(frame[key], texts)
    return out
