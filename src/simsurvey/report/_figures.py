"""The report's figures: matplotlib ``Figure`` objects built from plain arrays and frames.

No pyplot: figures are created with ``matplotlib.figure.Figure`` and saved through the Agg/SVG
canvases, so no GUI backend is ever selected, nothing touches matplotlib's global figure manager and figures are garbage-collected like any object.
Style settings are applied with a local ``rc_context`` around each figure.
"""

from __future__ import annotations

import base64
import io
from html import escape
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from simsurvey.io import write_bytes

HUMAN_COLOR = "#1b1b1b"
BAND_COLOR = "#c8c8c8"
_MODEL_COLORS = ("#d1495b", "#00798c", "#edae49", "#66a182", "#8d6a9f", "#2e4057")
_BASELINE_COLORS = ("#9e9e9e", "#bdbdbd", "#757575")

_RC = {
    "text.parse_math": False,  # labels like "$50k" must print as written
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "svg.fonttype": "none",  # real <text> in the SVG: searchable, selectable, small
    "svg.hashsalt": "simsurvey",  # stable element ids: same run, same bytes
}


@contextmanager
def style() -> Iterator[None]:
    """The report's matplotlib settings, applied only inside the block."""
    with rc_context(_RC):
        yield


def model_colors(models: Sequence[str], baseline: Sequence[bool]) -> dict[str, str]:
    """A stable colour per model: saturated for LLMs, greys for baselines."""
    out: dict[str, str] = {}
    i = j = 0
    for m, b in zip(models, baseline):
        if b:
            out[m] = _BASELINE_COLORS[j % len(_BASELINE_COLORS)]
            j += 1
        else:
            out[m] = _MODEL_COLORS[i % len(_MODEL_COLORS)]
            i += 1
    return out


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = str(text).split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "\n".join(lines[:3]) + ("…" if len(lines) > 3 else "")


def distribution_bars(
    labels: Sequence[str],
    series: Mapping[str, np.ndarray],
    colors: Mapping[str, str],
    *,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    hatched: Sequence[str] = (),
    title: str = "",
) -> Figure:
    """Grouped bars: one group per option, one bar per series (human first).

    Args:
        labels: option labels, in canonical order.
        series: name -> shares (len(labels)); NaN shares are drawn as empty.
        colors: name -> colour.
        band: optional (low, high) per option, drawn as a grey band across the group.
        hatched: series drawn hatched (baselines).
        title: axes title.
    """
    k, names = len(labels), list(series)
    with style():
        fig = Figure(figsize=(max(5.5, 1.1 * k + 2.5), 3.4), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / max(len(names), 1)
        x = np.arange(k)
        if band is not None:
            for i, (lo, hi) in enumerate(zip(*band)):
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.add_patch(
                        Rectangle((i - 0.45, lo), 0.9, max(hi - lo, 0.002), color=BAND_COLOR, alpha=0.7, lw=0, zorder=0)
                    )
        for j, name in enumerate(names):
            vals = np.nan_to_num(np.asarray(series[name], dtype=float), nan=0.0)
            ax.bar(
                x - 0.4 + width * (j + 0.5), vals, width * 0.92, label=name, color=colors.get(name, "#888"),
                hatch="///" if name in hatched else None, edgecolor="white" if name not in hatched else "#555",
                linewidth=0.4, zorder=2,
            )
        ax.set_xticks(x, [_wrap(lab, 11 if k > 5 else 16) for lab in labels], fontsize=8 if k > 5 else 9)
        ax.set_ylabel("share of answers")
        ax.set_ylim(0, max(0.05, min(1.0, 1.15 * max(
            [np.nanmax(np.asarray(v, dtype=float)) if np.isfinite(np.asarray(v, dtype=float)).any() else 0
             for v in series.values()] + ([float(np.nanmax(band[1]))] if band is not None and np.isfinite(band[1]).any() else [0])
        ))))
        ax.set_title(title, loc="left")
        handles, hl = ax.get_legend_handles_labels()
        if band is not None:
            handles.append(Patch(color=BAND_COLOR, alpha=0.7))
            hl.append("human split-half range")
        ax.legend(handles, hl, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    return fig


def ratio_dotplot(
    frame: pd.DataFrame, colors: Mapping[str, str], *, metric_label: str, ncols: int = 3
) -> Figure:
    """Dot plot of a silicon/human ratio by subgroup, one panel per question, CI bars, line at 1.

    Args:
        frame: columns question_id, group_label, model, value, ci_low, ci_high. Group order
            within a panel follows first appearance.
        colors: model -> colour.
        metric_label: x-axis label.
        ncols: panels per row.
    """
    questions = list(dict.fromkeys(frame["question_id"]))
    models = list(dict.fromkeys(frame["model"]))
    groups = list(dict.fromkeys(frame["group_label"]))
    ncols = max(1, min(ncols, len(questions)))
    nrows = -(-len(questions) // ncols)
    with style():
        fig = Figure(figsize=(3.3 * ncols + 1.8, 0.22 * len(groups) * nrows + 1.2 * nrows + 0.4), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        y_of = {g: i for i, g in enumerate(groups)}
        for ax, q in zip(axes.flat, questions):
            sub = frame[frame["question_id"] == q]
            for j, m in enumerate(models):
                rows = sub[sub["model"] == m]
                if rows.empty:
                    continue
                y = np.array([y_of[g] for g in rows["group_label"]]) + (j - (len(models) - 1) / 2) * 0.18
                v = rows["value"].to_numpy(float)
                lo, hi = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
                has = np.isfinite(lo) & np.isfinite(hi)
                xerr = np.vstack([np.where(has, v - lo, 0), np.where(has, hi - v, 0)]).clip(min=0)
                ax.errorbar(v, y, xerr=xerr, fmt="o", ms=4, color=colors.get(m, "#888"), lw=1, capsize=2, label=m)
            ax.axvline(1.0, color="#555", lw=1, ls="--", zorder=0)
            ax.set_title(q, loc="left")
            ax.set_yticks(range(len(groups)), groups)
            ax.set_ylim(len(groups) - 0.5, -0.5)
            ax.set_xlabel(metric_label)
            ax.grid(axis="x", color="#eee")
        for ax in list(axes.flat)[len(questions):]:
            ax.set_visible(False)
        handles, hl = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, hl, loc="outside upper right", frameon=False, fontsize=8, ncols=min(4, len(hl)))
    return fig


def means_scatter(frame: pd.DataFrame, *, models: Sequence[str]) -> Figure:
    """Human vs silicon subgroup means with the 45° line, one panel per model.

    Args:
        frame: columns model, question_id, group_label, human_mean, silicon_mean (0..1 scale).
        models: panel order.
    """
    questions = list(dict.fromkeys(frame["question_id"]))
    qcolor = {q: _MODEL_COLORS[i % len(_MODEL_COLORS)] for i, q in enumerate(questions)}
    n = max(1, len(models))
    with style():
        fig = Figure(figsize=(3.2 * n + 1.6, 3.4), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, m in zip(axes, models):
            sub = frame[frame["model"] == m]
            ax.plot([0, 1], [0, 1], color="#777", lw=1, ls="--", zorder=0)
            for q in questions:
                rows = sub[sub["question_id"] == q]
                ax.scatter(rows["human_mean"], rows["silicon_mean"], s=18, color=qcolor[q], label=q, alpha=0.85)
            ok = sub[["human_mean", "silicon_mean"]].dropna()
            r = ok["human_mean"].corr(ok["silicon_mean"]) if len(ok) >= 3 else float("nan")
            ax.set_title(f"{m}\nr = {r:.2f}" if np.isfinite(r) else m, loc="left")
            ax.set_xlim(-0.03, 1.03)
            ax.set_ylim(-0.03, 1.03)
            ax.set_aspect("equal")
            ax.set_xlabel("human subgroup mean (0 = first scale point, 1 = last)")
            ax.set_ylabel("silicon subgroup mean")
        handles, hl = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, hl, loc="outside right upper", frameon=False, fontsize=8, title="question")
    return fig


def pattern_heatmaps(panels: Mapping[str, pd.DataFrame]) -> Figure:
    """Cramér's V heatmaps (demographic × question) side by side on one colour scale.

    Args:
        panels: title -> frame indexed by demographic with one column per question.
    """
    names = list(panels)
    vmax = max([float(np.nanmax(p.to_numpy(float))) for p in panels.values() if p.size and np.isfinite(p.to_numpy(float)).any()] + [0.05])
    first = panels[names[0]]
    with style():
        fig = Figure(
            figsize=(max(3.0, 0.75 * first.shape[1] + 1.6) * len(names) + 1.0, 0.42 * first.shape[0] + 1.6),
            layout="constrained",
        )
        axes = fig.subplots(1, len(names), squeeze=False, sharey=True)[0]
        im = None
        for ax, name in zip(axes, names):
            p = panels[name]
            vals = p.to_numpy(float)
            im = ax.imshow(vals, cmap="Blues", vmin=0, vmax=vmax, aspect="auto")
            ax.set_xticks(range(p.shape[1]), [str(c) for c in p.columns], rotation=30, ha="right")
            ax.set_yticks(range(p.shape[0]), [str(i) for i in p.index])
            ax.set_title(name, loc="left")
            ax.spines[:].set_visible(False)
            for (i, j), v in np.ndenumerate(vals):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if v > 0.6 * vmax else "#111")
        if im is not None:
            fig.colorbar(im, ax=list(axes), shrink=0.8, label="Cramér's V")
    return fig


def condition_small_multiples(
    panels: Mapping[str, tuple[Sequence[str], Mapping[str, np.ndarray]]], *, ncols: int = 2
) -> Figure:
    """Answer distributions under each design condition, one small panel per question.

    Args:
        panels: question id -> (option labels, {condition_id: shares}).
        ncols: panels per row.
    """
    names = list(panels)
    conds = list(dict.fromkeys(c for _, series in panels.values() for c in series))
    ccolor = {c: matplotlib.colormaps["tab10"](i % 10) for i, c in enumerate(conds)}
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    with style():
        fig = Figure(figsize=(4.4 * ncols + 2.2, 2.7 * nrows + 0.3), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, q in zip(axes.flat, names):
            labels, series = panels[q]
            x = np.arange(len(labels))
            width = 0.8 / max(len(series), 1)
            for j, (c, vals) in enumerate(series.items()):
                ax.bar(x - 0.4 + width * (j + 0.5), np.nan_to_num(np.asarray(vals, float)), width * 0.9,
                       color=ccolor[c], label=c)
            ax.set_xticks(x, [_wrap(lab, 12) for lab in labels], fontsize=7)
            ax.set_title(q, loc="left")
            ax.set_ylim(0, 1)
            ax.set_ylabel("share")
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        handles = [Patch(color=ccolor[c]) for c in conds]
        fig.legend(handles, conds, loc="outside right upper", frameon=False, fontsize=7, title="condition")
    return fig


def save_figure(fig: Figure, path: Path, *, fmt: str, dpi: int = 110, alt: str = "") -> str:
    """Write ``fig`` to ``path`` (atomically) and return its inline HTML markup.

    SVG is inlined as an ``<svg>`` element (XML prolog stripped, scaled to the page width);
    PNG as an ``<img>`` with a base64 data URI. ``alt`` becomes the accessible label.
    """
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else {"Software": None})
    data = buf.getvalue()
    write_bytes(path, data)
    if fmt == "svg":
        text = data.decode("utf-8")
        text = text[text.index("<svg"):]
        return text.replace(
            "<svg ", f'<svg class="fig" role="img" aria-label="{escape(alt)}" ', 1
        )
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="fig" alt="{escape(alt)}" src="data:image/png;base64,{b64}">'
