"""The reference baseline's cells, indexed once per question (not searched once per row).

A persona's cell is the set of a question's human respondents who share its codes on a level of
the back-off ladder (see :mod:`simsurvey.respondents.baselines`). Matching row by row cost a pass
over the question's rows per variable, per level and per persona (a string comparison of each
column), a pandas groupby per cell, and a cache keyed by the persona — linear in personas x
questions. Here each question's demographic columns are factorized once; each level of the
ladder groups the question's rows by their codes once (one ``np.unique``) and sums the weights of
every (cell, answer) pair in one pandas groupby. A row then costs a few dictionary lookups.

The weight totals are those a groupby on the cell's own rows gives, bit for bit: pandas sums each
group in row order with the same compensated summation whether the frame holds one cell or all of
them, so the answers do not change (``tests/respondents/test_reference_cells.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Level:
    """One back-off level of one question: its cells and their weight totals.

    Attributes:
        match: The variables matched (empty: the whole sample).
        lookup: A persona's codes on ``match`` (one integer per variable) -> the cell's index.
        counts: Respondents (rows) per cell.
        starts: Offsets of each cell's rows in ``members`` (cell g is ``members[starts[g]:starts[g+1]]``).
        members: Row indices grouped by cell, each cell's in row order.
    """

    match: tuple[str, ...]
    lookup: dict[tuple[int, ...], int]
    counts: np.ndarray
    starts: np.ndarray
    members: np.ndarray

    def rows(self, cell: int) -> np.ndarray:
        """The question's row indices of ``cell``, in row order."""
        return self.members[self.starts[cell]:self.starts[cell + 1]]


class ReferenceColumns:
    """The whole reference's columns as arrays, factorized once (each question takes its rows).

    Args:
        df: The reference rows (``weight`` > 0, ``answer_code`` as str, ``_rix``).
        names: The population's variable names (those a persona may be matched on).
    """

    def __init__(self, df: pd.DataFrame, names: Sequence[str]) -> None:
        self.weight = df["weight"].to_numpy(dtype=float)
        self.rix = df["_rix"].to_numpy()
        self.answer = df["answer_code"].astype(str).to_numpy(dtype=object)
        self.values = df["answer_value"].to_numpy(dtype=float, na_value=np.nan) if "answer_value" in df.columns \
            else np.full(len(df), np.nan)
        #: Variable -> (row codes, -1 where null; code text -> code). A persona matches a row on a
        #: variable when their codes are the same text (the columns are compared as strings).
        self.var_codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        for v in names:
            if v in df.columns:
                codes, uniques = pd.factorize(df[v].astype("string"))
                self.var_codes[v] = (codes, {str(u): i for i, u in enumerate(uniques)})


class QuestionCells:
    """One question's reference rows as arrays, with its ladder's levels built on first use.

    Args:
        columns: The reference's columns.
        rows: This question's row positions in them, in row order.
    """

    def __init__(self, columns: ReferenceColumns, rows: np.ndarray) -> None:
        self.weight = columns.weight[rows]
        self.rix = columns.rix[rows]
        # Sorted like a groupby's keys, so a cell's answers come in the order they always did.
        self.answer, codes = pd.factorize(columns.answer[rows], sort=True)
        self.codes = np.asarray(codes, dtype=object)
        #: Each answer code's parts (a multi_select set "a|c" is two).
        self.parts: list[tuple[str, ...]] = [tuple(str(c).split("|")) for c in self.codes]
        self.has_set = any(len(p) > 1 for p in self.parts)
        values = columns.values[rows]
        finite = ~np.isnan(values)
        self.has_values = bool(finite.any())
        self.values = np.unique(values[finite])
        self.value_index = np.full(len(rows), -1, dtype=np.int64)
        self.value_index[finite] = np.searchsorted(self.values, values[finite])
        # Variables with no code in this question's rows are not available for it: never matched on.
        self.var_codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        for v, (codes_v, mapping) in columns.var_codes.items():
            mine = codes_v[rows]
            if (mine >= 0).any():
                self.var_codes[v] = (mine, mapping)
        self._levels: dict[tuple[str, ...], Level] = {}
        self._totals: dict[tuple[tuple[str, ...], str], np.ndarray] = {}

    # -- the persona's cell ------------------------------------------------------------------
    def find(self, persona: Mapping[str, object], ladder: Sequence[Sequence[str]],
             min_cell: int) -> tuple[Level, int, int]:
        """The first level of ``ladder`` whose cell holds at least ``min_cell`` respondents.

        Returns:
            (level, cell index, respondents in the cell); the last level (nothing matched) is
            always taken, whatever its size.
        """
        available = {v for v in self.var_codes if persona.get(v) is not None}
        seen: set[tuple[str, ...]] = set()
        for names in ladder:
            match = tuple(v for v in names if v in available)
            if match in seen:
                continue
            seen.add(match)
            level = self.level(match)
            key = []
            for v in match:
                code = self.var_codes[v][1].get(str(persona[v]))
                if code is None:
                    break  # a code no respondent has: an empty cell
                key.append(code)
            cell = level.lookup.get(tuple(key)) if len(key) == len(match) else None
            n = int(level.counts[cell]) if cell is not None else 0
            if n >= min_cell or not match:
                return level, (cell if cell is not None else -1), n
        raise AssertionError("unreachable: the last back-off level matches everyone")

    def level(self, match: tuple[str, ...]) -> Level:
        """The cells of ``match`` (built once)."""
        if match in self._levels:
            return self._levels[match]
        n = len(self.weight)
        if not match:
            lookup, counts, inv, rows = {(): 0}, np.array([n]), np.zeros(n, dtype=np.int64), np.arange(n)
        else:
            codes = np.stack([self.var_codes[v][0] for v in match], axis=1)
            rows = np.flatnonzero((codes >= 0).all(axis=1))  # a null code matches no persona
            codes = codes[rows]
            sizes = [len(self.var_codes[v][1]) for v in match]
            if math.prod(sizes) < 2**62:  # one integer per combination: a 1-D unique (fast)
                key = np.zeros(len(rows), dtype=np.int64)
                for j, size in enumerate(sizes):
                    key = key * size + codes[:, j]
                _, first, inv, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
                uniq = codes[first]
            else:
                uniq, inv, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
            inv = inv.reshape(-1)
            lookup = {tuple(u): g for g, u in enumerate(uniq.tolist())}
        order = np.argsort(inv, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)])
        level = Level(match=match, lookup=lookup, counts=counts, starts=starts, members=rows[order])
        self._levels[match] = level
        return level

    # -- weight totals -----------------------------------------------------------------------
    def totals(self, level: Level, cell: int, by: str = "answer_code") -> tuple[np.ndarray, np.ndarray]:
        """The cell's weighted totals by answer code (or ``by="answer_value"``) that occur in it.

        Returns:
            (indices into :attr:`codes` or :attr:`values`, their weight totals), in sorted order
            of the answers.
        """
        if cell < 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        key = (level.match, by)
        table = self._totals.get(key)
        if table is None:
            table = self._table(level, by)
            self._totals[key] = table
        row = table[cell]
        present = row > 0  # weights are > 0, so a total is > 0 exactly when the answer occurs
        return np.flatnonzero(present), row[present]

    def _table(self, level: Level, by: str) -> np.ndarray:
        """(cells x answers) weight totals of ``level``, from one groupby over its rows."""
        k = len(self.codes) if by == "answer_code" else len(self.values)
        ncell = len(level.counts)
        cell_of = np.empty(len(level.members), dtype=np.int64)
        cell_of[:] = np.repeat(np.arange(ncell), level.counts)
        rows = level.members
        answer = self.answer[rows] if by == "answer_code" else self.value_index[rows]
        keep = answer >= 0  # answer_value: rows without a value are not totalled
        # Back in row order: each group is then summed over the same rows in the same order as a
        # groupby on the cell alone (pandas' compensated sum is order-dependent in the last bit).
        back = np.argsort(rows[keep], kind="stable")
        keys = (cell_of[keep] * k + answer[keep])[back]
        sums = pd.Series(self.weight[rows[keep]][back]).groupby(keys).sum()
        table = np.zeros(ncell * k)
        table[sums.index.to_numpy()] = sums.to_numpy()
        return table.reshape(ncell, max(k, 0))
