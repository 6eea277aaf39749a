"""The personas' composition beside the human sample's, and which persona cells it cannot cover.

A silicon-vs-human distance mixes two things: how well the model answers as a person would
(fidelity) and how different the two samples are in who they hold (composition). This module
shows the second before any model is called. Per reference source, its unique human respondents
(``source``, ``respondent_id``) with their weights are set beside the personas, per population
variable the source records: persona share vs weighted human share per code (a share is among
the non-null values), the persona and human counts, and ``covered`` — false when personas hold a
code that no human respondent of that source has, so that persona has no human counterpart (the
reference baseline cannot answer as them, their subgroup cannot be compared). A variable the
source does not record at all is listed as not in the human data: no error, its subgroups are
simply not comparable.

Uncovered personas stop a run before any model call unless ``survey.accept_uncovered`` accepts
them (:func:`check_coverage`); the two fixes are accepting them (and reading the report's count)
or drawing personas that match the human sample (``population.targets=reference``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.errors import UserError
from simsurvey.population.variables import Variables

#: Columns of :attr:`Composition.table`.
COMPOSITION_COLUMNS: tuple[str, ...] = (
    "source", "variable", "code", "label", "persona_share", "human_share", "persona_n", "human_n", "covered",
)


def human_respondents(reference: pd.DataFrame) -> pd.DataFrame:
    """The unique human respondents of a reference-schema frame (one row per ``source`` x
    ``respondent_id``, the first row's weight and demographics), sources in order of appearance."""
    if reference.empty:
        return reference.iloc[0:0]
    keys = reference["source"].astype(str) + "\x1f" + reference["respondent_id"].astype(str)
    return reference.loc[~keys.duplicated().to_numpy()].reset_index(drop=True)


def _shares(values: pd.Series, weights: np.ndarray, codes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(weighted share among the non-null values, unweighted count) per code."""
    v = values.astype("string")
    ok = v.notna().to_numpy()
    cat = pd.Categorical(v[ok].astype(str), categories=list(codes)).codes
    known = cat >= 0  # a code outside the spec's cannot reach here (the loader checks codes)
    w = np.bincount(cat[known], weights=weights[ok][known], minlength=len(codes)).astype(float)
    n = np.bincount(cat[known], minlength=len(codes)).astype(np.int64)
    total = w.sum()
    return (w / total if total > 0 else np.zeros(len(codes))), n


@dataclass(frozen=True)
class Composition:
    """Persona vs human composition per reference source and variable.

    Attributes:
        table: One row per source x recorded variable x code (:data:`COMPOSITION_COLUMNS`).
        respondents: Source -> its unique human respondents.
        not_recorded: Source -> the population variables it does not record (all null).
        uncovered_ids: Source -> variable -> persona ids in that variable's uncovered codes.
        n_personas: Personas compared.
    """

    table: pd.DataFrame
    respondents: dict[str, int]
    not_recorded: dict[str, list[str]]
    uncovered_ids: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    n_personas: int = 0

    @property
    def uncovered(self) -> pd.DataFrame:
        """The rows of :attr:`table` whose code has personas and no human respondent."""
        return self.table[~self.table["covered"].astype(bool)]

    def uncovered_personas(self, variables: Sequence[str] | None = None) -> int:
        """Personas in at least one uncovered code (of ``variables``, default all), each counted once."""
        ids = [a for per in self.uncovered_ids.values() for v, a in per.items()
               if variables is None or v in variables]
        return int(np.unique(np.concatenate(ids)).size) if ids else 0

    def distance(self) -> pd.DataFrame:
        """Per source x variable, the total variation distance between the persona and human
        shares (the share of personas that would have to change code to match the humans)."""
        t = self.table
        if t.empty:
            return pd.DataFrame(columns=["source", "variable", "total_variation"])
        d = (t["persona_share"] - t["human_share"]).abs()
        out = d.groupby([t["source"], t["variable"]], sort=False).sum() / 2
        return out.rename("total_variation").reset_index()

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``composition`` entry."""
        tv = {(r.source, r.variable): float(r.total_variation) for r in self.distance().itertuples()}
        sources: dict[str, Any] = {}
        for src, n in self.respondents.items():
            rows = self.table[self.table["source"] == src]
            variables = {}
            for var, g in rows.groupby("variable", sort=False):
                variables[str(var)] = {
                    "total_variation": round(tv[(src, var)], 6),
                    "codes": [{"code": r.code, "label": r.label, "persona_share": round(float(r.persona_share), 6),
                               "human_share": round(float(r.human_share), 6), "persona_n": int(r.persona_n),
                               "human_n": int(r.human_n), "covered": bool(r.covered)} for r in g.itertuples()],
                }
            sources[src] = {"respondents": int(n), "variables": variables,
                            "not_in_human_data": list(self.not_recorded.get(src, []))}
        return {"personas": self.n_personas, "sources": sources}


def composition(personas: pd.DataFrame, reference: pd.DataFrame, variables: Variables) -> Composition:
    """The personas' composition beside each reference source's unique respondents.

    Args:
        personas: personas.parquet (``persona_id``, ``weight``, one column per variable).
        reference: reference-schema rows (``source``, ``respondent_id``, ``weight``, the variables).
        variables: The population's variables (their codes and labels, in order).

    Returns:
        The :class:`Composition` (sources in the order they appear in ``reference``).
    """
    people = human_respondents(reference)
    pw = (personas["weight"].to_numpy(dtype=float) if "weight" in personas.columns
          else np.ones(len(personas)))
    pid = (personas["persona_id"].to_numpy() if "persona_id" in personas.columns
           else np.arange(len(personas)))
    rows: list[dict[str, Any]] = []
    respondents: dict[str, int] = {}
    not_recorded: dict[str, list[str]] = {}
    uncovered: dict[str, dict[str, np.ndarray]] = {}
    sources = list(dict.fromkeys(people["source"].astype(str))) if len(people) else []
    for src in sources:
        h = people[people["source"].astype(str) == src]
        respondents[src] = len(h)
        hw = h["weight"].to_numpy(dtype=float)
        for var in variables.items.values():
            name = var.name
            if name not in h.columns or not h[name].notna().any() or name not in personas.columns:
                not_recorded.setdefault(src, []).append(name)
                continue
            p_share, p_n = _shares(personas[name], pw, var.codes)
            h_share, h_n = _shares(h[name], hw, var.codes)
            covered = ~((p_n > 0) & (h_n == 0))
            for k, code in enumerate(var.codes):
                rows.append({"source": src, "variable": name, "code": code, "label": var.labels[k],
                             "persona_share": float(p_share[k]), "human_share": float(h_share[k]),
                             "persona_n": int(p_n[k]), "human_n": int(h_n[k]), "covered": bool(covered[k])})
            if not covered.all():
                bad = [c for c, ok in zip(var.codes, covered) if not ok]
                mask = personas[name].astype("string").isin(bad).fillna(False).to_numpy(dtype=bool)
                uncovered.setdefault(src, {})[name] = pid[mask]
    table = pd.DataFrame(rows, columns=list(COMPOSITION_COLUMNS))
    return Composition(table=table, respondents=respondents, not_recorded=not_recorded,
                       uncovered_ids=uncovered, n_personas=len(personas))


@dataclass(frozen=True)
class Coverage:
    """The verdict on a :class:`Composition` under ``survey.accept_uncovered``.

    Attributes:
        ok: The run may proceed (nothing uncovered, or every uncovered attribute accepted).
        uncovered_personas: Personas in an uncovered code (each once).
        accepted: Attributes whose uncovered personas are accepted.
        refused: Attributes with uncovered personas not accepted.
        message: The one-line error when not ``ok`` (else "").
    """

    ok: bool
    uncovered_personas: int
    accepted: tuple[str, ...]
    refused: tuple[str, ...]
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``coverage`` entry."""
        return {"ok": self.ok, "uncovered_personas": self.uncovered_personas,
                "accepted_attributes": list(self.accepted), "refused_attributes": list(self.refused)}


def coverage(comp: Composition, accept: bool | Sequence[str] = False) -> Coverage:
    """Judge ``comp``: uncovered personas are refused unless ``accept`` is true or lists their attributes.

    Args:
        comp: The composition.
        accept: ``survey.accept_uncovered``: false, true, or attribute names.
    """
    unc = comp.uncovered
    attrs = tuple(dict.fromkeys(unc["variable"].astype(str)))
    if accept is True:
        accepted, refused = attrs, ()
    else:
        listed = set(accept or ())
        accepted = tuple(a for a in attrs if a in listed)
        refused = tuple(a for a in attrs if a not in listed)
    n = comp.uncovered_personas()
    if not refused:
        return Coverage(True, n, accepted, ())
    parts = []
    for (src, var), g in unc[unc["variable"].isin(refused)].groupby(["source", "variable"], sort=False):
        k = int(comp.uncovered_ids[src][var].size)
        parts.append(f"{src} has no respondent with {var} {', '.join(g['code'].astype(str))} "
                     f"({k:,} of {comp.n_personas:,} personas)")
    n_ref = comp.uncovered_personas(refused)
    msg = (f"survey.reference: personas without a human counterpart: {'; '.join(parts)}; "
           f"{_personas(n_ref)} in all. Accept them with survey.accept_uncovered=true "
           f"(or =[{','.join(refused)}]) and the report counts them, or draw personas that match the "
           "human sample with population.targets=reference")
    return Coverage(False, n, accepted, refused, msg)


def check_accept(accept: bool | Sequence[str], variables: Variables) -> None:
    """``survey.accept_uncovered`` names only the population's variables (a typo would accept nothing).

    Raises:
        UserError: one line naming the unknown attribute and the known ones.
    """
    if isinstance(accept, bool):
        return
    bad = [a for a in accept if a not in variables.names]
    if bad:
        raise UserError(f"survey.accept_uncovered: unknown attribute '{bad[0]}' (the population's attributes: "
                        f"{', '.join(variables.names)})")


def _personas(n: int) -> str:
    return f"{n:,} persona" + ("" if n == 1 else "s")


def check_coverage(comp: Composition, accept: bool | Sequence[str] = False) -> Coverage:
    """:func:`coverage`, raising when the run may not proceed.

    Raises:
        UserError: one line naming the sources, attributes and codes, the number of personas, and
            the two fixes (``survey.accept_uncovered=true`` or ``population.targets=reference``).
    """
    verdict = coverage(comp, accept)
    if not verdict.ok:
        raise UserError(verdict.message)
    return verdict


def format_composition(comp: Composition, *, codes: bool = True) -> str:
    """The composition as plain text (the ``check`` command's table)."""
    lines: list[str] = []
    tv = {(r.source, r.variable): r.total_variation for r in comp.distance().itertuples()}
    for src, n in comp.respondents.items():
        lines.append(f"{src}: {n:,} respondents (shares weighted) vs {comp.n_personas:,} personas")
        rows = comp.table[comp.table["source"] == src]
        lines.append(f"  {'variable':<18} {'code':<28} {'personas':>9} {'humans':>9} {'n pers.':>8} {'n hum.':>8}")
        for var, g in rows.groupby("variable", sort=False):
            lines.append(f"  {var:<18} total variation {tv[(src, var)]:.3f}")
            if not codes:
                continue
            for r in g.itertuples():
                flag = "" if r.covered else "  <- no human respondent"
                lines.append(f"  {'':<18} {r.code!s:<28} {r.persona_share:>9.3f} {r.human_share:>9.3f} "
                             f"{r.persona_n:>8,} {r.human_n:>8,}{flag}")
        if comp.not_recorded.get(src):
            lines.append(f"  not in the human data (subgroups on them cannot be compared): "
                         f"{', '.join(comp.not_recorded[src])}")
    return "\n".join(lines)
