"""Reading a run directory for the report, and the small computations the figures need.

Every file is optional: what is absent becomes a note the report prints, never an exception.
The arithmetic (weighted distributions, split-half bands, subgroup means) is pure functions on
numpy arrays so it can be checked against independent computations.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from simsurvey.analysis.frames import option_mass
from simsurvey.instruments.models import Instrument, Question
from simsurvey.io import read_responses, require_current
from simsurvey.population.variables import Variables, population_of, read_variables

FILES = ("personas", "responses", "reference", "metrics", "order_effects", "treatment_effects")
#: The responses.parquet columns the report reads (the raw text, prompts' hashes, errors and
#: design bookkeeping are left on disk): every section's, the batteries' scoring and the overview's.
REPORT_COLUMNS: tuple[str, ...] = (
    "persona_id", "question_id", "condition_id", "replicate", "model", "answer_code", "answer_value", "valid",
    "refusal", "probs", "latency_s", "prompt_tokens", "completion_tokens", "cost_usd", "cached",
)


def is_baseline(model: str) -> bool:
    """Baseline respondents are named ``baseline/<kind>`` by the respondents package."""
    return str(model).startswith("baseline/")


@dataclass(frozen=True)
class RunData:
    """Everything the report reads from one run directory (absent files are None)."""

    run_dir: Path
    manifest: dict[str, Any]
    personas: pd.DataFrame | None
    responses: pd.DataFrame | None
    reference: pd.DataFrame | None
    metrics: pd.DataFrame | None
    order_effects: pd.DataFrame | None
    instrument: Instrument | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    treatment_effects: pd.DataFrame | None = None  #: survey experiments (absent without experiments)
    #: The population's variables (from personas.parquet's metadata; read off the frames for a
    #: run made before they were stored).
    stored_variables: Variables | None = None

    @functools.cached_property
    def variables(self) -> Variables:
        """The demographic variables of the run, in the population spec's order (computed once:
        a run without stored variables reads them off its personas and reference)."""
        return population_of(self.personas, self.reference, self.stored_variables)

    @property
    def models(self) -> list[str]:
        """Model ids, LLMs first then baselines, each in order of appearance."""
        seen: list[str] = []
        for frame in (self.responses, self.metrics):
            if frame is not None and "model" in frame.columns:
                seen += [m for m in frame["model"].dropna().astype(str).unique() if m not in seen]
        return [m for m in seen if not is_baseline(m)] + [m for m in seen if is_baseline(m)]

    @property
    def question_ids(self) -> list[str]:
        """Question ids in instrument order, then any others found in the data."""
        ids = [q.id for q in self.instrument.questions] if self.instrument else []
        # Not metrics.parquet: it also holds cross-question rows ("*", "q1|q2").
        for frame in (self.responses, self.reference):
            if frame is not None and "question_id" in frame.columns:
                ids += [q for q in frame["question_id"].dropna().astype(str).unique() if q not in ids]
        return ids

    def question(self, question_id: str) -> Question | None:
        """The instrument's question, or None when no instrument (or not in it)."""
        if self.instrument is None:
            return None
        try:
            return self.instrument.question(question_id)
        except KeyError:
            return None


def _natural_key(code: str) -> tuple[int, float, str]:
    try:
        return (0, float(code), "")
    except ValueError:
        return (1, 0.0, code)


def option_codes(data: RunData, question_id: str) -> list[str]:
    """Codes to draw for a question: the instrument's (canonical order), else those observed."""
    q = data.question(question_id)
    if q is not None:
        return list(q.codes)
    seen: set[str] = set()
    for frame in (data.responses, data.reference):
        if frame is not None and {"question_id", "answer_code"} <= set(frame.columns):
            rows = frame[frame["question_id"] == question_id]
            seen |= set(rows["answer_code"].dropna().astype(str))
    return sorted(seen, key=_natural_key)


def substantive_codes(data: RunData, question_id: str) -> list[str]:
    """Codes that enter distributions (as in the analyzer): substantive, non-neutral options.

    Without an instrument every observed code counts.
    """
    q = data.question(question_id)
    return list(q.substantive_codes) if q is not None else option_codes(data, question_id)


def option_label(data: RunData, question_id: str, code: str) -> str:
    """The option's label from the instrument, else its code."""
    q = data.question(question_id)
    if q is not None:
        try:
            return q.option(code).label
        except KeyError:
            pass
    return code


def ordinal_positions(data: RunData, question_id: str) -> dict[str, float] | None:
    """Substantive codes of an ordinal question mapped onto [0, 1] by scale position, else None."""
    q = data.question(question_id)
    if q is None or q.kind != "ordinal" or len(q.substantive_codes) < 2:
        return None
    codes = q.substantive_codes
    return {c: i / (len(codes) - 1) for i, c in enumerate(codes)}


# ---------------------------------------------------------------------------------------------
# pure arithmetic


def code_positions(codes: np.ndarray, options: list[str]) -> np.ndarray:
    """Index of each code in ``options`` (-1 when it is not an option), vectorized."""
    return np.asarray(pd.Index(options, dtype=object).get_indexer(np.asarray(codes, dtype=object)), dtype=np.int64)


def weighted_distribution(codes: np.ndarray, weights: np.ndarray, options: list[str]) -> np.ndarray:
    """Weighted share of each option among ``codes`` (answers outside ``options`` are ignored).

    Returns:
        Array of len(options) summing to 1, or all-NaN when no answer falls in ``options``.
    """
    return _shares(code_positions(codes, options), np.asarray(weights, dtype=float), len(options))


def _shares(pos: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    keep = pos >= 0
    totals = np.bincount(pos[keep], weights=weights[keep], minlength=k).astype(float)
    s = totals.sum()
    return totals / s if s > 0 else np.full(k, np.nan)


def null_band(
    codes: np.ndarray,
    weights: np.ndarray,
    options: list[str],
    n_silicon: float,
    *,
    seed: int,
    draws: int = 1000,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Range of each option's share that a *perfect* silicon sample of effective size
    ``n_silicon`` would show beside this human sample.

    The analyzer's sampling null for one option: both sides drawn from the human distribution q̂
    (silicon at ``n_silicon``, humans at their Kish size), and the band is q̂ + (P* − Q*) — where
    a silicon share would fall if the silicon answers came from the human population. A bar
    outside it differs from the human share by more than sampling at these sizes explains.

    Returns:
        (low, high): the (1-level)/2 and (1+level)/2 quantiles per option, NaN when fewer than
        2 human answers or no silicon size.
    """
    from simsurvey.analysis.inference import multinomial_props

    pos = code_positions(codes, options)
    weights = np.asarray(weights, dtype=float)
    keep = (pos >= 0) & (weights > 0)
    pos, weights = pos[keep], weights[keep]
    k = len(options)
    if len(pos) < 2 or not np.isfinite(n_silicon) or n_silicon <= 0:
        nan = np.full(k, np.nan)
        return nan, nan.copy()
    q = np.bincount(pos, weights=weights, minlength=k) / weights.sum()
    n_h = weights.sum() ** 2 / (weights**2).sum()
    rng = np.random.default_rng(seed)
    p_star = multinomial_props(rng, q[None], np.array([float(n_silicon)]), draws)[:, 0]
    q_star = multinomial_props(rng, q[None], np.array([n_h]), draws)[:, 0]
    band = q[None] + p_star - q_star
    a = (1 - level) / 2
    return np.clip(np.quantile(band, a, axis=0), 0, 1), np.clip(np.quantile(band, 1 - a, axis=0), 0, 1)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean ignoring NaN values; NaN when nothing is left."""
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights, dtype=float)
    ok = ~np.isnan(values) & (weights > 0)
    return float(np.average(values[ok], weights=weights[ok])) if ok.any() else float("nan")


def answer_matrix(rows: pd.DataFrame, options: list[str], *, use_probs: bool) -> tuple[np.ndarray, np.ndarray]:
    """Which rows enter a distribution, and their (n_ok, K) answer vectors (rows sum to 1).

    Mirrors the analyzer: with ``use_probs`` a row enters when its ``probs`` put positive mass on
    ``options`` (renormalized; mass on other codes, and non-finite or negative values, are
    dropped); otherwise when it is valid, not a refusal and its answer_code is
    one of ``options`` (one-hot).
    """
    n, k = len(rows), len(options)
    if use_probs and "probs" in rows.columns:
        # The analyzer's own reading of the maps (arrow, no loop over rows): one definition.
        x, _ = option_mass(rows["probs"], options)
        total = x.sum(axis=1)
        ok = total > 0
        return ok, x[ok] / total[ok, None]
    pos = code_positions(rows["answer_code"].to_numpy(), options) if "answer_code" in rows else np.full(n, -1)
    ok = pos >= 0
    for col, want in (("valid", True), ("refusal", False)):
        if col in rows.columns:
            ok &= rows[col].astype("boolean").fillna(not want).to_numpy(dtype=bool) == want
    x = np.zeros((int(ok.sum()), k))
    x[np.arange(len(x)), pos[ok]] = 1.0
    return ok, x


def mean_distribution(rows: pd.DataFrame, options: list[str], *, use_probs: bool) -> np.ndarray:
    """Weighted mean answer vector of ``rows`` (``weight`` column, else 1); NaN when none enters."""
    ok, x = answer_matrix(rows, options, use_probs=use_probs)
    w = rows["weight"].to_numpy(float)[ok] if "weight" in rows.columns else np.ones(len(x))
    if len(x) == 0 or w.sum() <= 0:
        return np.full(len(options), np.nan)
    return (w[:, None] * x).sum(axis=0) / w.sum()


# ---------------------------------------------------------------------------------------------
# answers in one long frame: source ("human" or a model id), question_id, answer_code, weight,
# demographics


def silicon_answers(data: RunData) -> pd.DataFrame:
    """Persona-conditioned response rows joined with persona weight and demographics.

    Every row is kept (valid or not, with its probs): :func:`answer_matrix` decides which enter
    a distribution. The ``no_persona`` control rows (null persona_id) are left out: they are not
    a sample of the population. Without personas.parquet every row weighs 1.
    """
    r = data.responses
    cols = ["model", "question_id", "answer_code", "condition_id", "persona_id", "valid", "refusal", "probs"]
    if r is None or not {"model", "question_id"} <= set(r.columns):
        return pd.DataFrame(columns=[*cols, "weight"])
    r = r[[c for c in cols if c in r.columns]]  # only these columns (not a copy of the whole frame)
    for c, default in (("condition_id", pd.NA), ("persona_id", pd.NA), ("answer_code", None), ("valid", True),
                       ("refusal", False), ("probs", None)):
        if c not in r.columns:
            r[c] = default
    # Strings stay as read (arrow-backed): object columns would hold three Python strings per row.
    r = r.loc[r["persona_id"].notna().to_numpy(), cols]
    r["persona_id"] = r["persona_id"].astype("int64")
    p = data.personas
    if p is not None and "persona_id" in p.columns:
        demo = [c for c in data.variables.names if c in p.columns]
        pw = p[["persona_id", *demo, *(["weight"] if "weight" in p.columns else [])]].copy()
        pw["persona_id"] = pw["persona_id"].astype("int64")
        r = r.merge(pw, on="persona_id", how="left")
    if "weight" not in r.columns:
        r["weight"] = 1.0
    r["weight"] = r["weight"].astype(float).fillna(1.0)
    return r.reset_index(drop=True)


def human_answers(data: RunData) -> pd.DataFrame:
    """Human reference answers (non-null codes) with weights (1 when absent)."""
    h = data.reference
    if h is None or not {"question_id", "answer_code"} <= set(h.columns):
        return pd.DataFrame(columns=["question_id", "answer_code", "weight"])
    h = h[h["answer_code"].notna()].copy()
    h = h.astype({"question_id": object, "answer_code": object})
    if "weight" not in h.columns:
        h["weight"] = 1.0
    h["weight"] = h["weight"].astype(float).fillna(0.0)
    return h


# ---------------------------------------------------------------------------------------------
# loading


def _read_parquet(path: Path, notes: list[str]) -> pd.DataFrame | None:
    if not path.exists():
        notes.append(f"{path.name} is missing: the parts of the report that need it are left out.")
        return None
    try:
        if path.name == "responses.parquet":
            return read_responses(path, REPORT_COLUMNS)
        return pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - a corrupt file is reported, not fatal
        notes.append(f"{path.name} could not be read ({type(err).__name__}: {err}).")
        return None


def _load_instrument(manifest: dict[str, Any], notes: list[str]) -> Instrument | None:
    spec = ((manifest.get("config") or {}).get("survey") or {}).get("instrument")
    if not spec:
        notes.append("No instrument given or named in the manifest: option codes are shown instead of labels.")
        return None
    try:
        from simsurvey.config import resolve_path
        from simsurvey.instruments import load_instrument  # type: ignore[attr-defined]

        return load_instrument(resolve_path(spec, key="survey.instrument"))
    except Exception as err:  # noqa: BLE001 - labels are a nicety; codes still read
        notes.append(
            f"Instrument {spec!r} could not be loaded ({type(err).__name__}: {err}): "
            "option codes are shown instead of labels."
        )
        return None


def load_run(run_dir: Path, instrument: Instrument | None = None) -> RunData:
    """Read whatever a run directory holds; absent or unreadable files become notes."""
    run_dir = Path(run_dir)
    notes: list[str] = []
    manifest: dict[str, Any] = {}
    mpath = run_dir / "manifest.json"
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            notes.append(f"manifest.json could not be read ({err}).")
    else:
        notes.append("manifest.json is missing: run settings, time, tokens and cost are unknown.")
    for kind in ("metrics", "order_effects", "treatment_effects"):
        path = run_dir / f"{kind}.parquet"
        if path.exists():
            try:
                require_current(path, kind)
            except (OSError, pa.ArrowException):
                pass  # an unreadable file is reported by _read_parquet
    # treatment_effects.parquet exists only for instruments with experiments: its absence is no news.
    frames = {name: _read_parquet(run_dir / f"{name}.parquet", notes) for name in FILES
              if name != "treatment_effects" or (run_dir / f"{name}.parquet").exists()}
    if instrument is None:
        instrument = _load_instrument(manifest, notes)
    ppath = run_dir / "personas.parquet"
    stored = read_variables(ppath) if frames.get("personas") is not None else None
    return RunData(run_dir=run_dir, manifest=manifest, instrument=instrument, notes=tuple(notes),
                   stored_variables=stored, **frames)


def slug(text: str) -> str:
    """A file-name-safe slug (``baseline/uniform`` -> ``baseline_uniform``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"
