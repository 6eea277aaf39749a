"""Calibration by simulation of the battery and multi_select statistics (:mod:`.battery`).

A **battery cell** is a pair of known populations of k Likert items on K = 6 points: a one-factor
model y*_j = λ_j θ + √(1−λ_j²) ε_j (θ, ε standard normal), cut at fixed asymmetric thresholds,
the first item reverse-keyed (its category reversed, reflected back before scoring, as the analyzer
does). The human loadings are λ_h; the silicon loadings λ_s = λ_h + d (d = 0: the same population;
d > 0: a more internally consistent silicon sample, as LLM samples often are). The truths (alpha,
standardized alpha, the correlation matrix) are computed once from a 2,000,000-unit draw.
Modes: ``answers`` (one battery per persona), ``cluster`` (each persona answers the battery in 3
replicates with its θ fixed and fresh item noise: correlated rows, one cluster), ``weights``
(persona and respondent weights U(0.5, 2), unrelated to the answers).

A **multi_select cell**: K = 7 options selected by a Gaussian copula (z_j = 0.6 θ + 0.8 ε_j,
option j selected when z_j > Φ⁻¹(1 − q_j)), human rates q, silicon rates q + d·(±1 alternating);
the truth of each option's difference is exact. Modes as above (``cluster``: 3 rows per persona,
θ fixed).

Used by ``benchmarks/calibrate_battery.py`` (the grid, VALIDATION.md) and the tests (fixed seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import norm

from simsurvey.analysis import battery as B

#: Human loadings of the 5 simulated items (alpha about 0.7, like bfi agreeableness).
LOADINGS = (0.45, 0.55, 0.6, 0.65, 0.7)
#: Cut points of the latent response into 6 categories (skewed toward agreement, as bfi items are).
THRESHOLDS = (-1.9, -1.2, -0.6, 0.1, 1.0)
#: Human selection rates of the 7 simulated multi_select options (the range of the GSS items).
RATES = (0.43, 0.80, 0.45, 0.90, 0.47, 0.81, 0.44)
MODES = ("answers", "cluster", "weights")
_REPEATS = 3


def draw_items(rng: np.random.Generator, theta: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """(n, k) raw answer categories 0..5 of the one-factor model at traits ``theta``; the first item
    is worded in reverse (its category reversed: reflect it before scoring)."""
    eps = rng.standard_normal((len(theta), len(loadings)))
    y = theta[:, None] * loadings[None] + np.sqrt(1 - loadings[None] ** 2) * eps
    cat = np.searchsorted(np.asarray(THRESHOLDS), y).astype(float)  # 0..5
    cat[:, 0] = 5 - cat[:, 0]  # the first item is worded in reverse
    return cat


def _loadings(d: float) -> np.ndarray:
    return np.clip(np.asarray(LOADINGS) + d, 0.0, 0.95)


@lru_cache(maxsize=16)
def battery_truth(d: float) -> dict[str, np.ndarray]:
    """Population alpha, standardized alpha and correlation matrix at silicon shift ``d``."""
    rng = np.random.default_rng(12345)
    n = 2_000_000
    x = B.reflect(draw_items(rng, rng.standard_normal(n), _loadings(d)), [True, False, False, False, False], 6)
    cov = np.cov(x, rowvar=False)
    r = B.correlation(cov)
    return {"alpha": B.cronbach_alpha(cov), "alpha_std": B.standardized_alpha(r), "corr": r}


@dataclass(frozen=True)
class BatteryCell:
    """One cell of the battery grid."""

    mode: str = "answers"
    n_silicon: int = 200
    n_human: int = 2800
    d: float = 0.0
    reps: int = 200


def simulate_battery(cell: BatteryCell, rng: np.random.Generator) -> tuple[dict, dict]:
    """One replicate: the silicon and the human side as ``compare_battery`` keyword arguments."""
    if cell.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {cell.mode!r}")
    m = _REPEATS if cell.mode == "cluster" else 1
    theta = np.repeat(rng.standard_normal(cell.n_silicon), m)
    xs = draw_items(rng, theta, _loadings(cell.d))
    xh = draw_items(rng, rng.standard_normal(cell.n_human), _loadings(0.0))
    rev = [True, False, False, False, False]
    s = {"x": B.reflect(xs, rev, 6), "c": np.repeat(np.arange(cell.n_silicon), m),
         "w": np.repeat(rng.uniform(0.5, 2, cell.n_silicon), m) if cell.mode == "weights" else None}
    h = {"x": B.reflect(xh, rev, 6), "c": None,
         "w": rng.uniform(0.5, 2, cell.n_human) if cell.mode == "weights" else None}
    return s, h


def run_battery_cell(cell: BatteryCell, seed: int, *, b: int = 400, ci: float = 0.95,
                     alpha: float = 0.05) -> list[dict]:
    """Score one battery cell: per statistic, the coverage of its interval, its rejection rate
    (size at d = 0, else power), the mean estimate and the truth."""
    rng = np.random.default_rng(seed)
    t_s, t_h = battery_truth(cell.d), battery_truth(0.0)
    truth = {"alpha_silicon": t_s["alpha"], "alpha_human": t_h["alpha"],
             "alpha_diff": t_s["alpha"] - t_h["alpha"], "alpha_std_diff": t_s["alpha_std"] - t_h["alpha_std"],
             "corr_mad": float(B.corr_mad(t_s["corr"], t_h["corr"]))}
    how = {"alpha_silicon": ("percentile", None, (-np.inf, 1.0)), "alpha_human": ("percentile", None, (-np.inf, 1.0)),
           "alpha_diff": ("percentile", "two", (-np.inf, np.inf)),
           "alpha_std_diff": ("percentile", "two", (-np.inf, np.inf)), "corr_mad": ("span", "upper", (0.0, 2.0))}
    got: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in truth}
    for _ in range(cell.reps):
        s, h = simulate_battery(cell, rng)
        c = B.compare_battery(s["x"], h["x"], ws=s["w"], wh=h["w"], cs=s["c"], ch=h["c"], b=b, rng=rng)
        for name, (interval, tail, bounds) in how.items():
            r = B.summarize(getattr(c, name), ci=ci, interval=interval, tail=tail, bounds=bounds)
            got[name].append((float(r["value"]), float(r["ci_low"]), float(r["ci_high"]), float(r["p_value"])))
    return [_score(name, np.array(v), float(truth[name]), alpha) for name, v in got.items()]


def _score(name: str, v: np.ndarray, truth: float, alpha: float) -> dict:
    tol = 1e-12
    cov = float(((v[:, 1] <= truth + tol) & (truth - tol <= v[:, 2])).mean())
    p = v[:, 3]
    rej = float((p[np.isfinite(p)] <= alpha).mean()) if np.isfinite(p).any() else float("nan")
    return {"statistic": name, "n": len(v), "truth": truth, "mean": float(v[:, 0].mean()), "coverage": cov,
            "reject": rej, "width": float((v[:, 2] - v[:, 1]).mean())}


@dataclass(frozen=True)
class SelectionCell:
    """One cell of the multi_select grid."""

    mode: str = "answers"
    n_silicon: int = 200
    n_human: int = 2800
    d: float = 0.0
    reps: int = 200


def _rates_s(d: float) -> np.ndarray:
    sign = np.where(np.arange(len(RATES)) % 2 == 0, 1.0, -1.0)
    return np.clip(np.asarray(RATES) + d * sign, 0.01, 0.99)


def _select(rng: np.random.Generator, theta: np.ndarray, rates: np.ndarray) -> np.ndarray:
    z = 0.6 * theta[:, None] + 0.8 * rng.standard_normal((len(theta), len(rates)))
    return (z > norm.ppf(1 - rates)[None]).astype(float)


def run_selection_cell(cell: SelectionCell, seed: int, *, b: int = 400, ci: float = 0.95,
                       alpha: float = 0.05) -> list[dict]:
    """Score one multi_select cell: per-option differences pooled over the options (coverage of
    the interval for the exact truth, rejection rate), and the rates' own coverage."""
    if cell.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {cell.mode!r}")
    rng = np.random.default_rng(seed)
    ps, q = _rates_s(cell.d), np.asarray(RATES)
    m = _REPEATS if cell.mode == "cluster" else 1
    rows: dict[str, list[np.ndarray]] = {"rate_silicon": [], "rate_human": [], "rate_diff": []}
    for _ in range(cell.reps):
        theta = np.repeat(rng.standard_normal(cell.n_silicon), m)
        ss, sh = _select(rng, theta, ps), _select(rng, rng.standard_normal(cell.n_human), q)
        ws = np.repeat(rng.uniform(0.5, 2, cell.n_silicon), m) if cell.mode == "weights" else None
        wh = rng.uniform(0.5, 2, cell.n_human) if cell.mode == "weights" else None
        c = B.compare_selection(ss, sh, ws=ws, wh=wh, cs=np.repeat(np.arange(cell.n_silicon), m), b=b, rng=rng)
        for name, est, tail, truth in (("rate_silicon", c.silicon, None, ps), ("rate_human", c.human, None, q),
                                       ("rate_diff", c.diff, "two", ps - q)):
            r = B.summarize(est, ci=ci, tail=tail, bounds=(-1.0, 1.0))
            rows[name].append(np.stack([r["value"], r["ci_low"], r["ci_high"], r["p_value"], truth], 1))
    out = []
    for name, v in rows.items():
        a = np.concatenate(v)  # (reps·K, 5)
        tol = 1e-12
        cov = float(((a[:, 1] <= a[:, 4] + tol) & (a[:, 4] - tol <= a[:, 2])).mean())
        p = a[:, 3]
        rej = float((p[np.isfinite(p)] <= alpha).mean()) if np.isfinite(p).any() else float("nan")
        out.append({"statistic": name, "n": len(a), "truth": float(np.abs(a[:, 4]).mean()),
                    "mean": float(a[:, 0].mean()), "coverage": cov, "reject": rej,
                    "width": float((a[:, 2] - a[:, 1]).mean())})
    return out
