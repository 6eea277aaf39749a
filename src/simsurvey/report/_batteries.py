"""Report section: batteries (internal consistency, inter-item correlation heat maps, scale scores)
and multi_select questions (per-option selection rates, silicon vs human, with 95% CIs).

Reads the ``metrics.parquet`` rows written by :mod:`simsurvey.analysis.battery_rows` and the
instrument (which questions form a battery, option labels); the scale-score ECDFs are drawn from
responses.parquet and reference.parquet, scored by :func:`simsurvey.analysis.scale.frame_scores`
with the run's ``analysis.scale_min_share`` (the analyzer's rule and units).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simsurvey.analysis.inference import verdict
from simsurvey.analysis.scale import SCALE_METRICS, frame_scores, required_items
from simsurvey.report import _figures as F
from simsurvey.report import _html as H
from simsurvey.report._context import Ctx, get_path
from simsurvey.report._data import is_baseline, option_label
from simsurvey.report._numeric import _metric_rows, ecdf_figure

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
                  "Units: complete batteries (a persona in one replicate and condition; humans with every item answered)."),
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


def _weights_by(frame: pd.DataFrame | None, key: list[str]) -> pd.DataFrame | None:
    if frame is None or not set(key) <= set(frame.columns):
        return None
    w = frame[key].copy()
    w["weight"] = frame["weight"].astype(float) if "weight" in frame.columns else 1.0
    return w.drop_duplicates(key)


def scale_score_series(ctx: Ctx, bid: str, items: Sequence[str],
                       min_share: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(scores, weights) of the human respondents and of each model's units, as the analyzer
    scores them: silicon units persona × replicate × condition (valid, not refused answers;
    the no_persona control left out), human units the respondents of one reference source."""
    inst = ctx.data.instrument
    qs = [inst.question(i) for i in items]
    codes, rev = list(qs[0].substantive_codes), [q.reverse_keyed for q in qs]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    h = ctx.data.reference
    if h is not None and {"question_id", "answer_code", "respondent_id"} <= set(h.columns):
        h = h[h["question_id"].astype(str).isin(list(items))]
        if "source" in h.columns and len(h):
            src = get_path(ctx.data.manifest, "config", "analysis", "reference_source")
            h = h[h["source"].astype(str) == (src if src in set(h["source"].astype(str)) else str(h["source"].iloc[0]))]
        sc = frame_scores(h, items, codes, rev, ["respondent_id"], min_share)
        w = _weights_by(h, ["respondent_id"])
        sc = sc.merge(w, on="respondent_id", how="left")
        ok = sc["weight"].fillna(0).to_numpy(float) > 0
        out["human"] = (sc["score"].to_numpy(float)[ok], sc["weight"].to_numpy(float)[ok])
    r = ctx.data.responses
    if r is not None and {"question_id", "answer_code", "persona_id"} <= set(r.columns):
        r = r[r["persona_id"].notna() & r["question_id"].astype(str).isin(list(items))].copy()
        if "valid" in r.columns:
            r = r[r["valid"].astype("boolean").fillna(False).to_numpy(bool)]
        if "refusal" in r.columns:
            r = r[~r["refusal"].astype("boolean").fillna(False).to_numpy(bool)]
        unit = [c for c in ("model", "persona_id", "replicate", "condition_id") if c in r.columns]
        r["persona_id"] = r["persona_id"].astype("int64")
        sc = frame_scores(r, items, codes, rev, unit, min_share)
        p = _weights_by(ctx.data.personas, ["persona_id"])
        if p is not None:
            p["persona_id"] = p["persona_id"].astype("int64")
            sc = sc.merge(p, on="persona_id", how="left")
        sc["weight"] = sc["weight"].astype(float).fillna(1.0) if "weight" in sc.columns else 1.0
        for model in ctx.models:
            g = sc[sc["model"].astype(str) == model] if "model" in sc.columns else sc
            if len(g):
                out[model] = (g["score"].to_numpy(float), g["weight"].to_numpy(float))
    return out


def _scale(ctx: Ctx, m: pd.DataFrame, bid: str, items: Sequence[str]) -> str:
    """The scale-score comparison of one battery: the rule, the score ECDFs and the scale_* table."""
    qs = [ctx.data.instrument.question(i) for i in items]
    if qs[0].kind != "ordinal":
        return ""
    rows_m = m[(m["question_id"].astype(str) == bid) & m["metric"].isin(SCALE_METRICS)]
    models = [x for x in ctx.models if x in set(rows_m["model"].astype(str))]
    if not models:
        return H.note(f"Battery '{bid}': no scale-score rows in metrics.parquet (fewer than 2 scored units on a side).")
    share = get_path(ctx.data.manifest, "config", "analysis", "scale_min_share")
    share = float(share) if isinstance(share, (int, float)) and 0 < share <= 1 else 1.0
    k_levels, k = len(qs[0].substantive_codes), len(items)
    need = required_items(k, share)
    rev = [i for i, q in zip(items, qs) if q.reverse_keyed]
    rule = (f"Scale score: the mean of a respondent's answered items on the positions 1–{k_levels} of the scale"
            + (f", the reverse-keyed items ({', '.join(rev)}) reflected ({k_levels + 1} − x)" if rev else "")
            + f"; a respondent with fewer than {need} of the {k} items answered (valid, substantive: a don't know "
            f"counts as unanswered) has no score (analysis.scale_min_share = {share:g}). Silicon units: a persona's "
            "battery in one replicate and condition (a persona is one cluster of the bootstrap); human units: "
            "respondents, weighted. The comparison is a numeric question's (means, SDs, their variance ratio, "
            "W1 over the score range, KS), each read against its sampling null.")
    out = [f"<h4>Scale scores of {H.esc(bid)}</h4>", H.para(rule)]
    series = scale_score_series(ctx, bid, items, share)
    if any(len(v) for v, _ in series.values()):
        fig = ecdf_figure(series, {"human": F.HUMAN_COLOR, **ctx.colors}, 1.0, float(k_levels),
                          f"{bid}: scale scores", "scale score")
        out.append(H.figure(ctx.fig(fig, f"battery_scale_{bid}", f"scale-score CDFs of {bid}"),
                            "Weighted share of respondents with a scale score at or below each value, humans in black. "
                            "A curve to the right scores higher; a steeper one is less spread out (homogenized). "
                            "The largest vertical gap is scale_ks; the area between the curves over the range is "
                            "scale_wasserstein_norm."))
    table = _metric_rows(ctx, bid, models, SCALE_METRICS)
    out.append(H.table(["metric (scale score)", *models], table, numeric=[False] + [True] * len(models), raw=True))
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
    """Batteries (alpha silicon vs human, inter-item correlation heat maps, scale scores) and multi_select rates."""
    inst = ctx.data.instrument
    m = ctx.data.metrics
    if inst is None:
        return H.note("No instrument in the run: batteries and multi-select questions cannot be identified.")
    multi = [q.id for q in inst.questions if q.kind == "multi_select"]
    if not inst.batteries and not multi:
        return ""  # the section is left out of the report
    if m is None or "metric" not in m.columns:
        return H.note("No metrics.parquet: run the analyze stage.")
    parts = [_battery(ctx, m, bid, items) + _scale(ctx, m, bid, items) for bid, items in inst.batteries.items()]
    parts += [_multi(ctx, m, qid) for qid in multi]
    return "".join(parts)
