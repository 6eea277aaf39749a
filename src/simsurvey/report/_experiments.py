"""The report's survey-experiments section: silicon and human treatment effects side by side.

Reads ``treatment_effects.parquet`` (:mod:`simsurvey.analysis.treatment`). Per experiment: a
figure of the effect of each arm on each option's share (and the mean where there is one), the
silicon models' effects beside the human effect, with 95% CIs; a table; and one agreement line
per model (sign, ratio, difference and its test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simsurvey.analysis.treatment import sign_phrase
from simsurvey.report import _figures as F
from simsurvey.report import _html as H
from simsurvey.report._context import Ctx
from simsurvey.report._data import option_label


def effects_figure(frame: pd.DataFrame, colors: dict[str, str]) -> Figure:
    """Horizontal dot plot: one row per (question, arm, statistic/option), humans in black and each
    model in its colour, 95% CI bars, a line at 0.

    Args:
        frame: columns label, who (``human`` or a model id), value, low, high; rows in display order.
        colors: model -> colour.
    """
    labels = list(dict.fromkeys(frame["label"]))
    whos = list(dict.fromkeys(frame["who"]))
    with F.style():
        fig = Figure(figsize=(7.2, 0.42 * len(labels) + 1.1), layout="constrained")
        ax = fig.subplots()
        for j, who in enumerate(whos):
            sub = frame[frame["who"] == who]
            y = np.array([labels.index(v) for v in sub["label"]]) + (j - (len(whos) - 1) / 2) * 0.22
            v, lo, hi = (sub[c].to_numpy(float) for c in ("value", "low", "high"))
            has = np.isfinite(lo) & np.isfinite(hi)
            xerr = np.vstack([np.where(has, v - lo, 0), np.where(has, hi - v, 0)]).clip(min=0)
            color = F.HUMAN_COLOR if who == "human" else colors.get(who, "#888")
            ax.errorbar(v, y, xerr=xerr, fmt="s" if who == "human" else "o", ms=5, color=color, lw=1.2,
                        capsize=2, label="human" if who == "human" else who)
        ax.axvline(0.0, color="#555", lw=1, ls="--", zorder=0)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel("effect of the arm vs the control (share or mean difference)")
        ax.grid(axis="x", color="#eee")
        handles, hl = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, hl, loc="outside upper right", frameon=False, fontsize=8, ncols=min(4, len(hl)))
    return fig


def _label(ctx: Ctx, r: pd.Series, one_question: bool) -> str:
    what = "mean" if r["statistic"] == "mean" else option_label(ctx.data, str(r["question_id"]), str(r["option"]))
    return f"{r['arm']}: {what}" if one_question else f"{r['question_id']} · {r['arm']}: {what}"


def agreement_line(rows: pd.DataFrame) -> str:
    """One sentence on a model's agreement with the human effects of one experiment (plain text).

    Uses the mean rows where there are any, else the share rows of the first option of each arm.
    """
    use = rows[rows["statistic"] == "mean"]
    if use.empty:
        share = rows[rows["statistic"] == "share"]
        use = share.groupby(["question_id", "arm"], sort=False).head(1)
    use = use[use["human"].notna()]
    if use.empty:
        return "no human effect to compare with (the reference does not record the arm)"
    parts = []
    for _, r in use.iterrows():
        what = "mean" if r["statistic"] == "mean" else f"share of {r['option']}"
        sign = sign_phrase(r)
        ratio = H.fmt_ci(r["ratio"], r["ratio_low"], r["ratio_high"], 2) if np.isfinite(r["ratio_low"]) \
            else f"{H.fmt_num(r['ratio'], 2)} (interval unbounded: the human effect is not significant)"
        parts.append(f"{r['question_id']} {r['arm']} ({what}): silicon {H.fmt_num(r['silicon'])} vs human "
                     f"{H.fmt_num(r['human'])}, {sign}, ratio {ratio}, difference "
                     f"{H.fmt_ci(r['diff'], r['diff_low'], r['diff_high'])} (p {H.fmt_num(r['diff_p'])})")
    return "; ".join(parts)


def experiments(ctx: Ctx) -> str:
    """The section body (escaped HTML)."""
    te = getattr(ctx.data, "treatment_effects", None)
    inst = ctx.data.instrument
    if not getattr(inst, "experiments", ()):
        return ""  # no experiments: the report leaves the section out
    if te is None or te.empty:
        return H.note("treatment_effects.parquet is missing or empty: no treatment effects to show.")
    out = [H.para("Each arm of a split-ballot experiment is compared with the control arm: the difference in each "
                  "option's share (and in the mean for ordinal or numeric questions), with 95% CIs from "
                  "persona-clustered, weighted linearized standard errors; tv is the total variation between the "
                  "arms' distributions with a randomization p-value. Silicon effects are beside the human effect "
                  "from the reference data where it records the arm. The ratio's interval is Fieller's "
                  "(unbounded when the human effect is not significant).")]
    models = [m for m in ctx.models if m in set(te["model"].astype(str))]
    for exp in inst.experiments:
        sub = te[te["experiment"].astype(str) == exp.id]
        out.append(f"<h3>{H.esc(exp.id)}</h3>")
        if exp.description:
            out.append(H.para(exp.description))
        if sub.empty:
            out.append(H.note(f"No treatment effects for experiment '{exp.id}' (no silicon answers in its arms)."))
            continue
        eff = sub[sub["statistic"].isin(["share", "mean"])]
        pts = []
        one = eff["question_id"].nunique() == 1
        first = eff[eff["model"].astype(str) == models[0]] if models else eff.iloc[0:0]
        for _, r in first.iterrows():
            if np.isfinite(r["human"]):
                pts.append({"label": _label(ctx, r, one), "who": "human", "value": r["human"], "low": r["human_low"],
                            "high": r["human_high"]})
        for m in models:
            for _, r in eff[eff["model"].astype(str) == m].iterrows():
                pts.append({"label": _label(ctx, r, one), "who": m, "value": r["silicon"], "low": r["silicon_low"],
                            "high": r["silicon_high"]})
        if pts:
            fig = effects_figure(pd.DataFrame(pts), ctx.colors)
            out.append(H.figure(ctx.fig(fig, f"treatment_effects_{exp.id}", f"treatment effects of {exp.id}"),
                                f"{exp.id}: effect of each arm against the control arm ({exp.control_arm}) on each "
                                "option's share, human (black squares) and silicon (dots), with 95% CIs. A silicon "
                                "sample that reproduces the experiment puts its dots on the human squares; dots "
                                "at 0 beside a human effect mean the model does not react to the manipulation."))
        for m in models:
            rows = sub[sub["model"].astype(str) == m]
            out.append(f"<p><b>{H.esc(m)}</b>: {H.esc(agreement_line(rows))}</p>")
        table = []
        for _, r in sub.iterrows():
            what = r["statistic"] if r["statistic"] != "share" else f"share {r['option']}"
            table.append([H.esc(r["model"]), H.esc(r["question_id"]), H.esc(r["arm"]), H.esc(what),
                          H.fmt_ci(r["silicon"], r["silicon_low"], r["silicon_high"]), H.fmt_num(r["silicon_p"]),
                          H.fmt_ci(r["human"], r["human_low"], r["human_high"]), H.fmt_num(r["human_p"]),
                          H.fmt_ci(r["diff"], r["diff_low"], r["diff_high"]),
                          f"{H.fmt_num(r['n_silicon_arm'])} / {H.fmt_num(r['n_silicon_control'])}",
                          f"{H.fmt_num(r['n_human_arm'])} / {H.fmt_num(r['n_human_control'])}",
                          H.esc(r["flag"] if isinstance(r["flag"], str) else "")])
        out.append(H.table(["model", "question", "arm", "statistic", "silicon [95% CI]", "p", "human [95% CI]",
                            "p", "silicon − human", "personas arm / control", "humans arm / control", "note"],
                           table, numeric=[False] * 4 + [True] * 7 + [False], raw=True))
    corr = te[te["statistic"] == "effect_corr"]
    for _, r in corr.iterrows():
        flag = f" ({r['flag']})" if isinstance(r["flag"], str) else ""
        out.append(H.para(f"{r['model']}: correlation of silicon with human effects across "
                          f"{int(r['n_silicon_arm'])} effects: {H.fmt_ci(r['silicon'], r['silicon_low'], r['silicon_high'])}"
                          f"{flag}."))
    return "".join(out)
