"""Targets and seed from the human reference sample: personas that match the human sample.

With ``population.targets: reference`` the personas are drawn to the composition of one reference
source (``population.reference_source``; default the first source of the reference) instead of
the spec's census figures, so that a silicon-vs-human distance measures fidelity and not
composition:

- the target shares of each spec attribute are the source's weighted shares among its unique
  respondents who record it (non-null values);
- the seed is the source's own microdata: the weighted counts of its respondents' codes (complete
  cases over the attributes it records, as the spec's seed is built), raked onto those targets by
  the same IPF, so the personas keep the sample's joint structure too (with no missing values the
  seed already has the targets and the personas' joint is the weighted joint, up to integer counts);
- an attribute the source records only through a derived coarsening (``college`` for ``education``)
  is matched on the coarse shares, the fine split within each coarse class following the spec's
  shares (the assumption the spec's ``seed.expand`` makes), recorded in the diagnostics;
- an attribute the source does not record keeps the spec's targets and enters independently of
  the others (recorded in the diagnostics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.errors import UserError
from simsurvey.population.composition import human_respondents
from simsurvey.population.spec import PopulationSpec


@dataclass(frozen=True)
class MatchedTargets:
    """Targets and seed table for personas matching a reference source.

    Attributes:
        source: The reference source matched.
        margins: Target shares, one array per spec attribute (spec order).
        seed: Weighted seed counts, one axis per spec attribute.
        diagnostics: What was matched and how (for the manifest).
    """

    source: str
    margins: list[np.ndarray]
    seed: np.ndarray
    diagnostics: dict[str, Any]


def reference_sources(reference: pd.DataFrame) -> list[str]:
    """The sources of a reference-schema frame, in order of appearance (survey.reference's order)."""
    return list(dict.fromkeys(reference["source"].astype(str))) if len(reference) else []


def _coarsening(spec: PopulationSpec, name: str, people: pd.DataFrame) -> tuple[str, dict[str, str]] | None:
    """A derived variable of ``name`` the source records (its name and source code -> coarse code)."""
    for dname, der in spec.derived.items():
        if der.from_ == name and dname in people.columns and people[dname].notna().any():
            return dname, dict(der.map)
    return None


def match_reference(spec: PopulationSpec, reference: pd.DataFrame, source: str | None = None) -> MatchedTargets:
    """The targets and seed of personas matching ``source`` of ``reference`` (see module docstring).

    Args:
        spec: The population spec (attributes, derived coarsenings, fallback shares).
        reference: Reference-schema rows carrying the spec's variables (``load_reference`` with
            the spec's variables).
        source: The source to match; default the first source of ``reference``.

    Raises:
        UserError: the source is not in the reference, records none of the spec's attributes, or
            none of its respondents records all of the attributes it has (no seed).
    """
    sources = reference_sources(reference)
    if not sources:
        raise UserError("population.targets=reference: the human reference has no respondent "
                        "(survey.reference maps no answer of the instrument)")
    source = source or sources[0]
    if source not in sources:
        raise UserError(f"population.reference_source: '{source}' is not a source of the human reference "
                        f"(sources: {', '.join(sources)})")
    people = human_respondents(reference)
    people = people[people["source"].astype(str) == source].reset_index(drop=True)
    weights = people["weight"].to_numpy(dtype=float)
    margins: list[np.ndarray] = []
    axes: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # (kind, seed axis codes, coarse_of, w)
    handling: dict[str, str] = {}
    assumptions: dict[str, str] = {}
    complete = np.ones(len(people), dtype=bool)
    for name, attr in spec.attributes.items():
        codes = attr.codes
        spec_shares = attr.shares
        if name in people.columns and people[name].notna().any():
            col = people[name].astype("string")
            groups, coarse_of = list(codes), np.arange(len(codes))
            handling[name] = f"matched to {source}"
        elif (c := _coarsening(spec, name, people)) is not None:
            dname, cmap = c
            col = people[dname].astype("string")
            groups = list(dict.fromkeys(cmap[x] for x in codes))
            coarse_of = np.array([groups.index(cmap[x]) for x in codes])
            handling[name] = f"matched to {source} on {dname} (coarse); the split within each {dname} class follows the spec"
            assumptions[name] = (
                f"{source} records {name} only as {dname}: the {dname} shares are {source}'s, and within each {dname} "
                f"class the {name} categories follow the spec's shares, independent of the other attributes")
        else:
            margins.append(spec_shares)
            axes.append(("independent", np.zeros(len(people), dtype=np.int64), np.zeros(len(codes), dtype=np.int64),
                         np.full(len(codes), 1.0 / len(codes))))
            handling[name] = f"spec targets, independent of the others (not in {source})"
            continue
        ok = col.notna().to_numpy()
        idx = pd.Categorical(col.astype(object).where(ok, None), categories=groups).codes.astype(np.int64)
        complete &= idx >= 0
        coarse_w = np.bincount(idx[ok], weights=weights[ok], minlength=len(groups))
        coarse_share = coarse_w / coarse_w.sum()
        # Fine share = coarse share x the spec's split within the class (identity when not coarse).
        within = np.bincount(coarse_of, weights=spec_shares, minlength=len(groups))[coarse_of]
        size = np.bincount(coarse_of, minlength=len(groups))[coarse_of]
        w = np.where(within > 0, np.divide(spec_shares, within, out=np.zeros_like(spec_shares), where=within > 0),
                     1.0 / size)
        margins.append(coarse_share[coarse_of] * w)
        axes.append(("recorded", idx, coarse_of, w))
    if all(kind == "independent" for kind, *_ in axes):
        raise UserError(f"population.targets=reference: {source} records none of the population's attributes "
                        f"({', '.join(spec.attributes)}); match another source (population.reference_source) or "
                        "use population.targets=spec")
    rec = [k for k, (kind, *_) in enumerate(axes) if kind == "recorded"]
    sizes = [int(axes[k][2].max()) + 1 if axes[k][0] == "recorded" else 1 for k in range(len(axes))]
    cells = np.ravel_multi_index([axes[k][1][complete] if k in rec else np.zeros(int(complete.sum()), dtype=np.int64)
                                  for k in range(len(axes))], sizes)
    table = np.bincount(cells, weights=weights[complete], minlength=int(np.prod(sizes))).reshape(sizes)
    if not table.sum() > 0:
        raise UserError(f"population.targets=reference: no respondent of {source} records all of "
                        f"{', '.join(n for k, n in enumerate(spec.attributes) if k in rec)}, so there is no seed")
    for k, (_, _, coarse_of, w) in enumerate(axes):  # blow coarse (and absent) axes up to the fine codes
        shape = [1] * table.ndim
        shape[k] = -1
        table = np.take(table, coarse_of, axis=k) * w.reshape(shape)
    diagnostics = {
        "targets": "reference",
        "reference_source": source,
        "reference_respondents": len(people),
        "seed_rows": int(complete.sum()),
        "seed_note": f"{source}'s respondents with every attribute it records (complete cases), weighted; "
                     "each attribute's target is its weighted share among those who record it",
        "attribute_handling": handling,
        "assumptions": assumptions,
    }
    return MatchedTargets(source=source, margins=margins, seed=table, diagnostics=diagnostics)
