"""Calibration by simulation of the treatment-effect statistics of :mod:`simsurvey.analysis.effects`.

One *cell* is a known two-arm experiment on both sides. Humans: control distribution q (the
calibration grid's unimodal q over K options), treatment arm q tilted by ``d``
(:func:`simsurvey.analysis.calibration.tilt`). Silicon: a control distribution that differs from
the human one (q tilted by ``offset``: silicon samples are rarely right in level) and a treatment
arm tilted from it by ``ratio · d``, so the silicon effect is about ``ratio`` times the human one.
Units per arm: ``n_silicon`` personas and ``n_human`` respondents. Silicon modes as in
:mod:`simsurvey.analysis.calibration` — ``answers`` (one answer per persona), ``cluster`` (each
persona answers ``conditions`` rows, repeating its own core answer with probability ``rho``),
``probs`` (each persona's probability vector π_i ~ Dirichlet(α K p)) — optionally with unequal
weights U(0.5, 2) on both sides. Humans answer once each.

The truth of each statistic is its formula on the populations: share effects p_t − p_c, the mean
effect on the 0-based scale position, their silicon − human differences and ratio. Scored per
replicate: CI coverage, rejection at α (size when the truth is 0, power otherwise), and for the
TV randomization test its rejection rate.

Used by ``benchmarks/calibrate_effects.py`` (the grid in VALIDATION.md) and the test suite (a
fixed-seed subset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simsurvey.analysis.calibration import _draw, base_distribution, tilt
from simsurvey.analysis.effects import (
    ArmData,
    arm_effects,
    compare_effects,
    effect_correlation,
    normal_summary,
)

MODES = ("answers", "cluster", "probs")


@dataclass(frozen=True)
class EffectCell:
    """One cell of the treatment-effect calibration grid."""

    mode: str = "answers"
    k: int = 3
    n_silicon: int = 200  #: personas per arm
    n_human: int = 750  #: respondents per arm
    d: float = 0.0  #: human treatment tilt (0: no effect)
    ratio: float = 1.0  #: silicon tilt = ratio · d
    offset: float = 0.3  #: silicon control = q tilted by offset
    reps: int = 200
    weights: bool = False
    conditions: int = 4
    rho: float = 0.6
    alpha: float = 4.0
    n_permutations: int = 200


def populations(cell: EffectCell) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(silicon control, silicon treatment, human control, human treatment) distributions."""
    q = base_distribution(cell.k)
    s0 = tilt(q, cell.offset)
    return s0, tilt(s0, cell.ratio * cell.d), q, tilt(q, cell.d)


def _side(rng: np.random.Generator, arms: tuple[np.ndarray, np.ndarray], n: int, cell: EffectCell,
          silicon: bool) -> ArmData:
    k = cell.k
    m = cell.conditions if (silicon and cell.mode == "cluster") else 1
    xs, arm_rows, units = [], [], []
    for a, p in enumerate(arms):
        if silicon and cell.mode == "probs":
            x = rng.dirichlet(cell.alpha * k * p, size=n)
        elif silicon and cell.mode == "cluster":
            core = np.repeat(_draw(rng, p, n), m)
            pos = np.where(rng.random(n * m) < cell.rho, core, _draw(rng, p, n * m))
            x = np.eye(k)[pos]
        else:
            x = np.eye(k)[_draw(rng, p, n)]
        xs.append(x)
        arm_rows.append(np.full(len(x), a))
        units.append(a * n + np.repeat(np.arange(n), m))
    x = np.concatenate(xs)
    unit = np.concatenate(units)
    uw = rng.uniform(0.5, 2.0, 2 * n) if cell.weights else np.ones(2 * n)
    return ArmData.from_rows(x, np.concatenate(arm_rows), unit, uw[unit], score=x @ np.arange(k, dtype=float))


def run_cell(cell: EffectCell, seed: int, *, ci: float = 0.95, alpha: float = 0.05) -> dict[str, float]:
    """Error rates of one cell over ``cell.reps`` independent replicates.

    Returns:
        Coverage of the share, mean, difference and (bounded) Fieller intervals; rejection rates of
        the share (option 0), mean and TV tests on each side; the share of bounded Fieller
        intervals; the truth of the mean effects.
    """
    if cell.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {cell.mode!r}")
    rng = np.random.default_rng(seed)
    s0, s1, h0, h1 = populations(cell)
    z = np.arange(cell.k, dtype=float)
    t_share_s, t_share_h = s1 - s0, h1 - h0
    t_mean_s, t_mean_h = float((s1 - s0) @ z), float((h1 - h0) @ z)
    acc: dict[str, list[float]] = {}

    def add(name: str, v: float | np.ndarray) -> None:
        acc.setdefault(name, []).append(float(np.mean(v)))

    for _ in range(cell.reps):
        es = arm_effects(_side(rng, (s0, s1), cell.n_silicon, cell, True), 2,
                         n_permutations=cell.n_permutations, rng=rng)
        eh = arm_effects(_side(rng, (h0, h1), cell.n_human, cell, False), 2,
                         n_permutations=cell.n_permutations, rng=rng)
        for side, e, ts, tm in (("silicon", es, t_share_s, t_mean_s), ("human", eh, t_share_h, t_mean_h)):
            lo, hi, p = normal_summary(e.share_effect[1], e.share_se[1], ci)
            add(f"{side}_share_coverage", (lo <= ts) & (ts <= hi))
            add(f"{side}_share_reject", p[0] <= alpha)
            lo, hi, p = normal_summary(e.mean_effect[1], e.mean_se[1], ci)
            add(f"{side}_mean_coverage", lo <= tm <= hi)
            add(f"{side}_mean_reject", p <= alpha)
            add(f"{side}_tv_reject", e.tv_p[1] <= alpha)
        ag = compare_effects(es.share_effect[1], es.share_se[1], eh.share_effect[1], eh.share_se[1], ci)
        td = t_share_s - t_share_h
        add("diff_share_coverage", (ag.diff_low <= td) & (td <= ag.diff_high))
        add("diff_share_reject", ag.diff_p[0] <= alpha)
        am = compare_effects(es.mean_effect[1:], es.mean_se[1:], eh.mean_effect[1:], eh.mean_se[1:], ci)
        add("diff_mean_coverage", am.diff_low[0] <= t_mean_s - t_mean_h <= am.diff_high[0])
        add("diff_mean_reject", am.diff_p[0] <= alpha)
        add("fieller_bounded", am.ratio_bounded[0])
        if am.ratio_bounded[0] and t_mean_h != 0:
            add("fieller_coverage", am.ratio_low[0] <= t_mean_s / t_mean_h <= am.ratio_high[0])
    out: dict[str, float] = {k: float(np.mean(v)) for k, v in acc.items()}
    out.update(truth_mean_silicon=t_mean_s, truth_mean_human=t_mean_h)
    return out


def run_correlation(n_experiments: int, n_silicon: int, n_human: int, reps: int, seed: int, *,
                    mode: str = "answers", ci: float = 0.95, b: int = 500) -> dict[str, float]:
    """Coverage of :func:`~simsurvey.analysis.effects.effect_correlation`'s interval.

    ``n_experiments`` experiments with human tilts spread over [−0.6, 0.6] and silicon tilts
    0.5 × the human tilt plus a fixed idiosyncratic part (so the true correlation of the mean
    effects is high but below 1); each replicate samples every experiment afresh.
    """
    rng = np.random.default_rng(seed)
    d = np.linspace(-0.6, 0.6, n_experiments)
    wobble = 0.25 * np.sin(np.arange(n_experiments) * 2.1)
    cells = [EffectCell(mode=mode, n_silicon=n_silicon, n_human=n_human, d=dj, ratio=1.0, n_permutations=0)
             for dj in d]
    z = np.arange(3, dtype=float)
    true_s, true_h = [], []
    for c, extra in zip(cells, wobble):
        s0, _, h0, h1 = populations(c)
        true_s.append(float((tilt(s0, 0.5 * c.d + extra) - s0) @ z))
        true_h.append(float((h1 - h0) @ z))
    truth = float(np.corrcoef(true_s, true_h)[0, 1])
    cover, width = [], []
    for _ in range(reps):
        es, ss, eh, sh = [], [], [], []
        for c, extra in zip(cells, wobble):
            s0, _, h0, h1 = populations(c)
            s1 = tilt(s0, 0.5 * c.d + extra)
            a = arm_effects(_side(rng, (s0, s1), c.n_silicon, c, True), 2)
            h = arm_effects(_side(rng, (h0, h1), c.n_human, c, False), 2)
            es.append(a.mean_effect[1])
            ss.append(a.mean_se[1])
            eh.append(h.mean_effect[1])
            sh.append(h.mean_se[1])
        _, lo, hi, _ = effect_correlation(np.array(es), np.array(ss), np.array(eh), np.array(sh), ci=ci, b=b, rng=rng)
        cover.append(lo <= truth <= hi)
        width.append(hi - lo)
    return {"truth": truth, "coverage": float(np.mean(cover)), "mean_width": float(np.mean(width))}


def grid_frame(rows: list[tuple[EffectCell, dict[str, float]]]) -> pd.DataFrame:
    """One row per cell: its parameters and its error rates."""
    return pd.DataFrame([{"mode": c.mode, "weights": c.weights, "n_silicon": c.n_silicon, "n_human": c.n_human,
                          "d": c.d, "ratio": c.ratio, **r} for c, r in rows])
