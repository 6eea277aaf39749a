"""The report's panel for numeric questions (feeling thermometers): the raw scale.

Per numeric question: the silicon and human answers as weighted empirical CDFs on the raw
scale (``answer_value``) — a step plot shows heaping (humans answering 50, 70, 85) as jumps, and
two curves apart horizontally differ in level, apart in slope differ in spread — then the
``value_*`` metrics of metrics.parquet per model with their CIs and sampling nulls.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simsurvey.analysis.numeric import VALUE_METRICS
from simsurvey.report import _figures as F
from simsurvey.report import _html as H
from simsurvey.report._context import METRIC_HELP, Ctx
from simsurvey.report._data import is_baseline

_CAPTION = (
    "Weighted share of answers at or below each value of the scale (empirical CDF), human in black. "
    "A curve to the right of the human one answers higher; a steeper curve is less spread out; vertical "
    "jumps are values many respondents gave (humans heap on 0, 50, 70, 85, ...). The largest vertical gap "
    "between a model's curve and the human one is value_ks; the area between them, divided by the scale's "
    "range, is value_wasserstein_norm. Invalid and don't-know answers have no value and are not drawn."
)


def _values(frame: pd.DataFrame | None, qid: str, model: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, weights) of the rows with an answer_value for a question (and model)."""
    if frame is None or "answer_value" not in frame.columns or "question_id" not in frame.columns:
        return np.zeros(0), np.zeros(0)
    rows = frame[frame["question_id"].astype(str) == qid]
    if model is not None and "model" in rows.columns:
        rows = rows[rows["model"].astype(str) == model]
    if "valid" in rows.columns:
        rows = rows[rows["valid"].astype("boolean").fillna(False).to_numpy(bool)]
    v = pd.to_numeric(rows["answer_value"], errors="coerce").to_numpy(float)
    w = rows["weight"].to_numpy(float) if "weight" in rows.columns else np.ones(len(v))
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    return v[ok], w[ok]


def silicon_values(ctx: Ctx) -> pd.DataFrame | None:
    """Persona rows of responses.parquet with the persona weight (the no_persona control is not
    a sample of the population, as in the rest of the report)."""
    r = ctx.data.responses
    if r is None or "answer_value" not in r.columns or "persona_id" not in r.columns:
        return None
    r = r[r["persona_id"].notna()][[c for c in ("model", "question_id", "persona_id", "valid", "answer_value")
                                    if c in r.columns]].copy()
    p = ctx.data.personas
    r["weight"] = 1.0
    if p is not None and {"persona_id", "weight"} <= set(p.columns):
        w = p.set_index(p["persona_id"].astype("int64"))["weight"].astype(float)
        r["weight"] = r["persona_id"].astype("int64").map(w).fillna(1.0).to_numpy(float)
    return r


def ecdf_figure(series: Mapping[str, tuple[np.ndarray, np.ndarray]], colors: Mapping[str, str],
                lo: float, hi: float, title: str, unit: str = "") -> Figure:
    """Weighted ECDFs, one step curve per series (values, weights), on [lo, hi]."""
    with F.style():
        fig = Figure(figsize=(6.4, 3.4))
        ax = fig.add_subplot()
        for name, (v, w) in series.items():
            if len(v) == 0:
                continue
            order = np.argsort(v, kind="stable")
            x, c = np.unique(v[order], return_index=True)
            cum = np.cumsum(w[order]) / w.sum()
            last = np.append(c[1:] - 1, len(v) - 1)
            y = cum[last]
            xs, ys = np.concatenate([[lo], x, [hi]]), np.concatenate([[0.0], y, [1.0]])
            ax.step(xs, ys, where="post", color=colors.get(name, "#444444"),
                    lw=2.2 if name == "human" else 1.5, ls="--" if is_baseline(name) else "-",
                    label=f"{name} (n={len(v):,})")
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel(f"answer ({unit})" if unit else "answer")
        ax.set_ylabel("share at or below")
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
        fig.tight_layout()
    return fig


def _metric_rows(ctx: Ctx, qid: str, models: list[str],
                 metrics: tuple[str, ...] = VALUE_METRICS) -> list[list[str]]:
    """Table rows (metric × model: value [CI], null and p) of ``metrics`` of one question id."""
    m = ctx.metrics_all()
    m = m[(m["question_id"].astype(str) == qid) & m["metric"].isin(metrics)] if len(m) else m
    rows = []
    for metric in metrics:
        cells = [f"<b>{H.esc(metric)}</b><br><small>{H.esc(METRIC_HELP.get(metric, ''))}</small>"]
        for x in models:
            r = m[(m["metric"] == metric) & (m["model"].astype(str) == x)]
            if r.empty:
                cells.append("–")
                continue
            r = r.iloc[0]
            cell = H.fmt_ci(r.get("value"), r.get("ci_low"), r.get("ci_high"))
            if pd.notna(r.get("p_value")):
                cell += f"<br><small>null {H.esc(H.fmt_num(r.get('null_mean')))}, p {H.esc(H.fmt_num(r.get('p_value')))}</small>"
            cells.append(cell)
        rows.append(cells)
    return rows


def numeric_questions(ctx: Ctx) -> str:
    """One panel per numeric question: ECDFs on the raw scale and the value_* metrics."""
    out = []
    sil = silicon_values(ctx)
    for qid in ctx.data.question_ids:
        q = ctx.data.question(qid)
        if q is None or q.kind != "numeric":
            continue
        lo, hi, unit = float(q.scale.min), float(q.scale.max), q.scale.unit
        series = {"human": _values(ctx.data.reference, qid)}
        for model in ctx.models:
            series[model] = _values(sil, qid, model)
        out.append(f"<h3>{H.esc(qid)}</h3><p><i>{H.esc(q.text)}</i> <small>(numeric, {H.esc(H.fmt_num(lo, 0))}"
                   f"–{H.esc(H.fmt_num(hi, 0))}{' ' + H.esc(unit) if unit else ''})</small></p>")
        if not any(len(v) for v, _ in series.values()):
            out.append(H.note("No numeric answers for this question."))
            continue
        fig = ecdf_figure(series, {"human": F.HUMAN_COLOR, **ctx.colors}, lo, hi, qid, unit)
        out.append(H.figure(ctx.fig(fig, f"numeric_{qid}", f"answer CDFs for {qid}"), _CAPTION))
        models = [x for x in ctx.models if len(series.get(x, ((),))[0])]
        rows = _metric_rows(ctx, qid, models)
        if models and any(c != "–" for r in rows for c in r[1:]):
            out.append(H.table(["metric (raw scale)", *models], rows, numeric=[False] + [True] * len(models), raw=True))
        else:
            out.append(H.note("No raw-scale metrics for this question in metrics.parquet."))
    return "".join(out)  # empty without numeric questions: the section is left out of the report
