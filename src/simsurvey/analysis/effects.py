"""Treatment effects between the randomized arms of a survey experiment (pure functions).

A split-ballot experiment assigns each respondent (a persona, or a human respondent) to one arm;
its effect is how the answer distribution moves from the control arm to another arm. For one side
(silicon or human) and one question:

- ``share`` effects, per substantive option k: Δ_k = p̂_k(arm) − p̂_k(control);
- the ``mean`` effect (ordinal and numeric questions): Δ = ȳ(arm) − ȳ(control), on the answer's
  score (0-based scale position for ordinal answers — the expected position for a probability
  vector — or the raw value of a numeric answer);
- the ``tv`` distribution statistic: total variation ½ Σ_k |p̂_k(arm) − p̂_k(control)|, tested by
  randomization (re-dealing the arm labels among the units of the two arms, as the design dealt
  them), with its randomization mean (what TV is at these sizes when the arms do not differ).

**Estimator and standard error.** Within an arm, a share or mean is the ratio
R = Σ_i w_i y_i / Σ_i w_i m_i over the arm's units i (y_i the unit's summed answer vectors or
scores over its m_i rows: a persona answering in several conditions is one cluster, not several
respondents; probability vectors enter as vectors). Its linearized (Taylor) variance over
with-replacement clusters is V = n/(n−1) · Σ_i w_i² (y_i − m_i R)² / (Σ_i w_i m_i)² (Wolter 2007,
ch. 6; the n/(n−1) factor is the one survey software applies to n primary units). Arms are
independent samples, so SE(Δ) = √(V_arm + V_control). With one row per unit and equal weights
this is exactly Welch's unequal-variance standard error (for a share: of the 0/1 indicator); the
two-proportion Wald z differs from it by the factor √(n/(n−1)). Intervals are Δ ± z_{1−α/2}·SE and
p-values 2Φ(−|Δ/SE|) (normal reference: arms have hundreds of units; coverage and size are in
VALIDATION.md).

**Silicon vs human** (:func:`compare_effects`): the difference Δ_s − Δ_h with
SE √(SE_s² + SE_h²) (independent samples); sign agreement (both point estimates on the same side
of 0); the ratio Δ_s/Δ_h with Fieller's interval (Fieller 1954: the set of ρ with
|Δ_s − ρΔ_h| ≤ z·√(SE_s² + ρ²SE_h²); bounded only when the human effect is itself significant at
the CI level, else flagged ``unbounded``). Across several effects (:func:`effect_correlation`)
the Pearson correlation of silicon with human effects, with a bias-corrected percentile interval
(:func:`simsurvey.analysis.inference.shifted_percentile_ci`: noise in the effects attenuates r, so
the plain percentile interval sits below it) over parametric replicates of both effect vectors
(each effect drawn from N(Δ̂, SE²)), flagged ``low_information``
under 5 effects as :mod:`simsurvey.analysis.compare` does for ``subgroup_mean_corr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from simsurvey.analysis.inference import shifted_percentile_ci
from simsurvey.analysis.metrics import pearson_r, total_variation

#: Fewer effects than this make a correlation a low-information reading (as subgroup_mean_corr).
MIN_CORR_EFFECTS = 5


@dataclass(frozen=True)
class ArmData:
    """One side's answers to one question, aggregated per unit (persona / respondent).

    Attributes:
        y: (U, K) each unit's answer vectors (one-hot or probability) summed over its rows.
        s: (U,) each unit's answer scores summed over its rows (NaN where there is no score).
        m: (U,) rows per unit.
        w: (U,) unit weight.
        arm: (U,) arm code of the unit (0 .. n_arms − 1; −1 = in no arm).
    """

    y: np.ndarray
    s: np.ndarray
    m: np.ndarray
    w: np.ndarray
    arm: np.ndarray

    @staticmethod
    def from_rows(x: np.ndarray, arm: np.ndarray, unit: np.ndarray, w: np.ndarray,
                  score: np.ndarray | None = None) -> ArmData:
        """Aggregate rows to units.

        Args:
            x: (n, K) normalized answer vectors of the rows that enter the distribution.
            arm: (n,) arm code of each row.
            unit: (n,) unit id (any integers); a unit is (unit, arm), so a unit seen in two arms
                counts as one cluster per arm.
            w: (n,) row weight (a unit's weight: its first row's).
            score: (n,) answer score per row, or None (no mean effect).
        """
        x = np.asarray(x, float)
        arm, unit = np.asarray(arm, np.int64), np.asarray(unit, np.int64)
        _, first, ul = np.unique(np.stack([arm, unit], 1), axis=0, return_index=True, return_inverse=True)
        ul = ul.reshape(-1)
        n_u = len(first)
        y = np.stack([np.bincount(ul, weights=x[:, j], minlength=n_u) for j in range(x.shape[1])], 1) \
            if x.shape[1] else np.zeros((n_u, 0))
        sc = np.full(n_u, np.nan) if score is None else np.bincount(ul, weights=np.asarray(score, float), minlength=n_u)
        return ArmData(y=y, s=sc, m=np.bincount(ul, minlength=n_u).astype(float),
                       w=np.asarray(w, float)[first], arm=arm[first])


def ratio_estimates(v: np.ndarray, m: np.ndarray, w: np.ndarray, arm: np.ndarray,
                    n_arms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-arm ratio estimates R = Σ w v / Σ w m and their linearized variances.

    Args:
        v: (U, J) unit totals (J statistics at once: K option shares, or 1 score).
        m: (U,) rows per unit. w: (U,) weights. arm: (U,) arm codes (−1 ignored).
        n_arms: number of arms A.

    Returns:
        (R, V, n_units): shapes (A, J), (A, J), (A,). V is NaN for an arm with < 2 units.
    """
    v = np.asarray(v, float).reshape(len(m), -1)
    ok = arm >= 0
    a, vv, mm, ww = arm[ok], v[ok], m[ok], w[ok]
    bc = lambda z: np.bincount(a, weights=z, minlength=n_arms)
    n = np.bincount(a, minlength=n_arms).astype(float)
    den = bc(ww * mm)
    num = np.stack([bc(ww * vv[:, j]) for j in range(vv.shape[1])], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den[:, None]
        resid = vv - mm[:, None] * r[a]
        ss = np.stack([bc(ww**2 * resid[:, j] ** 2) for j in range(vv.shape[1])], 1)
        var = np.where((n >= 2)[:, None], n[:, None] / (n[:, None] - 1) * ss / den[:, None] ** 2, np.nan)
    return r, var, n


def _z(ci: float) -> float:
    return float(stats.norm.ppf(0.5 + ci / 2))


def normal_summary(est: np.ndarray, se: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ci_low, ci_high, two-sided p) of estimates with standard errors, normal reference.

    A zero standard error with a non-zero estimate gives p = 0; with a zero estimate p = 1.
    """
    est, se = np.asarray(est, float), np.asarray(se, float)
    z = _z(ci)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = np.where(se > 0, est / np.where(se > 0, se, 1.0), np.where(est == 0, 0.0, np.inf))
    p = np.where(np.isfinite(est) & np.isfinite(se), 2 * stats.norm.sf(np.abs(stat)), np.nan)
    return est - z * se, est + z * se, p


@dataclass(frozen=True)
class Effects:
    """One side's effects of every arm against the control arm.

    Shapes: A arms (the control's own row is 0 ± 0), K options.

    Attributes:
        shares: (A, K) option shares per arm. share_effect / share_se: (A, K).
        mean: (A,) mean score per arm (NaN without scores). mean_effect / mean_se: (A,).
        tv: (A,) total variation between the arm and the control distributions.
        tv_p: (A,) randomization p-value of TV (NaN when not computed).
        tv_null_mean: (A,) mean TV over the re-dealt arm labels.
        n_units: (A,) units per arm. n_rows: (A,) rows per arm.
    """

    shares: np.ndarray
    share_effect: np.ndarray
    share_se: np.ndarray
    mean: np.ndarray
    mean_effect: np.ndarray
    mean_se: np.ndarray
    tv: np.ndarray
    tv_p: np.ndarray
    tv_null_mean: np.ndarray
    n_units: np.ndarray
    n_rows: np.ndarray


def _arm_shares(y: np.ndarray, m: np.ndarray, w: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(B, K) share vectors of the units with label True in each of B label rows (B, U)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (labels * w) @ y / ((labels * w) @ m)[:, None]


def randomization_tv(y: np.ndarray, m: np.ndarray, w: np.ndarray, treated: np.ndarray,
                     n_permutations: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """TV between two arms' share vectors and its randomization test.

    The arm labels of the units are re-dealt ``n_permutations`` times (a uniformly random
    permutation, keeping each arm's number of units, as a balanced design deals them); each unit
    keeps all its rows and its weight, so clustering and weights are respected.

    Args:
        y: (U, K) unit answer totals. m: (U,) rows per unit. w: (U,) weights.
        treated: (U,) bool, True for the arm's units, False for the control's.
        n_permutations: re-deals (0: no test).
        rng: random generator.

    Returns:
        (tv, p_value, null_mean); p = (1 + #{TV* ≥ TV}) / (1 + B), NaN without permutations.
    """
    lab = np.asarray(treated, bool)
    obs = _arm_shares(y, m, w, np.stack([lab, ~lab]).astype(float))
    tv = float(total_variation(obs[0], obs[1]))
    if n_permutations <= 0 or not np.isfinite(tv):
        return tv, float("nan"), float("nan")
    u, n_t = len(lab), int(lab.sum())
    out = np.empty(n_permutations)
    block = max(1, int(2e6 // max(u, 1)))
    for b0 in range(0, n_permutations, block):
        c = min(block, n_permutations - b0)
        perm = np.argsort(rng.random((c, u)), axis=1) < n_t  # a random n_t-subset per replicate
        out[b0:b0 + c] = total_variation(_arm_shares(y, m, w, perm.astype(float)),
                                         _arm_shares(y, m, w, (~perm).astype(float)))
    fin = np.isfinite(out)
    p = (1 + int((out[fin] >= tv - 1e-12).sum())) / (1 + int(fin.sum()))
    return tv, float(p), float(out[fin].mean()) if fin.any() else float("nan")


def arm_effects(data: ArmData, n_arms: int, control: int = 0, *, n_permutations: int = 0,
                rng: np.random.Generator | None = None) -> Effects:
    """Every arm's share, mean and TV effects against the control arm on one side.

    Args:
        data: the side's units (:meth:`ArmData.from_rows`).
        n_arms: number of arms A (arm codes 0 .. A−1).
        control: arm code of the control.
        n_permutations: re-deals for the TV randomization test (0: no p-value).
        rng: required when ``n_permutations`` > 0.
    """
    sh, sh_v, n = ratio_estimates(data.y, data.m, data.w, data.arm, n_arms)
    has_score = bool(np.isfinite(data.s).all()) and len(data.s) > 0
    if has_score:
        mu, mu_v, _ = ratio_estimates(data.s[:, None], data.m, data.w, data.arm, n_arms)
        mu, mu_v = mu[:, 0], mu_v[:, 0]
    else:
        mu = mu_v = np.full(n_arms, np.nan)
    share_eff, mean_eff = sh - sh[control], mu - mu[control]
    share_se, mean_se = np.sqrt(sh_v + sh_v[control]), np.sqrt(mu_v + mu_v[control])
    share_se[control], mean_se[control] = 0.0, 0.0 if has_score else np.nan
    tv, tv_p, tv_null = np.zeros(n_arms), np.full(n_arms, np.nan), np.full(n_arms, np.nan)
    for a in range(n_arms):
        if a == control:
            continue
        sel = (data.arm == a) | (data.arm == control)
        if n_permutations > 0 and rng is None:
            raise ValueError("arm_effects: n_permutations > 0 needs an rng")
        tv[a], tv_p[a], tv_null[a] = randomization_tv(
            data.y[sel], data.m[sel], data.w[sel], data.arm[sel] == a, n_permutations,
            rng if rng is not None else np.random.default_rng(0))
    rows = np.bincount(data.arm[data.arm >= 0], weights=data.m[data.arm >= 0], minlength=n_arms)
    return Effects(shares=sh, share_effect=share_eff, share_se=share_se, mean=mu, mean_effect=mean_eff,
                   mean_se=mean_se, tv=tv, tv_p=tv_p, tv_null_mean=tv_null, n_units=n, n_rows=rows)


def fieller_ci(a: np.ndarray, se_a: np.ndarray, b: np.ndarray, se_b: np.ndarray,
               ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fieller's interval for the ratio a/b of independent normal estimates.

    The set {ρ : (a − ρb)² ≤ z²(se_a² + ρ² se_b²)}; with c = b² − z² se_b² > 0 (b significantly
    non-zero) it is the bounded interval between the roots of c ρ² − 2ab ρ + (a² − z² se_a²) = 0;
    otherwise it is unbounded (returned as (−inf, inf), with ``bounded`` False).

    Returns:
        (low, high, bounded).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = np.asarray(se_a, float) ** 2, np.asarray(se_b, float) ** 2
    z2 = _z(ci) ** 2
    c = b**2 - z2 * vb
    disc = (a * b) ** 2 - c * (a**2 - z2 * va)
    bounded = (c > 0) & (disc >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(np.maximum(disc, 0.0))
        lo, hi = (a * b - root) / c, (a * b + root) / c
    finite = np.isfinite(a) & np.isfinite(b) & np.isfinite(va) & np.isfinite(vb)
    lo = np.where(bounded, lo, np.where(finite, -np.inf, np.nan))
    hi = np.where(bounded, hi, np.where(finite, np.inf, np.nan))
    return lo, hi, bounded & finite


@dataclass(frozen=True)
class Agreement:
    """Silicon vs human effects, elementwise.

    Attributes:
        diff, diff_low, diff_high, diff_p: Δ_s − Δ_h, its CI and the p-value of Δ_s = Δ_h.
        sign_agree: 1.0 when both effects are non-zero with the same sign, 0.0 opposite signs,
            NaN when either is 0 or missing.
        ratio, ratio_low, ratio_high: Δ_s / Δ_h and Fieller's interval (±inf when unbounded).
        ratio_bounded: bool, the Fieller interval is bounded (the human effect is significant).
    """

    diff: np.ndarray
    diff_low: np.ndarray
    diff_high: np.ndarray
    diff_p: np.ndarray
    sign_agree: np.ndarray
    ratio: np.ndarray
    ratio_low: np.ndarray
    ratio_high: np.ndarray
    ratio_bounded: np.ndarray


def compare_effects(s: np.ndarray, se_s: np.ndarray, h: np.ndarray, se_h: np.ndarray, ci: float) -> Agreement:
    """Difference, sign agreement and ratio of silicon effects ``s`` and human effects ``h``."""
    s, h = np.asarray(s, float), np.asarray(h, float)
    d = s - h
    se = np.sqrt(np.asarray(se_s, float) ** 2 + np.asarray(se_h, float) ** 2)
    lo, hi, p = normal_summary(d, se, ci)
    with np.errstate(invalid="ignore", divide="ignore"):
        prod = np.sign(s) * np.sign(h)
        ratio = np.where(h != 0, s / np.where(h != 0, h, 1.0), np.nan)
    sign = np.where(np.isfinite(prod) & (prod != 0), (prod > 0).astype(float), np.nan)
    r_lo, r_hi, bounded = fieller_ci(s, se_s, h, se_h, ci)
    return Agreement(diff=d, diff_low=lo, diff_high=hi, diff_p=p, sign_agree=sign, ratio=ratio,
                     ratio_low=r_lo, ratio_high=r_hi, ratio_bounded=bounded)


def effect_correlation(s: np.ndarray, se_s: np.ndarray, h: np.ndarray, se_h: np.ndarray, *,
                       ci: float, b: int, rng: np.random.Generator) -> tuple[float, float, float, str | None]:
    """Pearson correlation of silicon with human effects across experiments, with a CI.

    The interval is the bias-corrected percentile interval of r over ``b`` parametric replicates in which every
    effect is redrawn from N(Δ̂, SE²) on both sides (the sampling uncertainty of the effects; the
    effects themselves are the population of interest, not a sample of experiments).

    Returns:
        (r, ci_low, ci_high, flag): flag ``low_information: n effects`` under
        :data:`MIN_CORR_EFFECTS` effects, else None; r is NaN under 3 effects.
    """
    s, h = np.asarray(s, float), np.asarray(h, float)
    ok = np.isfinite(s) & np.isfinite(h) & np.isfinite(se_s) & np.isfinite(se_h)
    s, h, ss, sh = s[ok], h[ok], np.asarray(se_s, float)[ok], np.asarray(se_h, float)[ok]
    n = len(s)
    flag = f"low_information: {n} effects" if n < MIN_CORR_EFFECTS else None
    r = float(pearson_r(s, h))
    if n < 3 or b <= 0:
        return r, float("nan"), float("nan"), flag
    rs = s + rng.standard_normal((b, n)) * ss
    rh = h + rng.standard_normal((b, n)) * sh
    lo, hi = shifted_percentile_ci(np.array([r]), pearson_r(rs, rh)[:, None], ci, (-1.0, 1.0))
    return r, float(lo[0]), float(hi[0]), flag
