"""Seed microdata -> a dense contingency table over a spec's attributes.

The seed supplies the joint structure that raking keeps. Attributes the seed has are counted
directly; an attribute the seed only has coarsely (education from college yes/no) is split within
each coarse class in proportion to the target shares of its fine categories (the spec states
this assumption); an attribute the seed lacks is spread uniformly, i.e. independent of the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from simsurvey.errors import UserError
from simsurvey.population.spec import PopulationSpec


@dataclass(frozen=True)
class SeedTable:
    """A seed contingency table and how it was built.

    Attributes:
        table: Counts, one axis per spec attribute in spec order.
        rows: Seed rows counted.
        provenance: The seed file's provenance metadata (package, version, dataset, mapping...).
        handling: Attribute -> how it entered the table (``seed``, ``expanded from college``,
            ``independent (not in seed)``).
        ages: Seed single-year ages per age code (for drawing age_years), or empty.
    """

    table: np.ndarray
    rows: int
    provenance: dict[str, Any]
    handling: dict[str, str]
    ages: dict[str, np.ndarray] = field(default_factory=dict)


def read_seed(spec: PopulationSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the spec's seed parquet and its provenance metadata."""
    if spec.seed.file is None:
        raise UserError(f"{spec.path}: seed.file: no seed file given")
    path = spec.resolve(spec.seed.file)
    if not path.is_file():
        raise UserError(f"{spec.path}: seed.file: file not found: {path}")
    try:
        meta = pq.read_schema(path).metadata or {}
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise UserError(f"{spec.path}: seed.file: cannot read {path}: {err}") from None
    raw = meta.get(b"simsurvey.provenance")
    provenance = json.loads(raw) if raw else {}
    provenance["file"] = str(path)
    return df, provenance


def seed_table(spec: PopulationSpec, df: pd.DataFrame, provenance: dict[str, Any] | None = None) -> SeedTable:
    """Count the seed rows into a table over the spec's attributes (see module docstring).

    Raises:
        UserError: a seed value that is not a category code of the spec, or a missing value.
    """
    names = list(spec.attributes)
    where = f"{spec.path}: seed.file"
    coarse_axes: list[np.ndarray] = []
    coarse_sizes: list[int] = []
    handling: dict[str, str] = {}
    for name in names:
        attr = spec.attributes[name]
        exp = spec.seed.expand.get(name)
        col, codes = (exp.from_, list(exp.groups)) if exp else (name, attr.codes)
        if col not in df.columns:
            handling[name] = "independent (not in seed)"
            coarse_axes.append(np.zeros(len(df), dtype=np.int64))
            coarse_sizes.append(1)
            continue
        values = df[col]
        if values.isna().any():
            raise UserError(f"{where}: column {col!r} has missing values; the build script must drop or recode them")
        values = values.astype(str)
        known = values.isin(codes)
        if not known.all():
            bad = sorted(set(values[~known]))[0]
            raise UserError(f"{where}: column {col!r} has value {bad!r}, not a code of attributes.{name}")
        cat = pd.Categorical(values, categories=codes)
        coarse_axes.append(cat.codes.astype(np.int64))
        coarse_sizes.append(len(codes))
        handling[name] = f"expanded from {col}" if exp else "seed"
    flat = np.ravel_multi_index(coarse_axes, coarse_sizes)
    table = np.bincount(flat, minlength=int(np.prod(coarse_sizes))).astype(np.float64).reshape(coarse_sizes)
    # Blow each coarse axis up to the fine categories: x[..., fine, ...] = x[..., coarse(fine), ...] * w.
    for k, name in enumerate(names):
        attr = spec.attributes[name]
        exp = spec.seed.expand.get(name)
        if handling[name].startswith("independent"):
            coarse_of = np.zeros(len(attr.codes), dtype=np.int64)
            w = np.full(len(attr.codes), 1.0 / len(attr.codes))
        elif exp:
            groups = list(exp.groups)
            group_of = {c: g for g, cs in exp.groups.items() for c in cs}
            coarse_of = np.array([groups.index(group_of[c]) for c in attr.codes])
            shares = attr.shares
            denom = np.bincount(coarse_of, weights=shares, minlength=len(groups))[coarse_of]
            w = np.divide(shares, denom, out=np.zeros_like(shares), where=denom > 0)
        else:
            continue
        shape = [1] * table.ndim
        shape[k] = -1
        table = np.take(table, coarse_of, axis=k) * w.reshape(shape)
    ages: dict[str, np.ndarray] = {}
    if "age_years" in df.columns and "age" in df.columns:
        for code, grp in df.groupby("age", sort=True)["age_years"]:
            ages[str(code)] = grp.to_numpy(dtype=np.int64)
    return SeedTable(table, int(len(df)), provenance or {}, handling, ages)
