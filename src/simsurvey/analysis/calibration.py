"""Calibration by simulation through the public :func:`simsurvey.analysis.analyze` API.

One *cell* of the calibration grid is a known pair of populations — a human distribution q and a
silicon distribution p = q tilted by ``d`` (p ∝ q·exp(d·z), z = linspace(−1, 1, K)) — sampled at
n_silicon personas and n_human respondents under one elicitation ``mode``:

- ``answers``: each persona gives one answer drawn from p (rows are the units);
- ``cluster``: each persona answers ``conditions`` times; with probability ``rho`` a row repeats
  the persona's own core answer, else it is a fresh draw (every row is marginally p, rows of one
  persona are correlated: the persona-clustered design of a within-persona study);
- ``probs``: each persona has its own probability vector π_i ~ Dirichlet(α p) (mean p) written to
  ``probs``, and ``answer_code`` is a draw from π_i (logprob elicitation; the estimand of the
  silicon distribution is the persona-averaged p).

The replicates of a cell are the *questions* of one instrument: every question has its own
independent silicon and human samples, so one ``analyze`` call scores R replicates at once and
each row of ``metrics.parquet`` is one replicate. A demographic ``sex`` independent of the
answers gives the association metrics a known truth of 0. The truth of every metric is the
metric's formula applied to the populations (p, q).

Used by ``benchmarks/calibrate.py`` (the full grid, written to VALIDATION.md) and by the test
suite (a fixed-seed subset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simsurvey.analysis import metrics as M
from simsurvey.analysis.compare import analyze
from simsurvey.analysis.config import AnalysisConfig
from simsurvey.instruments.models import Instrument, Option, Question

MODES = ("answers", "cluster", "probs")


def base_distribution(k: int) -> np.ndarray:
    """A unimodal, asymmetric human distribution over K options (every option ≥ ~4%)."""
    q = np.exp(-0.5 * ((np.arange(k) - k * 0.4) / (k / 3)) ** 2) + 0.15
    return q / q.sum()


def tilt(q: np.ndarray, d: float) -> np.ndarray:
    """p ∝ q·exp(d·z), z = linspace(−1, 1, K): a shift toward the high end of the scale."""
    p = q * np.exp(d * np.linspace(-1, 1, len(q)))
    return p / p.sum()


@dataclass(frozen=True)
class Cell:
    """One cell of the calibration grid."""

    mode: str = "answers"
    k: int = 5
    n_silicon: int = 500
    n_human: int = 1000
    d: float = 0.0
    reps: int = 200
    conditions: int = 3  #: rows per persona (cluster mode)
    rho: float = 0.6  #: within-persona repeat probability (cluster mode)
    alpha: float = 4.0  #: Dirichlet concentration of the personas' vectors (probs mode)
    weights: bool = False  #: unequal persona and respondent weights (U(0.5, 2)), unrelated to answers


def _draw(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    return (rng.random(n)[:, None] > np.cumsum(p)[None, :]).sum(1).clip(0, len(p) - 1)


def _draw_rows(rng: np.random.Generator, pi: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, K) matrix of probability vectors."""
    return (rng.random(len(pi))[:, None] > np.cumsum(pi, 1)).sum(1).clip(0, pi.shape[1] - 1)


def simulate(cell: Cell, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Instrument]:
    """Personas, responses, reference frames and the instrument of one cell (R questions)."""
    if cell.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {cell.mode!r}")
    rng = np.random.default_rng(seed)
    k, ns, nh, r = cell.k, cell.n_silicon, cell.n_human, cell.reps
    q = base_distribution(k)
    p = tilt(q, cell.d)
    codes = np.array([f"c{j}" for j in range(k)], dtype=object)
    qs = tuple(Question(id=f"r{i}", text=f"Replicate {i}?", kind="ordinal" if i % 2 == 0 else "single_choice",
                        options=tuple(Option(code=c, label=c) for c in codes)) for i in range(r))
    inst = Instrument(id="calibration", title="Calibration", questions=qs)
    sexes = np.array(["female", "male"], dtype=object)
    pw = rng.uniform(0.5, 2.0, ns) if cell.weights else np.ones(ns)
    personas = pd.DataFrame({"persona_id": np.arange(ns, dtype=np.int64), "weight": pw,
                             "sex": sexes[rng.integers(0, 2, ns)], "cue": "calibration persona"})
    hw = rng.uniform(0.5, 2.0, nh) if cell.weights else np.ones(nh)
    hsex = sexes[rng.integers(0, 2, nh)]
    m = cell.conditions if cell.mode == "cluster" else 1
    qid = np.array([qq.id for qq in qs], dtype=object)
    pid = np.tile(np.repeat(np.arange(ns), m), r)
    cond = np.tile(np.tile(np.arange(m), ns), r)
    question = np.repeat(qid, ns * m)
    probs = None
    if cell.mode == "answers":
        ans = _draw(rng, p, ns * r)
    elif cell.mode == "cluster":
        core = np.repeat(_draw(rng, p, ns * r), m)
        fresh = _draw(rng, p, ns * m * r)
        ans = np.where(rng.random(ns * m * r) < cell.rho, core, fresh)
    else:
        pi = rng.dirichlet(cell.alpha * p * k, size=ns * r)
        ans = _draw_rows(rng, pi)
        probs = [dict(zip(codes, row.tolist())) for row in pi]
    responses = pd.DataFrame({
        "persona_id": pd.array(pid, dtype="Int64"), "question_id": question,
        "condition_id": np.array([f"cond{c}" for c in range(m)], dtype=object)[cond], "replicate": 0,
        "model": "calibration", "answer_code": codes[ans], "valid": True, "refusal": False,
        "probs": probs if probs is not None else [None] * len(ans),
    })
    hans = _draw(rng, q, nh * r)
    reference = pd.DataFrame({
        "source": "calibration", "respondent_id": np.tile(np.arange(nh), r).astype(str),
        "weight": np.tile(hw, r), "sex": np.tile(hsex, r), "question_id": np.repeat(qid, nh),
        "answer_code": codes[hans],
    })
    return personas, responses, reference, inst


def truths(cell: Cell) -> dict[str, float]:
    """Each metric's population value in a cell (association metrics: 0 by construction)."""
    q = base_distribution(cell.k)
    p = tilt(q, cell.d)
    out: dict[str, float] = {}
    for kind in ("ordinal", "nominal"):
        for name, v in M.group_metrics(p, q, kind, eps=AnalysisConfig().kl_smoothing).items():
            out[f"{kind}:{name}"] = float(v)
            if name.endswith(("_silicon", "_ratio")):
                out[f"{kind}:{name}_answers"] = float(v)
    return out


def run_cell(cell: Cell, seed: int, *, bootstrap: int = 200, null_draws: int = 500,
             ci: float = 0.95, alpha: float = 0.05) -> pd.DataFrame:
    """Score one cell: one row per metric with its replicates' coverage, rejection rate, mean
    estimate, mean null mean and their ratio.

    Returns columns ``kind`` (ordinal / nominal questions, or both), ``metric``, ``n`` (replicates), ``truth``, ``coverage`` (of the CI for the
    truth), ``reject`` (share of p ≤ alpha: size when the truth is 0 / d = 0, else power), ``mean``,
    ``null_mean`` and ``null_ratio`` (mean estimate / mean null mean).
    """
    personas, responses, reference, inst = simulate(cell, seed)
    cfg = AnalysisConfig(group_vars=["sex"], bootstrap=bootstrap, null_draws=null_draws, ci=ci,
                         n_permutations=0, min_group_n=1, pairs=False,
                         distribution="probs" if cell.mode == "probs" else "answers")
    m = analyze(responses, reference, personas, inst, cfg, seed=seed).metrics
    kinds = {q.id: q.kind if q.kind == "ordinal" else "nominal" for q in inst.questions}
    m = m.assign(kind=m.question_id.map(kinds))
    truth = truths(cell)
    rows = []
    overall = m[m.group_var == "all"]
    for (kind, metric), g in overall.groupby(["kind", "metric"], sort=False):
        t = truth.get(f"{kind}:{metric}")
        if metric in ("invalid_rate", "refusal_rate", "nonsubstantive_rate"):
            t = 0.0
        if t is None:
            continue
        rows.append({"kind": kind} | _score(metric, g, t, alpha))
    for metric in ("cramers_v_silicon", "cramers_v_human", "group_vs_all_js_silicon", "group_vs_all_js_human"):
        g = m[(m.metric == metric) & (m.group_var == "sex")]
        if len(g):
            rows.append({"kind": "both"} | _score(metric, g, 0.0, alpha))
    return pd.DataFrame(rows)


def _score(name: str, g: pd.DataFrame, truth: float, alpha: float) -> dict:
    tol = 1e-12
    cov = ((g.ci_low <= truth + tol) & (truth - tol <= g.ci_high)).mean()
    rej = (g.p_value <= alpha).mean() if g.p_value.notna().any() else np.nan
    nm = g.null_mean.mean() if g.null_mean.notna().any() else np.nan
    return {"metric": name, "n": len(g), "truth": truth, "coverage": float(cov), "reject": float(rej),
            "mean": float(g.value.mean()), "null_mean": float(nm),
            "null_ratio": float(g.value.mean() / nm) if np.isfinite(nm) and nm > 0 else np.nan}
