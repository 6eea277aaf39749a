"""A population's demographic variables: the one definition every stage reads.

The population spec owns its attributes (names, codes, labels, derived attributes). Every stage
that needs them (the reference loader, the baselines, the analysis' subgroups, the report, the
exports) reads this :class:`Variables` view of the spec, never a list in code. ``personas.parquet``
carries it in its metadata (``simsurvey.population``), so a run directory describes itself: a
re-analysis or a report of an old run reads the population it was drawn from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from simsurvey.population.spec import PopulationSpec

#: The oldest age a person can have: an age above it (or below 0) is a missing-value code.
MAX_AGE = 120

#: Parquet metadata key holding :meth:`Variables.to_json` (personas.parquet, reference.parquet).
META_KEY = b"simsurvey.population"


@dataclass(frozen=True)
class Variable:
    """One demographic variable of a population.

    Attributes:
        name: Column name in personas.parquet and reference.parquet.
        label: Attribute label (``Race/ethnicity``).
        codes: Category codes, in the spec's (meaningful) order.
        labels: Category labels, aligned with ``codes``.
        derived_from: Source attribute of a derived variable (``education`` for ``college``).
        derive_map: Source code -> this variable's code (derived variables only).
        years: Code -> inclusive (lo, hi) bounds, for an age-like variable whose categories
            carry ``years``.
        ordered: The codes are ordered (an ordinal variable in exports).
    """

    name: str
    label: str
    codes: tuple[str, ...]
    labels: tuple[str, ...]
    derived_from: str | None = None
    derive_map: Mapping[str, str] | None = None
    years: Mapping[str, tuple[float, float]] | None = None
    ordered: bool = False

    def label_of(self, code: str) -> str:
        """The category label of ``code`` (the code itself when unknown)."""
        return dict(zip(self.codes, self.labels)).get(code, code)


@dataclass(frozen=True)
class Variables:
    """The demographic variables of a population, in order, and what the stages do with them.

    Attributes:
        name: The population spec's name.
        items: Variable name -> :class:`Variable`; each raked attribute is followed by the
            attributes derived from it.
        compare: The subgroup variables the analysis compares by default.
        cells: The reference baseline's back-off ladder: the variable sets a persona is matched
            on, finest first, ending with ``()`` (the whole sample).
        places: Variable -> {lower-case place name or code -> code} (the US spec's states file:
            state -> region), for a user's data that records a place instead of the code.
    """

    name: str
    items: Mapping[str, Variable]
    compare: tuple[str, ...] = ()
    cells: tuple[tuple[str, ...], ...] = ((),)
    places: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.items)

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def __getitem__(self, name: str) -> Variable:
        return self.items[name]

    def codes(self, name: str) -> tuple[str, ...]:
        """The codes of variable ``name``, in order."""
        return self.items[name].codes

    def label_of(self, name: str, code: str) -> str:
        """The category label of ``code`` of variable ``name``."""
        return self.items[name].label_of(code)

    def band(self, name: str, values: pd.Series) -> tuple[pd.Series, pd.Series]:
        """Ages in years -> the code whose ``years`` bounds contain them.

        Bands are whole years closed on the left (``[18, 29]`` holds 29.5); the oldest band is
        open up to :data:`MAX_AGE` (its upper bound in the spec is where drawn ages stop), and an
        age below the youngest band is outside the population (null, not an error).

        Returns:
            (codes, null where missing or not in a band; boolean mask of impossible values —
            below 0 or above :data:`MAX_AGE`, usually a missing-value code such as 999 — which a
            caller reports rather than drops).

        Raises:
            KeyError: the variable has no ``years`` bands.
        """
        var = self.items[name]
        if not var.years:
            raise KeyError(f"{name} has no years bands")
        y = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        out = np.full(y.shape, None, dtype=object)
        bands = sorted(var.years.items(), key=lambda kv: kv[1][0])
        for k, (code, (lo, hi)) in enumerate(bands):
            top = MAX_AGE + 1 if k == len(bands) - 1 else hi + 1
            out[(y >= lo) & (y < top)] = code
        outside = (y < 0) | (y > MAX_AGE)
        return (pd.Series(out, index=values.index, dtype="string"),
                pd.Series(outside, index=values.index, dtype=bool))

    def place(self, name: str, values: pd.Series) -> pd.Series:
        """Place names or codes (the spec's places file) -> codes of ``name``; null when unknown."""
        table = self.places.get(name)
        if not table:
            raise KeyError(f"{name} has no places")
        s = values.astype("string").str.strip().str.lower()
        return s.map(dict(table)).astype("string")

    def derive(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each derived variable filled from its source where it is null or absent."""
        out = frame
        for var in self.items.values():
            if var.derived_from is None or var.derived_from not in frame.columns or var.derive_map is None:
                continue
            derived = frame[var.derived_from].astype("string").map(dict(var.derive_map)).astype("string")
            if out is frame:
                out = frame.copy()
            out[var.name] = out[var.name].astype("string").fillna(derived) if var.name in out.columns else derived
        return out

    def derive_one(self, values: Mapping[str, object]) -> dict[str, object]:
        """One record (a persona's codes) with its derived variables filled, as :meth:`derive`."""
        out = dict(values)
        for var in self.items.values():
            src = out.get(var.derived_from) if var.derived_from else None
            if var.derive_map is not None and src is not None and out.get(var.name) is None:
                out[var.name] = var.derive_map.get(str(src))
        return out

    def to_json(self) -> str:
        """A JSON text :meth:`from_json` reads back (stored in parquet metadata)."""
        return json.dumps({
            "name": self.name,
            "variables": [
                {"name": v.name, "label": v.label, "codes": list(v.codes), "labels": list(v.labels),
                 "derived_from": v.derived_from,
                 "derive_map": dict(v.derive_map) if v.derive_map is not None else None,
                 "years": {c: list(b) for c, b in v.years.items()} if v.years else None,
                 "ordered": v.ordered}
                for v in self.items.values()
            ],
            "compare": list(self.compare),
            "cells": [list(c) for c in self.cells],
            "places": {k: dict(v) for k, v in self.places.items()},
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Variables:
        data = json.loads(text)
        items = {
            v["name"]: Variable(
                name=v["name"], label=v["label"], codes=tuple(v["codes"]), labels=tuple(v["labels"]),
                derived_from=v.get("derived_from"), derive_map=v.get("derive_map"),
                years={c: (float(b[0]), float(b[1])) for c, b in v["years"].items()} if v.get("years") else None,
                ordered=bool(v.get("ordered", False)),
            )
            for v in data["variables"]
        }
        return cls(name=data["name"], items=items, compare=tuple(data.get("compare", ())),
                   cells=tuple(tuple(c) for c in data.get("cells", [[]])), places=data.get("places", {}))

    @classmethod
    def from_spec(cls, spec: PopulationSpec) -> Variables:
        """The variables of a population spec (see :mod:`simsurvey.population.spec`)."""
        items: dict[str, Variable] = {}
        for name, attr in spec.attributes.items():
            years = {c.code: (float(c.years[0]), float(c.years[1])) for c in attr.categories if c.years is not None}
            items[name] = Variable(name=name, label=attr.label, codes=tuple(attr.codes),
                                   labels=tuple(c.label for c in attr.categories), years=years or None,
                                   ordered=attr.ordered or bool(years))
            for dname, der in spec.derived.items():
                if der.from_ != name:
                    continue
                codes = tuple(dict.fromkeys(der.map[c] for c in attr.codes))
                labels = tuple(der.labels.get(c, c) for c in codes)
                items[dname] = Variable(name=dname, label=der.label or dname, codes=codes, labels=labels,
                                        derived_from=name, derive_map=dict(der.map))
        compare = tuple(spec.compare) if spec.compare is not None else tuple(items)
        cells = (tuple(tuple(c) for c in spec.baseline_cells) if spec.baseline_cells is not None
                 else default_cells(spec.attributes, {d.from_: n for n, d in spec.derived.items()}))
        if cells[-1] != ():
            cells = (*cells, ())
        places: dict[str, dict[str, str]] = {}
        if spec.states_file is not None:
            from simsurvey.population.details import load_states

            states = load_states(spec.resolve(spec.states_file), spec.attributes["region"].codes,
                                 where=f"{spec.path}: states_file")
            places["region"] = {
                str(key).strip().lower(): str(region)
                for key_col in ("state", "state_code")
                for key, region in zip(states[key_col], states["region"])
            }
        return cls(name=spec.name, items=items, compare=compare, cells=cells, places=places)

    @classmethod
    def infer(cls, frame: pd.DataFrame, names: Iterable[str], *, name: str = "inferred") -> Variables:
        """Variables read off a frame that carries no metadata: codes are the sorted distinct
        values (a run made before the population was stored with its personas)."""
        items = {}
        for n in names:
            if n not in frame.columns:
                continue
            codes = tuple(sorted({str(v) for v in frame[n].dropna().unique()}))
            items[n] = Variable(name=n, label=n, codes=codes, labels=codes)
        return cls(name=name, items=items, compare=tuple(items),
                   cells=default_cells({n: None for n in items}, {}))


def default_cells(attributes: Iterable[str], coarser: Mapping[str, str]) -> tuple[tuple[str, ...], ...]:
    """The default back-off ladder: every attribute in order, then drop them from the end; an
    attribute with a derived coarsening (``coarser``: source -> derived) is replaced by it
    before it is dropped."""
    current, coarser = list(attributes), dict(coarser)
    ladder = [tuple(current)]
    while current:
        last = current[-1]
        if last in coarser:
            current[-1] = coarser.pop(last)
        else:
            current.pop()
        ladder.append(tuple(current))
    return tuple(ladder)


def read_variables(path: str | os.PathLike) -> Variables | None:
    """The population variables stored in a parquet file's metadata (None when absent)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(META_KEY)
    return Variables.from_json(raw) if raw else None


def population_of(personas: pd.DataFrame | None, reference: pd.DataFrame | None = None,
                  variables: Variables | None = None) -> Variables:
    """The variables of a run: given, or read off the frames (fallback for old runs: the
    columns personas and reference share besides ids, weights and details)."""
    if variables is not None:
        return variables
    frames = [f for f in (personas, reference) if f is not None]
    if not frames:
        return Variables(name="none", items={})
    names: Sequence[str] = [c for c in frames[0].columns if c not in NOT_DEMOGRAPHIC]
    if len(frames) == 2:
        names = [c for c in names if c in frames[1].columns]
    return Variables.infer(pd.concat([f[[c for c in names if c in f.columns]] for f in frames]), names)


#: Columns of personas.parquet / reference.parquet that are never demographic variables.
NOT_DEMOGRAPHIC: frozenset[str] = frozenset({
    "persona_id", "weight", "age_years", "name", "state", "city", "occupation", "cue", "source",
    "respondent_id", "question_id", "answer_code", "answer_value", "experiment", "arm",
})


def variables_metadata(variables: Variables) -> dict[bytes, bytes]:
    """Parquet metadata entry holding ``variables``."""
    return {META_KEY: variables.to_json().encode("utf-8")}

