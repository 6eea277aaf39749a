"""Baseline respondents: the same interface as a model, answering from ``Request.context``.

- ``baseline/uniform`` (the floor): uniform over the displayed options that are not
  non-substantive (Don't know etc. get 0; a displayed neutral option counts as substantive).
- ``baseline/majority``: the weighted modal human answer of the question (one-hot).
- ``baseline/reference`` (the ceiling a perfect silicon sample would reach): the weighted human
  answer distribution of the persona's demographic cell, with back-off (below).

Every baseline reads from ``Request.context``: ``question_id``, ``option_order`` (canonical codes
in display order), ``kind``, ``nonsubstantive_codes`` and ``persona`` (dict of demographic codes,
None for the no_persona control); :func:`~simsurvey.respondents.prompts.render_request` fills all
but ``persona``, which the runner passes. ``label_probs`` are in display order over the
displayed labels; with ``sample``/``both`` the text is one displayed label drawn from them
(``"A, C"`` for a multi_select set) with a generator seeded from the backend seed and
``Request.seed``, so a draw does not depend on batch composition.

Human answers outside the displayed options (a Don't know the condition does not show) are
dropped and their share reported as ``missing_mass``. For multi_select questions the reference
answers are sets (``"a|c"``): majority/reference draw whole sets and give no ``label_probs``.

Numeric questions (``context["kind"] == "numeric"``; ``context["scale"]`` has min, max, step)
are answered with a number as text, always (it is read by the numeric parser like a model's
answer), plus ``label_probs`` over the bins when the request has value labels (logprob
elicitation of a small scale): ``uniform`` draws uniformly over the scale's values (a continuous
scale: uniformly over [min, max]); ``majority`` answers the weighted modal human value
(``answer_value``; ties to the smallest); ``reference`` draws a human value of the persona's cell.
Human answers without a value (Don't know) are not drawn: their share is ``missing_mass``.

Reference back-off (``baseline/reference``): the cell matches the persona on every variable
available both in the reference rows of that question and in the persona, starting from the first
level of the population's ladder (``baseline_cells`` of the population spec, see
:class:`~simsurvey.population.variables.Variables`; the US spec's starts from ``race_ethnicity,
education, age, sex, region, household_income`` and coarsens education to college before it drops
sex), and moves down the ladder while the cell has fewer than ``min_cell`` respondents
(``model.params.min_cell``, default 5); the last level is the question's whole sample. Each
result's ``extra`` records ``match_vars`` and ``cell_n``.

Battery items (``Request.context['battery']``) are answered by one human respondent per persona
and battery, so the reference baseline keeps the human inter-item structure (its Cronbach's alpha
is the human one, not that of independent draws): each respondent r of the reference gets a key
−log(U_r)/w_r with U_r uniform from a generator seeded by the backend seed, the battery and the
persona (``Request.prefix_key``), and every item is answered by the respondent with the smallest
key in that item's matched cell — a weighted draw (Efraimidis & Spirakis 2006) that picks the same
respondent for every item whose cell holds them. Their logprob answer is that respondent's answer
(one-hot), and a persona answers the battery alike in every replicate. The no-persona control
draws items independently.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simsurvey.errors import UserError
from simsurvey.population.variables import Variables, population_of
from simsurvey.reference.codes import demographic_columns
from simsurvey.respondents._reference_cells import (
    Level,
    QuestionCells,
    ReferenceColumns,
)
from simsurvey.respondents.base import Request, Result
from simsurvey.respondents.config import ModelConfig

NEEDED_COLUMNS = ("source", "respondent_id", "weight", "question_id", "answer_code")
#: (battery, persona) keys the reference baseline keeps (see ReferenceBackend._battery_answer).
_BATTERY_KEYS = 64


def _rng(seed: int, request: Request) -> np.random.Generator:
    # Keyed by the request, not by its position in a batch.
    return np.random.default_rng([seed, 0 if request.seed is None else int(request.seed) % 2**63])


def _choice(rng: np.random.Generator, p: np.ndarray) -> int:
    """``rng.choice(len(p), p=p)``: the same draw from the same stream (one uniform against the
    cumulative weights, as numpy does it), without its argument checks (~10x faster per call)."""
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


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


class UniformBackend:
    """Uniform over the displayed substantive options (the floor)."""

    def __init__(self, cfg: ModelConfig, *, seed: int) -> None:
        self.name = cfg.name
        self.seed = seed
        self.elicitation = cfg.elicitation
        self.deterministic = cfg.elicitation == "logprobs"
        self.batch_size = 256

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer each request uniformly at random (seeded per request)."""
        return [self._one(r) for r in requests]

    def _one(self, r: Request) -> Result:
        if r.context.get("kind") == "numeric":
            scale = _ctx(r, "scale")
            rng = _rng(self.seed, r)
            lo, hi, step = float(scale["min"]), float(scale["max"]), scale.get("step")  # type: ignore[index]
            if step is None:
                return _emit_value(r, float(rng.uniform(lo, hi)), None)
            n = int(round((hi - lo) / float(step))) + 1
            probs = np.full(len(r.labels), 1.0 / len(r.labels)) if r.labels else None
            return _emit_value(r, lo + int(rng.integers(n)) * float(step), probs)
        order = list(_ctx(r, "option_order"))  # type: ignore[arg-type]
        nonsub = set(r.context.get("nonsubstantive_codes", ()))
        ok = np.array([c not in nonsub for c in order], dtype=float)
        if ok.sum() == 0:
            ok[:] = 1.0
        probs = ok / ok.sum()
        rng = _rng(self.seed, r)
        if r.context.get("kind") == "multi_select":
            idx = np.flatnonzero(ok)
            while True:  # a uniformly random non-empty subset of the substantive options
                pick = idx[rng.random(len(idx)) < 0.5]
                if len(pick):
                    break
            return _emit(r, None, ", ".join(r.labels[i] for i in sorted(pick)))
        return _emit(r, probs, r.labels[int(rng.choice(len(order), p=probs))])


class MajorityBackend:
    """The weighted modal human answer of each question."""

    def __init__(self, cfg: ModelConfig, *, reference: pd.DataFrame, seed: int) -> None:
        self.name = cfg.name
        self.seed = seed
        self.deterministic = True
        self.batch_size = 256
        df = _check_reference(reference, "baseline/majority")
        self._totals = df.groupby(["question_id", "answer_code"], observed=True)["weight"].sum()
        self._questions = {str(q) for q in self._totals.index.get_level_values(0)}
        valued = df[df["answer_value"].notna()] if "answer_value" in df.columns else df.assign(answer_value=np.nan).iloc[0:0]
        self._values = valued.groupby(["question_id", "answer_value"], observed=True)["weight"].sum()

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer each request with the modal human answer among the displayed options."""
        return [self._one(r) for r in requests]

    def _one(self, r: Request) -> Result:
        qid = str(_ctx(r, "question_id"))
        order = list(_ctx(r, "option_order"))  # type: ignore[arg-type]
        if qid not in self._questions:
            return Result(error=f"baseline/majority: no reference answers for question '{qid}'")
        if r.context.get("kind") == "numeric":
            if qid not in self._values.index.get_level_values(0):
                return Result(error=f"baseline/majority: no numeric reference answers for question '{qid}'")
            vw = self._values.loc[qid]
            vals, wts = vw.index.to_numpy(float), vw.to_numpy(float)
            mode = float(vals[np.lexsort((vals, -wts))[0]])  # ties: the smallest value
            onehot = None
            if r.labels:
                onehot = np.array([1.0 if np.isclose(float(lbl), mode) else 0.0 for lbl in r.labels])
            return _emit_value(r, mode, onehot, missing=1.0 - wts.sum() / float(self._totals.loc[qid].sum()))
        w = self._totals.loc[qid]
        shown = {c: float(v) for c, v in w.items() if all(x in order for x in str(c).split("|"))}
        if not shown:
            return Result(error=f"baseline/majority: no reference answer of question '{qid}' is among the displayed options")
        # Ties go to the smallest code, so the answer does not depend on the display order.
        mode = min(shown, key=lambda c: (-shown[c], c))
        missing = 1.0 - sum(shown.values()) / float(w.sum())
        if "|" in mode or r.context.get("kind") == "multi_select":
            return _emit(r, None, _labels_of(mode, r))
        probs = np.array([1.0 if c == mode else 0.0 for c in order])
        return _emit(r, probs, _labels_of(mode, r), missing=missing)


class ReferenceBackend:
    """A human answer drawn from the persona's demographic cell (see the back-off order).

    Each question's reference rows are indexed on first use (:mod:`._reference_cells`): a row
    costs a few lookups, not a pass over the reference, and the answers are those the row-by-row
    matching gave, draw for draw.
    """

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
        # Each question's row positions; its cells are indexed on first use (factorized once here).
        self._by_q = {str(q): rows for q, rows in df.groupby("question_id", observed=True).indices.items()}
        self._columns = ReferenceColumns(df, self.variables.names)
        self._index: dict[str, QuestionCells] = {}
        self._personas: dict[tuple, dict] = {}
        # Battery keys per (battery, persona): a persona's items come in one batch, so a few
        # recent ones are enough (they are recomputed identically if evicted).
        self._keys: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    async def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer each request from the persona's matched cell of human answers."""
        return [self._one(r) for r in requests]

    def cell(self, question_id: str, persona: dict | None,
             by: str = "answer_code") -> tuple[pd.Series, tuple[str, ...], int]:
        """Weighted answer totals of the matched cell (by answer code, or ``by="answer_value"``
        for a numeric question's values), the variables matched, and its size."""
        q = self._question(question_id)
        level, cell, n = q.find(self._persona(persona), self.variables.cells, self.min_cell)
        at, totals = q.totals(level, cell, by)
        labels = q.codes[at] if by == "answer_code" else q.values[at]
        return pd.Series(totals, index=pd.Index(labels, name=by), name="weight"), level.match, n

    def _question(self, question_id: str) -> QuestionCells:
        q = self._index.get(question_id)
        if q is None:
            q = self._index[question_id] = QuestionCells(self._columns, self._by_q[question_id])
        return q

    def _persona(self, persona: dict | None) -> dict:
        """The persona's codes with the population's derived variables filled (once per persona)."""
        try:
            key = tuple((persona or {}).items())
            hit = self._personas.get(key)
        except TypeError:  # an unhashable value: derive it every time
            return self.variables.derive_one(dict(persona or {}))
        if hit is None:
            hit = self._personas[key] = self.variables.derive_one(dict(persona or {}))
        return hit

    def _one(self, r: Request) -> Result:
        qid = str(_ctx(r, "question_id"))
        order = list(_ctx(r, "option_order"))  # type: ignore[arg-type]
        if qid not in self._by_q:
            return Result(error=f"baseline/reference: no reference answers for question '{qid}'")
        if r.context.get("kind") == "numeric":
            return self._one_value(r, qid)
        q = self._question(qid)
        level, cell, n = q.find(self._persona(r.context.get("persona")), self.variables.cells, self.min_cell)  # type: ignore[arg-type]
        extra = {"match_vars": list(level.match), "cell_n": n}
        at, totals = q.totals(level, cell)
        displayed = set(order)
        ok = np.array([all(x in displayed for x in q.parts[i]) for i in at], dtype=bool)
        shown_codes, shown = q.codes[at[ok]], totals[ok]
        if shown.sum() <= 0:
            return Result(error=f"baseline/reference: no reference answer of question '{qid}' is among the displayed options", extra=extra)
        missing = 1.0 - float(shown.sum()) / float(totals.sum())
        battery, persona = r.context.get("battery"), r.context.get("persona")
        if battery and persona is not None and r.prefix_key is not None:
            return self._battery_answer(r, q, level, cell, qid, str(battery), order, extra)
        if r.context.get("kind") == "multi_select" or q.has_set and any("|" in str(c) for c in shown_codes):
            p = shown / shown.sum()
            code = str(shown_codes[_choice(_rng(self.seed, r), p)])
            return _emit(r, None, _labels_of(code, r), extra=extra)
        at = {str(c): float(t) for c, t in zip(shown_codes, shown)}
        probs = np.array([at.get(c, 0.0) for c in order])
        probs = probs / probs.sum()
        draw = r.labels[_choice(_rng(self.seed, r), probs)]
        return _emit(r, probs, draw, missing=missing, extra=extra)

    def _battery_answer(self, r: Request, q: QuestionCells, level: Level, cell: int, qid: str, battery: str,
                        order: list, extra: dict) -> Result:
        """The answer of the persona's respondent for this battery (see the module docstring)."""
        rows = level.rows(cell)
        displayed = set(order)
        ok = np.array([all(x in displayed for x in parts) for parts in q.parts], dtype=bool)
        rows = rows[ok[q.answer[rows]]]
        if not len(rows):
            return Result(error=f"baseline/reference: no reference answer of question '{qid}' is among the displayed options", extra=extra)
        kkey = (battery, str(r.prefix_key))
        keys = self._keys.get(kkey)
        if keys is None:
            h = int.from_bytes(hashlib.sha256("\x00".join(kkey).encode()).digest()[:8], "little")
            u = np.random.default_rng([self.seed, h]).random(self._n_resp)
            keys = self._keys[kkey] = -np.log(np.maximum(u, 1e-300))
            if len(self._keys) > _BATTERY_KEYS:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(kkey)
        pick = rows[int(np.argmin(keys[q.rix[rows]] / q.weight[rows]))]
        code = str(q.codes[q.answer[pick]])
        extra = {**extra, "battery_respondent": int(q.rix[pick])}
        probs = np.array([1.0 if c == code else 0.0 for c in order])
        return _emit(r, probs, _labels_of(code, r), extra=extra)

    def _one_value(self, r: Request, qid: str) -> Result:
        """A human value drawn from the persona's cell (cells are matched on respondents with a value)."""
        q = self._question(qid)
        if not q.has_values:
            return Result(error=f"baseline/reference: no numeric reference answers for question '{qid}'")
        level, cell, n = q.find(self._persona(r.context.get("persona")), self.variables.cells, self.min_cell)  # type: ignore[arg-type]
        extra = {"match_vars": list(level.match), "cell_n": n}
        at, wts = q.totals(level, cell, by="answer_value")
        vals = q.values[at]
        if wts.sum() <= 0:
            return Result(error=f"baseline/reference: no numeric reference answer in the cell of question '{qid}'",
                          extra=extra)
        p = wts / wts.sum()
        value = float(vals[_choice(_rng(self.seed, r), p)])
        return _emit_value(r, value, _value_probs(r, vals, wts), extra=extra)
