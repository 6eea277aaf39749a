"""A frozen copy of the reference baseline's algorithm as of commit a584223 (before it was indexed).

Kept verbatim with its helpers (only the class name changed) as the slow reference implementation the current
:class:`simsurvey.respondents.baselines.ReferenceBackend` must agree with, answer for answer, at
the same seed (``tests/respondents/test_baselines_reference_fast.py``; ``benchmarks/bench_baselines.py
--slow`` times the two side by side). Do not edit: it is the definition of "today's answers".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simsurvey.errors import UserError
from simsurvey.population.variables import Variables, population_of
from simsurvey.reference.codes import demographic_columns
from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.config import ModelConfig


def _rng(seed: int, request: Request) -> np.random.Generator:
    # Keyed by the request, not by its position in a batch.
    return np.random.default_rng([seed, 0 if request.seed is None else int(request.seed) % 2**63])


def _ctx(r: Request, key: str) -> object:
    if key not in r.context:
        raise KeyError(f"baseline needs Request.context[{key!r}]")
    return r.context[key]


def _emit(r: Request, probs: np.ndarray | None, draw: str | None, *, missing: float = 0.0, extra: dict | None = None) -> Result:
    """A Result honouring the request's elicitation."""
    want_probs = r.elicitation in ("logprobs", "both")
    want_text = r.elicitation in ("sample", "both")
    return Result(
        text=draw if want_text else None,
        label_probs=tuple(float(p) for p in probs) if (want_probs and probs is not None) else None,
        missing_mass=float(missing) if (want_probs and probs is not None) else None,
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=0.0,
        extra=extra or {},
    )


def _fmt_value(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def _emit_value(r: Request, value: float, probs: np.ndarray | None, *, missing: float = 0.0,
                extra: dict | None = None) -> Result:
    """A numeric answer: the value as text whatever the elicitation (the runner parses it), and
    probabilities over the bins when the request has value labels and asks for them."""
    want_probs = r.elicitation in ("logprobs", "both") and probs is not None and len(r.labels) == len(probs)
    return Result(text=_fmt_value(value), label_probs=tuple(float(p) for p in probs) if want_probs else None,
                  missing_mass=float(missing) if want_probs else None, prompt_tokens=0, completion_tokens=0,
                  cost_usd=0.0, extra=extra or {})


def _value_probs(r: Request, values: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """Weighted shares of ``values`` over the request's value labels (None without labels)."""
    if not r.labels:
        return None
    labels = np.array([float(lbl) for lbl in r.labels])
    p = np.array([weights[np.isclose(values, v)].sum() for v in labels])
    return p / p.sum() if p.sum() > 0 else None


def _labels_of(code: str, r: Request) -> str:
    order = list(_ctx(r, "option_order"))  # type: ignore[arg-type]
    return ", ".join(r.labels[i] for i in sorted(order.index(c) for c in code.split("|") if c in order))


def _check_reference(reference: pd.DataFrame, backend: str) -> pd.DataFrame:
    missing = [c for c in ("weight", "question_id", "answer_code") if c not in reference.columns]
    if missing:
        raise UserError(f"model.backend={backend}: reference data lacks column '{missing[0]}'")
    df = reference.dropna(subset=["question_id", "answer_code", "weight"])
    df = df[df["weight"] > 0].copy()
    df["answer_code"] = df["answer_code"].astype(str)
    return df


class ReferenceBackendV0:
    """A human answer drawn from the persona's demographic cell (see the back-off order)."""

    def __init__(self, cfg: ModelConfig, *, reference: pd.DataFrame, seed: int,
                 variables: Variables | None = None) -> None:
        self.name = cfg.name
        self.seed = seed
        self.deterministic = cfg.elicitation == "logprobs"
        self.batch_size = 256
        # The population's variables and back-off ladder (read off the reference without them).
        self.variables = variables if variables is not None else population_of(
            None, reference[demographic_columns(reference)] if len(reference.columns) else None)
        self.min_cell = int(cfg.params.get("min_cell", 5))
        if self.min_cell < 1:
            raise UserError(f"model.params.min_cell: must be >= 1 (got {self.min_cell})")
        df = self.variables.derive(_check_reference(reference, "baseline/reference"))
        source = cfg.params.get("source")
        if source is not None:
            df = df[df["source"] == source]
        # A global respondent index (source, respondent_id) for the battery draws.
        df = df.assign(_rix=pd.factorize(df["source"].astype(str) + "\x00" + df["respondent_id"].astype(str))[0]
                       if "source" in df.columns else pd.factorize(df["respondent_id"].astype(str))[0])
        self._n_resp = int(df["_rix"].max()) + 1 if len(df) else 0
        self._by_q = {str(q): g for q, g in df.groupby("question_id", observed=True)}
        self._cells: dict[tuple, tuple[pd.Series, tuple[str, ...], int]] = {}
        self._cell_rows: dict[tuple, pd.DataFrame] = {}
        self._keys: dict[tuple[str, str], np.ndarray] = {}

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer each request from the persona's matched cell of human answers."""
        return [self._one(r) for r in requests]

    def cell(self, question_id: str, persona: dict | None,
             by: str = "answer_code") -> tuple[pd.Series, tuple[str, ...], int]:
        """Weighted answer totals of the matched cell (by answer code, or ``by="answer_value"``
        for a numeric question's values), the variables matched, and its size."""
        persona = self._persona(persona)
        key = self._key(question_id, by, persona)
        if key in self._cells:
            return self._cells[key]
        df = self._by_q[question_id]
        available = {c for c in self.variables.names
                     if c in df.columns and df[c].notna().any() and persona.get(c) is not None}
        seen: set[tuple[str, ...]] = set()
        for level in self.variables.cells:
            match = tuple(v for v in level if v in available)
            if match in seen:
                continue
            seen.add(match)
            mask = np.ones(len(df), dtype=bool)
            for v in match:
                mask &= (df[v].astype("string") == str(persona[v])).fillna(False).to_numpy(dtype=bool)
            n = int(mask.sum())
            if n >= self.min_cell or not match:
                totals = df.loc[mask].groupby(by, observed=True)["weight"].sum()
                self._cells[key] = (totals, match, n)
                self._cell_rows[key] = df.loc[mask, ["_rix", "weight", "answer_code"]]
                return self._cells[key]
        raise AssertionError("unreachable: the last back-off level matches everyone")

    def _persona(self, persona: dict | None) -> dict:
        """The persona's codes with the population's derived variables filled."""
        return self.variables.derive_one(dict(persona or {}))

    def _key(self, question_id: str, by: str, persona: dict) -> tuple:
        names = self.variables.names
        return (question_id, by, tuple(sorted((k, str(v)) for k, v in persona.items() if k in names)))

    def _one(self, r: Request) -> Result:
        qid = str(_ctx(r, "question_id"))
        order = list(_ctx(r, "option_order"))  # type: ignore[arg-type]
        if qid not in self._by_q:
            return Result(error=f"baseline/reference: no reference answers for question '{qid}'")
        if r.context.get("kind") == "numeric":
            return self._one_value(r, qid)
        totals, match, n = self.cell(qid, r.context.get("persona"))  # type: ignore[arg-type]
        extra = {"match_vars": list(match), "cell_n": n}
        rng = _rng(self.seed, r)
        shown = totals[[all(x in order for x in str(c).split("|")) for c in totals.index]]
        if shown.sum() <= 0:
            return Result(error=f"baseline/reference: no reference answer of question '{qid}' is among the displayed options", extra=extra)
        missing = 1.0 - float(shown.sum()) / float(totals.sum())
        battery, persona = r.context.get("battery"), r.context.get("persona")
        if battery and persona is not None and r.prefix_key is not None:
            return self._battery_answer(r, qid, str(battery), order, extra)
        if r.context.get("kind") == "multi_select" or any("|" in str(c) for c in shown.index):
            p = shown.to_numpy(dtype=float) / shown.sum()
            code = str(shown.index[int(rng.choice(len(p), p=p))])
            return _emit(r, None, _labels_of(code, r), extra=extra)
        probs = np.array([float(shown.get(c, 0.0)) for c in order])
        probs = probs / probs.sum()
        draw = r.labels[int(rng.choice(len(order), p=probs))]
        return _emit(r, probs, draw, missing=missing, extra=extra)

    def _battery_answer(self, r: Request, qid: str, battery: str, order: list, extra: dict) -> Result:
        """The answer of the persona's respondent for this battery (see the module docstring)."""
        ckey = self._key(qid, "answer_code", self._persona(r.context.get("persona")))  # as cell() keys it
        rows = self._cell_rows[ckey]
        rows = rows[[all(x in order for x in str(c).split("|")) for c in rows["answer_code"]]]
        if rows.empty:
            return Result(error=f"baseline/reference: no reference answer of question '{qid}' is among the displayed options", extra=extra)
        kkey = (battery, str(r.prefix_key))
        if kkey not in self._keys:
            h = int.from_bytes(hashlib.sha256("\x00".join(kkey).encode()).digest()[:8], "little")
            u = np.random.default_rng([self.seed, h]).random(self._n_resp)
            self._keys[kkey] = -np.log(np.maximum(u, 1e-300))
        keys = self._keys[kkey][rows["_rix"].to_numpy()] / rows["weight"].to_numpy(dtype=float)
        pick = rows.iloc[int(np.argmin(keys))]
        code = str(pick["answer_code"])
        extra = {**extra, "battery_respondent": int(pick["_rix"])}
        probs = np.array([1.0 if c == code else 0.0 for c in order])
        return _emit(r, probs, _labels_of(code, r), extra=extra)

    def _one_value(self, r: Request, qid: str) -> Result:
        """A human value drawn from the persona's cell (cells are matched on respondents with a value)."""
        df = self._by_q[qid]
        if "answer_value" not in df.columns or df["answer_value"].isna().all():
            return Result(error=f"baseline/reference: no numeric reference answers for question '{qid}'")
        totals, match, n = self.cell(qid, r.context.get("persona"), by="answer_value")  # type: ignore[arg-type]
        extra = {"match_vars": list(match), "cell_n": n}
        if totals.sum() <= 0:
            return Result(error=f"baseline/reference: no numeric reference answer in the cell of question '{qid}'",
                          extra=extra)
        vals, wts = totals.index.to_numpy(float), totals.to_numpy(float)
        p = wts / wts.sum()
        value = float(vals[int(_rng(self.seed, r).choice(len(p), p=p))])
        return _emit_value(r, value, _value_probs(r, vals, wts), extra=extra)
