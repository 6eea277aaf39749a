"""Report section: batteries (internal consistency, inter-item correlation heat maps) and
multi_select questions (per-option selection rates, silicon vs human, with 95% CIs).

Reads only ``metrics.parquet`` rows written by :mod:`simsurvey.analysis.battery_rows` and the
instrument (which questions form a battery, option labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simsurvey.analysis.inference import verdict
from simsurvey.report import _figures as F
from simsurvey.report import _html as H
from simsurvey.report._context import Ctx
from simsurvey.report._data import is_baseline, option_label

_ALPHA_ROWS = (
    ("cronbach_alpha", "Cronbach's alpha"),
    ("standardized_alpha", "standardized alpha"),
)


def corr_heatmaps(panels: Mapping[str, np.ndarray], items: Sequence[str]) -> Figure:
    """Inter-item correlation matrices side by side on one diverging scale (−1 to 1)."""
    names = list(panels)
    k = len(items)
    with F.style():
        fig = Figure(figsize=(max(2.6, 0.55 * k + 1.2) * len(names) + 1.0, 0.5 * k + 1.4), layout="constrained")
        axes = fig.subplots(1, len(names), squeeze=False, sharey=True)[0]
        im = None
        for ax, name in zip(axes, names):
            r = panels[name]
            im = ax.imshow(r, cmap="RdBu_r", vmin=-1, vmax=1, aspect="equal")
            ax.set_xticks(range(k), list(items), rotation=30, ha="right")
            ax.set_yticks(range(k), list(items))
            ax.set_title(name, loc="left")
            ax.spines[:].set_visible(False)
            for (i, j), v in np.ndenumerate(r):
                if i != j and np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(v) > 0.6 else "#111")
        if im is not None:
            fig.colorbar(im, ax=list(axes), shrink=0.8, label="Pearson r")
    return fig


def selection_plot(frame: pd.DataFrame, colors: Mapping[str, str], labels: Mapping[str, str]) -> Figure:
    """Selection rate per option (rows) and sample (human, each model), with 95% CI bars.

    Args:
        frame: columns option, sample, value, ci_low, ci_high (sample ``human`` or a model id).
        colors: sample -> colour.
        labels: option code -> label.
    """
    options = list(dict.fromkeys(frame["option"]))
    samples = list(dict.fromkeys(frame["sample"]))
    with F.style():
        fig = Figure(figsize=(7.0, 0.42 * len(options) * max(1, len(samples)) ** 0.5 + 1.2), layout="constrained")
        ax = fig.subplots()
        for j, s in enumerate(samples):
            rows = frame[frame["sample"] == s]
            y = np.array([options.index(o) for o in rows["option"]]) + (j - (len(samples) - 1) / 2) * 0.8 / len(samples)
            v = rows["value"].to_numpy(float)
            lo, hi = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
            xerr = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]).clip(min=0)
            ax.errorbar(v, y, xerr=xerr, fmt="o", ms=4, lw=1, capsize=2, label=s,
                        color=F.HUMAN_COLOR if s == "human" else colors.get(s, "#888"))
        ax.set_yticks(range(len(options)), [F._wrap(labels.get(o, o), 34) for o in options], fontsize=7)
        ax.set_ylim(len(options) - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share selecting the option")
        ax.grid(axis="x", color="#eee")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", frameon=False, fontsize=8)
    return fig


def _row(m: pd.DataFrame, model: str, qid: str, metric: str) -> pd.Series | None:
    r = m[(m["model"].astype(str) == model) & (m["question_id"].astype(str) == qid) & (m["metric"] == metric)]
    return None if r.empty else r.iloc[0]


def _pair_matrix(m: pd.DataFrame, model: str, items: Sequence[str], metric: str) -> np.ndarray | None:
    k = len(items)
    r = np.eye(k)
    found = False
    for i in range(k):
        for j in range(i + 1, k):
            row = _row(m, model, f"{items[i]}|{items[j]}", metric)
            if row is not None:
                r[i, j] = r[j, i] = float(row["value"])
                found = True
            else:
                r[i, j] = r[j, i] = np.nan
    return r if found else None


def _battery(ctx: Ctx, m: pd.DataFrame, bid: str, items: Sequence[str]) -> str:
    models = [x for x in ctx.models if _row(m, x, bid, "cronbach_alpha_silicon") is not None]
    if not models:
        return H.note(f"Battery '{bid}': no internal-consistency rows in metrics.parquet (no complete batteries on "
                      "both sides, or items that are not ordinal).")
    rows = []
    first = _row(m, models[0], bid, "cronbach_alpha_human")
    for stat, title in _ALPHA_ROWS:
        h = _row(m, models[0], bid, f"{stat}_human")
        rows.append([f"<b>{H.esc(title)}</b>", H.esc("human"), H.esc(H.fmt_ci(h["value"], h["ci_low"], h["ci_high"])),
                     "", H.esc(H.fmt_num(first["n_human"], 0))])
        for x in models:
            s, d = _row(m, x, bid, f"{stat}_silicon"), _row(m, x, bid, f"{stat}_diff")
            rows.append(["", H.esc(x), H.esc(H.fmt_ci(s["value"], s["ci_low"], s["ci_high"])),
                         H.esc(H.fmt_ci(d["value"], d["ci_low"], d["ci_high"])) + f"<br><small>{H.esc(verdict(d['p_value']))}</small>",
                         H.esc(H.fmt_num(s["n_silicon"], 0))])
    for x in models:
        mad = _row(m, x, bid, "inter_item_corr_mad")
        rows.append(["<b>inter-item r, mean |silicon − human|</b>" if x == models[0] else "", H.esc(x),
                     H.esc(H.fmt_ci(mad["value"], mad["ci_low"], mad["ci_high"])),
                     H.esc(f"null {H.fmt_num(mad['null_mean'])} (95%: {H.fmt_num(mad['null_q95'])})")
                     + f"<br><small>{H.esc(verdict(mad['p_value'], mad['excess']))}</small>",
                     H.esc(H.fmt_num(mad["n_silicon"], 0))])
    out = [f"<h3>Battery {H.esc(bid)} ({H.esc(', '.join(items))})</h3>",
           H.para("Internal consistency: do a persona's answers to the items hang together as a person's do? "
                  "Alpha near 1 = the items move together; a silicon alpha well above the human one is the "
                  "over-consistency of a sample that answers from a stereotype. Reverse-keyed items are reflected. "
                  "Units: complete batteries (a persona in one replicate; humans with every item answered)."),
           H.table(["statistic", "sample", "value [95% CI]", "silicon − human [95% CI]", "n"], rows,
                   numeric=[False, False, True, True, True], raw=True)]
    panels: dict[str, np.ndarray] = {}
    human = _pair_matrix(m, models[0], items, "inter_item_corr_human")
    if human is not None:
        panels["human"] = human
    for x in [x for x in models if not is_baseline(x)][:2] or models[:1]:
        sil = _pair_matrix(m, x, items, "inter_item_corr_silicon")
        if sil is not None:
            panels[x] = sil
    if len(panels) >= 2:
        fig = corr_heatmaps(panels, items)
        out.append(H.figure(ctx.fig(fig, f"battery_corr_{bid}", f"inter-item correlations of {bid}"),
                            "Correlations between the battery's items (reverse-keyed items reflected), humans first. "
                            "The silicon maps should show the same pattern and strength; a uniformly dark silicon map "
                            "means the model answers every item alike, a pale one that its answers do not cohere."))
    return "".join(out)


def _multi(ctx: Ctx, m: pd.DataFrame, qid: str) -> str:
    rates = m[(m["question_id"].astype(str) == qid) & (m["group_var"].astype(str) == "option")]
    if rates.empty:
        return H.note(f"multi_select question '{qid}': no selection-rate rows in metrics.parquet (no human answers).")
    models = [x for x in ctx.models if x in set(rates["model"].astype(str))]
    frame = []
    hum = rates[(rates["metric"] == "selection_rate_human") & (rates["model"].astype(str) == models[0])]
    for _, r in hum.iterrows():
        frame.append({"option": r["group_value"], "sample": "human", **{c: r[c] for c in ("value", "ci_low", "ci_high")}})
    for x in models:
        sub = rates[(rates["metric"] == "selection_rate_silicon") & (rates["model"].astype(str) == x)]
        for _, r in sub.iterrows():
            frame.append({"option": r["group_value"], "sample": x, **{c: r[c] for c in ("value", "ci_low", "ci_high")}})
    frame_df = pd.DataFrame(frame)
    labels = {o: option_label(ctx.data, qid, o) for o in frame_df["option"]}
    out = [f"<h3>Select-all question {H.esc(qid)}</h3>"]
    fig = selection_plot(frame_df, ctx.colors, labels)
    out.append(H.figure(ctx.fig(fig, f"multi_select_{qid}", f"selection rates of {qid}"),
                        "Share of answers selecting each option (95% CIs), humans in black. Dots of a model to the "
                        "right of the human dot: the model selects that option more often than people do."))
    diff = rates[rates["metric"] == "selection_rate_diff"]
    rows = []
    for o in dict.fromkeys(diff["group_value"]):
        cells = [H.esc(labels.get(o, o))]
        for x in models:
            d = diff[(diff["group_value"] == o) & (diff["model"].astype(str) == x)]
            cells.append("–" if d.empty else H.esc(H.fmt_ci(d.iloc[0]["value"], d.iloc[0]["ci_low"], d.iloc[0]["ci_high"]))
                         + f"<br><small>{H.esc(verdict(d.iloc[0]['p_value']))}</small>")
        rows.append(cells)
    out.append(H.para("Silicon minus human selection rate per option (95% CI; the test is a bootstrap test of "
                      "equal rates, personas resampled as clusters)."))
    out.append(H.table(["option", *models], rows, numeric=[False] + [True] * len(models), raw=True))
    return "".join(out)


def batteries(ctx: Ctx) -> str:
    """Batteries (alpha silicon vs human, inter-item correlation heat maps) and multi_select rates."""
    inst = ctx.data.instrument
    m = ctx.data.metrics
    if inst is None:
        return H.note("No instrument in the run: batteries and multi-select questions cannot be identified.")
    multi = [q.id for q in inst.questions if q.kind == "multi_select"]
    if not inst.batteries and not multi:
        return ""  # the section is left out of the report
    if m is None or "metric" not in m.columns:
        return H.note("No metrics.parquet: run the analyze stage.")
    parts = [_battery(ctx, m, bid, items) for bid, items in inst.batteries.items()]
    parts += [_multi(ctx, m, qid) for qid in multi]
    return "".join(parts)
