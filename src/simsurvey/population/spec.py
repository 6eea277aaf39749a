"""Population specs: attributes, categories, target shares and their sources (YAML under personas/).

A spec is data: a list of attributes, each with categories (code, human label, target share) and
the source of its figures; optionally a seed microdata file whose joint structure is raked onto
the targets, a states file for drawing a persona's state, derived attributes (college from
education), the Faker locale, the default subgroup variables and the reference baseline's back-off
ladder. Every stage reads the attributes from here (:class:`~simsurvey.population.variables.Variables`). :func:`load_population_spec` validates it and reports the first problem on one line
naming the file and key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simsurvey.errors import UserError, format_validation_error
from simsurvey.io import read_yaml

#: Tolerance on "each attribute's shares sum to 1".
SHARE_SUM_TOL = 1e-6


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Frozen):
    """One category of an attribute."""

    code: str = Field(description="Canonical code written to personas.parquet (e.g. 'female').")
    label: str = Field(description="Human label used in the attributes cue (e.g. 'Female').")
    share: float = Field(description="Target share of the population in this category (0..1).")
    noun: str | None = Field(default=None, description="Noun for the backstory cue (sex only: 'woman').")
    text: str | None = Field(default=None, description="Text substituted into the attribute's backstory template.")
    years: tuple[int, int] | None = Field(default=None, description="Age band bounds in years, inclusive (age only).")


class Attribute(_Frozen):
    """A raked demographic attribute and its source."""

    label: str = Field(description="Attribute label in the attributes cue (e.g. 'Race/ethnicity').")
    backstory: str | None = Field(default=None, description="First-person sentence template with {text}, or none.")
    source: dict[str, Any] = Field(description="Where the figures come from: table, year, universe, status, arithmetic...")
    caveat: str | None = Field(default=None, description="Known mismatch between the source and the population.")
    ordered: bool = Field(default=False, description="The categories are ordered (ordinal in exports; age bands always are).")
    statement: str | None = Field(
        default=None,
        description="A sentence template with {label} (or {text}) rendered first in every cue style, e.g. "
        "'It is {label}.' for the survey year of a year-conditioned population.",
    )
    categories: list[Category] = Field(min_length=1, description="Categories with target shares.")

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.categories]

    @property
    def shares(self) -> np.ndarray:
        return np.array([c.share for c in self.categories], dtype=np.float64)


class Expansion(_Frozen):
    """How a fine attribute is obtained from a coarser seed column."""

    from_: str = Field(alias="from", description="Seed column holding the coarse classes.")
    groups: dict[str, list[str]] = Field(description="Coarse class -> the fine category codes it splits into.")
    assumption: str = Field(description="The assumption the split makes, recorded in the manifest.")


class SeedSpec(_Frozen):
    """Seed microdata giving the joint structure."""

    file: str | None = Field(default=None, description="Seed parquet, relative to the spec file; null for none.")
    joint: Literal["raked", "independent"] = Field(default="raked", description="Rake the seed, or ignore it (independence).")
    description: str | None = Field(default=None, description="What the seed is and how missing values were handled.")
    prior_count: float = Field(default=0.0, ge=0, description="Pseudo-count added to every seed cell before raking.")
    expand: dict[str, Expansion] = Field(default_factory=dict, description="Attributes split from a coarser seed column.")


class Derived(_Frozen):
    """An attribute computed from another by a code map (not raked)."""

    from_: str = Field(alias="from", description="Source attribute.")
    map: dict[str, str] = Field(description="Source code -> derived code.")
    label: str | None = Field(default=None, description="Label of the derived attribute (e.g. 'College degree').")
    labels: dict[str, str] = Field(default_factory=dict, description="Derived code -> label (default: the code).")


class PopulationSpec(_Frozen):
    """A validated population spec."""

    name: str = Field(description="Spec name.")
    description: str | None = None
    source_note: str | None = None
    seed: SeedSpec = Field(default_factory=SeedSpec, description="Seed microdata, or none (independence).")
    states_file: str | None = Field(default=None, description="CSV state,state_code,region,adults_18plus.")
    derived: dict[str, Derived] = Field(default_factory=dict, description="Attributes derived from raked ones.")
    attributes: dict[str, Attribute] = Field(min_length=1, description="Raked attributes, in cue order.")
    locale: str = Field(default="en_US", description="Faker locale of the personas' names, cities and jobs.")
    country: str | None = Field(
        default=None,
        description="The country the personas live in, named in every cue style when the spec has no states file "
        "(a cue without it leaves the model to assume one).",
    )
    compare: list[str] | None = Field(
        default=None, description="Subgroup variables the analysis compares by default (default: every attribute and derived attribute)."
    )
    baseline_cells: list[list[str]] | None = Field(
        default=None,
        description="The reference baseline's back-off ladder (variable sets, finest first); default: the attributes "
        "in spec order dropped from the end, a derived coarsening replacing its source before the source is dropped.",
    )
    path: Path | None = Field(default=None, description="The file this spec was read from (set by the loader).")

    @model_validator(mode="after")
    def _check(self) -> "PopulationSpec":
        # Errors here name the key; the loader prefixes the file.
        for name, attr in self.attributes.items():
            codes = attr.codes
            dup = {c for c in codes if codes.count(c) > 1}
            if dup:
                raise ValueError(f"attributes.{name}: duplicate category code {sorted(dup)[0]!r}")
            for cat in attr.categories:
                if not math.isfinite(cat.share) or cat.share < 0:
                    raise ValueError(f"attributes.{name}.{cat.code}.share: must be >= 0 (got {cat.share})")
                if cat.years is not None and cat.years[0] > cat.years[1]:
                    raise ValueError(f"attributes.{name}.{cat.code}.years: lower bound above upper {list(cat.years)}")
            total = float(attr.shares.sum())
            if abs(total - 1.0) > SHARE_SUM_TOL:
                raise ValueError(f"attributes.{name}: shares sum to {total:.6g}, not 1 (tolerance {SHARE_SUM_TOL:g})")
        for name, exp in self.seed.expand.items():
            if name not in self.attributes:
                raise ValueError(f"seed.expand.{name}: not an attribute of the spec")
            listed = [c for codes in exp.groups.values() for c in codes]
            if sorted(listed) != sorted(self.attributes[name].codes):
                raise ValueError(f"seed.expand.{name}.groups: must list each category of {name} exactly once")
        for name, der in self.derived.items():
            if der.from_ not in self.attributes:
                raise ValueError(f"derived.{name}.from: unknown attribute {der.from_!r}")
            missing = set(self.attributes[der.from_].codes) - set(der.map)
            if missing:
                raise ValueError(f"derived.{name}.map: no value for {sorted(missing)[0]!r}")
        known = set(self.attributes) | set(self.derived)
        clash = sorted(set(self.attributes) & set(self.derived))
        if clash:
            raise ValueError(f"derived.{clash[0]}: also an attribute")
        for key, names in (("compare", self.compare or []), *((f"baseline_cells[{i}]", c) for i, c in enumerate(self.baseline_cells or []))):
            bad = [n for n in names if n not in known]
            if bad:
                raise ValueError(f"{key}: unknown attribute {bad[0]!r} (attributes: {', '.join(sorted(known))})")
        for name, attr in self.attributes.items():
            if attr.statement is not None and "{label}" not in attr.statement and "{text}" not in attr.statement:
                raise ValueError(f"attributes.{name}.statement: needs {{label}} or {{text}}")
        for req in ("sex", "age"):
            if req not in self.attributes:
                raise ValueError(f"attributes: missing required attribute {req!r} (names and ages depend on it)")
        if set(self.attributes["sex"].codes) - {"female", "male"}:
            raise ValueError("attributes.sex: codes must be female/male")
        if any(c.years is None for c in self.attributes["age"].categories):
            raise ValueError("attributes.age: every category needs years: [min, max]")
        if self.states_file is not None and "region" not in self.attributes:
            raise ValueError("states_file: needs a 'region' attribute")
        return self

    @property
    def variables(self) -> Any:
        """The spec's :class:`~simsurvey.population.variables.Variables` (what every stage reads)."""
        from simsurvey.population.variables import Variables

        return Variables.from_spec(self)

    def resolve(self, rel: str) -> Path:
        """A path in the spec, relative to the spec file's directory."""
        p = Path(rel)
        return p if p.is_absolute() or self.path is None else self.path.parent / p

    @property
    def margins(self) -> list[np.ndarray]:
        """Target shares, one array per attribute, in spec order."""
        return [a.shares for a in self.attributes.values()]


def _first_error_key(err: ValidationError) -> str:
    msg = format_validation_error(err)
    # Our own checks already name their key; pydantic's "Value error, " prefix is noise.
    msg = msg.replace("Value error, ", "")
    return msg.removeprefix("<config>: ")


def load_population_spec(path: str | Path) -> PopulationSpec:
    """Read and validate a population spec YAML.

    Args:
        path: The spec file.

    Returns:
        The validated spec (with ``path`` set, so relative seed/states paths resolve beside it).

    Raises:
        UserError: one line ``<file>: <key>: <problem>`` (missing file, bad YAML, unknown key,
            negative share, shares not summing to 1 within 1e-6, ...).
    """
    path = Path(path)
    data = read_yaml(path, what="population spec")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a population spec must be a mapping")
    try:
        return PopulationSpec.model_validate({**data, "path": path.resolve()})
    except ValidationError as err:
        raise UserError(f"{path}: {_first_error_key(err)}") from None
