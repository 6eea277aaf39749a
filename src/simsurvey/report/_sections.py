"""The report's sections: each takes the run's data and returns escaped HTML.

A section that lacks its inputs says so in the page instead of failing; :mod:`._render`
additionally guards each section so one broken figure never costs the whole report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from simsurvey.analysis.inference import verdict
from simsurvey.analysis.metrics import cramers_v
from simsurvey.report import _figures as F
from simsurvey.report import _html as H
from simsurvey.report._context import METRIC_HELP, MIN_GROUP_N, RATIO_METRICS, Ctx
from simsurvey.report._question_order import question_order
from simsurvey.report._data import (
    answer_matrix,
    is_baseline,
    mean_distribution,
    option_label,
    ordinal_positions,
    slug,
    null_band,
    substantive_codes,
    weighted_distribution,
    weighted_mean,
)
from simsurvey.report._experiments import experiments
from simsurvey.report._batteries import batteries
from simsurvey.report._numeric import numeric_questions
from simsurvey.report._overview import overview


def _metric_table(ctx: Ctx, question_id: str) -> str:
    m = ctx.metrics_all()
    m = m[m["question_id"].astype(str) == question_id] if "question_id" in m.columns else m.iloc[0:0]
    skipped = ctx.skipped[(ctx.skipped["question_id"] == question_id) & (ctx.skipped["group_var"] == "all")]
    notes = "".join(H.note(f"No distance or diversity metrics for {r['model']}: only {r['n_silicon']} silicon and "
                           f"{r['n_human']} human answers, below analysis.min_group_n.") for _, r in skipped.iterrows())
    if m.empty:
        return notes + H.note(f"No metrics for question '{question_id}' in metrics.parquet.")
    models = [x for x in ctx.models if x in set(m["model"].astype(str))]
    rows = []
    for metric in [k for k in METRIC_HELP if k in set(m["metric"])] + sorted(set(m["metric"]) - set(METRIC_HELP)):
        sub = m[m["metric"] == metric].set_index(m[m["metric"] == metric]["model"].astype(str))
        cells = [f"<b>{H.esc(metric)}</b><br><small>{H.esc(METRIC_HELP.get(metric, ''))}</small>"]
        for x in models:
            if x in sub.index:
                row = sub.loc[x]
                row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
                cell = H.fmt_ci(row.get("value"), row.get("ci_low"), row.get("ci_high"))
                if pd.notna(row.get("null_mean")):
                    cell += (f"<br><small>null {H.esc(H.fmt_num(row.get('null_mean')))} "
                             f"(95%: {H.esc(H.fmt_num(row.get('null_q95')))}), p {H.esc(H.fmt_num(row.get('p_value')))}"
                             "</small>")
                elif pd.notna(row.get("p_value")):
                    cell += f"<br><small>p {H.esc(H.fmt_num(row.get('p_value')))}</small>"
                cells.append(cell)
            else:
                cells.append("–")
        rows.append(cells)
    n_row = ["<b>n silicon / n human</b>"]
    for x in models:
        sub = m[m["model"].astype(str) == x]
        ns = sub["n_silicon"].max() if "n_silicon" in sub else None
        nh = sub["n_human"].max() if "n_human" in sub else None
        n_row.append(f"{H.fmt_num(ns, 0)} / {H.fmt_num(nh, 0)}")
    rows.append(n_row)
    js = m[m["metric"] == "js_divergence"].set_index(m[m["metric"] == "js_divergence"]["model"].astype(str))
    verdicts = []
    for x in models:
        if x in js.index:
            r = js.loc[x]
            r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
            verdicts.append(f"<b>{H.esc(x)}</b>: {H.esc(verdict(r.get('p_value'), r.get('excess')))}")
    # The verdicts are markup already (names and verdicts escaped one by one): not escaped again.
    head = ("<p>Silicon = human? (JS against its sampling null at these sizes) " + "; ".join(verdicts) + "</p>") \
        if verdicts else ""
    return notes + head + H.table(["metric", *models], rows, numeric=[False] + [True] * len(models), raw=True)


def questions(ctx: Ctx) -> str:
    """One block per question: grouped bars human vs silicon vs baselines, then its metrics."""
    out = []
    for qi, qid in enumerate(ctx.data.question_ids):
        q = ctx.data.question(qid)
        codes = substantive_codes(ctx.data, qid)
        out.append(f"<h3 id=\"q-{H.esc(slug(qid))}\">{H.esc(qid)}</h3>")
        if q is not None:
            out.append(f"<p><i>{H.esc(q.text)}</i> <small>({H.esc(q.kind)})</small></p>")
        if not codes:
            out.append(H.note("No answers and no options known for this question."))
            continue
        labels = [option_label(ctx.data, qid, c) for c in codes]
        series: dict[str, np.ndarray] = {}
        band = None
        hq = ctx.human[ctx.human["question_id"] == qid]
        if len(hq):
            series["human"] = weighted_distribution(hq["answer_code"].to_numpy(), hq["weight"].to_numpy(), codes)
            band = null_band(hq["answer_code"].to_numpy(), hq["weight"].to_numpy(), codes,
                             ctx.silicon_n_eff(qid), seed=ctx.seed + qi)
        modes = []
        for m in ctx.models:
            sq = ctx.silicon[(ctx.silicon["question_id"] == qid) & (ctx.silicon["model"] == m)]
            dist = mean_distribution(sq, codes, use_probs=ctx.use_probs(m))
            if np.isfinite(dist).any():
                series[m] = dist
                modes.append(f"{m}: {'mean answer probabilities' if ctx.use_probs(m) else 'answer counts'}")
        if not series or not any(np.isfinite(v).any() for v in series.values()):
            out.append(H.note("No valid answers for this question."))
        else:
            colors = {"human": F.HUMAN_COLOR, **ctx.colors}
            fig = F.distribution_bars(labels, series, colors, band=band if "human" in series else None,
                                      hatched=[m for m in series if is_baseline(m)], title=qid)
            cap = ("Share of answers per option (weighted). Bars closer to the black human bars are better; "
                   "the grey band is where 95% of a perfect silicon sample's shares would fall (answers drawn from "
                   "the human distribution at the model's effective sample size, beside this human sample), so a "
                   "bar inside it is as close to the humans as sampling noise allows.")
            if "human" not in series:
                cap = "Share of answers per option (weighted). No human reference answers for this question."
            if any(is_baseline(m) for m in series):
                cap += " Hatched bars are baselines: a model should beat them."
            cap += (" As in the metrics, don't-know style options are left out and silicon shares are "
                    + "; ".join(modes) + ".") if modes else ""
            out.append(H.figure(ctx.fig(fig, f"question_{qid}", f"answer distributions for {qid}"), cap))
        out.append(_metric_table(ctx, qid))
    return "".join(out) or H.note("No questions found in the run.")


def _group_label(var: Any, value: Any) -> str:
    return "all" if str(var) == "all" else f"{var}: {value}"


def homogenization(ctx: Ctx) -> str:
    """Silicon/human diversity ratios by subgroup (dot plots with CIs and a line at 1)."""
    m = ctx.data.metrics
    if m is None or "metric" not in m.columns:
        return H.note("metrics.parquet is missing: no diversity ratios to show.")
    out = []
    for metric in RATIO_METRICS:
        sub = m[m["metric"] == metric].copy()
        if sub.empty:
            continue
        sub["group_label"] = [_group_label(v, g) for v, g in zip(sub["group_var"], sub["group_value"])]
        size = sub.groupby("group_label")["n_human"].max() if "n_human" in sub else sub.groupby("group_label").size()
        keep = ["all"] if "all" in size.index else []
        keep += [g for g in size.drop("all", errors="ignore").sort_values(ascending=False).index][: ctx.cfg.max_groups]
        order = sorted(keep, key=lambda g: (g != "all", g))
        sub = sub[sub["group_label"].isin(keep)]
        sub = sub.assign(_o=sub["group_label"].map({g: i for i, g in enumerate(order)})).sort_values("_o")
        sub = sub.astype({"question_id": str, "model": str})
        for c in ("ci_low", "ci_high"):
            if c not in sub:
                sub[c] = np.nan
        fig = F.ratio_dotplot(sub, ctx.colors, metric_label=metric)
        cap = (f"{metric}: silicon divided by human ({METRIC_HELP.get(metric, '')}). The dashed line at 1 means "
               "the silicon sample is as diverse as the humans in that subgroup; dots left of it mean "
               "homogenized, stereotyped answers. Bars are 95% bootstrap intervals.")
        if len(size) - ("all" in size.index) > ctx.cfg.max_groups:
            cap += f" Only the {ctx.cfg.max_groups} largest subgroups are drawn."
        out.append(H.figure(ctx.fig(fig, f"homogenization_{metric}", f"{metric} by subgroup"), cap))
    return "".join(out) or H.note(
        "metrics.parquet has none of " + ", ".join(RATIO_METRICS) + ": no homogenization figure." + ctx.skipped_note())


def _subgroup_means(ctx: Ctx) -> pd.DataFrame:
    rows = []
    for qid in ctx.data.question_ids:
        pos = ordinal_positions(ctx.data, qid)
        if pos is None:
            continue
        codes = list(pos)
        scale = np.array([pos[c] for c in codes])
        hq = ctx.human[ctx.human["question_id"] == qid]
        sq = ctx.silicon[ctx.silicon["question_id"] == qid]
        for var in ctx.data.variables.names:
            if var not in hq.columns or var not in sq.columns:
                continue
            for value, hg in hq.groupby(hq[var].astype(object)):
                hv = hg["answer_code"].map(pos).to_numpy(float)
                if np.isfinite(hv).sum() < MIN_GROUP_N:
                    continue
                hmean = weighted_mean(hv, hg["weight"].to_numpy(float))
                for model, sg in sq[sq[var].astype(object) == value].groupby("model"):
                    ok, x = answer_matrix(sg, codes, use_probs=ctx.use_probs(str(model)))
                    if ok.sum() < MIN_GROUP_N:
                        continue
                    smean = weighted_mean(x @ scale, sg["weight"].to_numpy(float)[ok])
                    rows.append({"model": model, "question_id": qid, "group_label": _group_label(var, value),
                                 "human_mean": hmean, "silicon_mean": smean})
    return pd.DataFrame(rows, columns=["model", "question_id", "group_label", "human_mean", "silicon_mean"])


def _cramers_v_panels(ctx: Ctx) -> dict[str, pd.DataFrame]:
    """Demographic × question Cramér's V: from metrics.parquet when the analyzer wrote it."""
    m = ctx.data.metrics
    panels: dict[str, pd.DataFrame] = {}
    llms = [x for x in ctx.models if not is_baseline(x)][:3]
    if m is not None and "metric" in m.columns:
        cv = m[m["metric"].isin(["cramers_v_human", "cramers_v_silicon"]) & (m["group_var"].astype(str) != "all")]
        if not cv.empty:
            hum = cv[cv["metric"] == "cramers_v_human"]
            if not hum.empty:
                panels["human"] = hum.pivot_table(index="group_var", columns="question_id", values="value", aggfunc="mean")
            for x in llms:
                s = cv[(cv["metric"] == "cramers_v_silicon") & (cv["model"] == x)]
                if not s.empty:
                    panels[x] = s.pivot_table(index="group_var", columns="question_id", values="value", aggfunc="mean")
            if panels:
                return panels
    # Fallback: compute from the answers (unweighted counts, the analyzer's Cramér's V).
    def pattern(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=[v for v in ctx.data.variables.names if v in frame.columns],
                           columns=ctx.data.question_ids, dtype=float)
        for qid, f in frame.groupby("question_id", sort=False):
            if qid not in out.columns:
                continue
            answers, _ = pd.factorize(f["answer_code"].astype(object))
            for var in out.index:
                groups, _ = pd.factorize(f[var].astype(object))  # missing -> -1
                ok = (groups >= 0) & (answers >= 0)
                g, a = groups[ok], answers[ok]
                if len(g) == 0:
                    continue
                tab = np.bincount(g * (a.max() + 1) + a, minlength=(g.max() + 1) * (a.max() + 1))
                # Empty rows/columns are ignored and fewer than 2 of either gives NaN.
                out.loc[var, qid] = float(cramers_v(tab.reshape(g.max() + 1, a.max() + 1)))
        return out.dropna(how="all").dropna(axis=1, how="all")

    panels["human"] = pattern(ctx.human)
    for x in llms:
        panels[x] = pattern(ctx.silicon[ctx.silicon["model"] == x])
    return {k: v for k, v in panels.items() if v.size}


def _in_question_order(ctx: Ctx, panels: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    qs = ctx.data.question_ids
    demo = list(ctx.data.variables.names)
    out = {}
    for k, p in panels.items():
        cols = [q for q in qs if q in p.columns] + [c for c in p.columns if c not in qs]
        rows = [d for d in demo if d in p.index] + [r for r in p.index if r not in demo]
        out[k] = p.loc[rows, cols]
    return out


def structure(ctx: Ctx) -> str:
    """Do subgroup differences match the human ones? Means scatter and Cramér's V heatmaps."""
    out = []
    m = ctx.data.metrics
    if m is not None and {"metric", "group_var", "value"} <= set(m.columns):
        corr = m[m["metric"] == "subgroup_mean_corr"]
        if not corr.empty:
            corr = corr.assign(cell=[H.fmt_ci(v, lo, hi, 2) for v, lo, hi in
                                     zip(corr["value"], corr.get("ci_low", corr["value"] * np.nan),
                                         corr.get("ci_high", corr["value"] * np.nan))])
            wide = corr.pivot_table(index=["model", "question_id"], columns="group_var", values="cell", aggfunc="first")
            rows = [[*idx, *(wide.loc[idx, c] if isinstance(wide.loc[idx, c], str) else "–" for c in wide.columns)]
                    for idx in wide.index]
            out.append("<p><b>subgroup_mean_corr</b>: correlation, over the values of each demographic, of the "
                       "silicon subgroup means with the human ones (1 = same ranking and spacing; 95% CI).</p>")
            out.append(H.table(["model", "question", *map(str, wide.columns)], rows,
                               numeric=[False, False] + [True] * len(wide.columns)))
        pat = m[m["metric"] == "pattern_cramers_v_corr"]
        if not pat.empty:
            out.append("<p><b>pattern_cramers_v_corr</b>: correlation of the silicon and human Cramér's V over all "
                       "demographic × question cells (does the model know which demographics matter where?).</p>")
            out.append(H.table(["model", "value [95% CI]"],
                               [[r["model"], H.fmt_ci(r["value"], r.get("ci_low"), r.get("ci_high"), 2)]
                                for _, r in pat.iterrows()], numeric=[False, True]))
    means = _subgroup_means(ctx)
    if means.empty:
        out.append(H.note("No ordinal question with enough human and silicon answers per subgroup "
                          f"(at least {MIN_GROUP_N}) to compare subgroup means."))
    else:
        models = [x for x in ctx.models if x in set(means["model"])][:4]
        fig = F.means_scatter(means, models=models)
        out.append(H.figure(ctx.fig(fig, "structure_means", "human vs silicon subgroup means"),
                            "Each dot is one demographic subgroup on one ordinal question: its mean answer among humans "
                            "(x) and among personas of that subgroup (y), on a 0–1 scale. Dots on the dashed 45° line "
                            "mean the model reproduces the human subgroup difference; dots in a flat horizontal row "
                            "mean the persona is ignored; r is the correlation over all dots."))
    panels = _in_question_order(ctx, _cramers_v_panels(ctx))
    if len(panels) >= 2 or (panels and "human" not in panels):
        fig = F.pattern_heatmaps(panels)
        out.append(H.figure(ctx.fig(fig, "structure_cramers_v", "Cramér's V patterns"),
                            "How strongly each demographic is associated with the answer (Cramér's V, 0 = not at all). "
                            "The silicon heatmap should look like the human one: the same dark cells in the same places. "
                            "A uniformly pale silicon map means demographics barely move the model."))
    else:
        out.append(H.note("Not enough demographic information in both samples to draw Cramér's V patterns."
                          + ctx.skipped_note()))
    return "".join(out)


def order_effects(ctx: Ctx) -> str:
    """Distributions by design condition (small multiples) and the pairwise order-effect table."""
    out = []
    r = ctx.data.responses
    llms = [x for x in ctx.models if not is_baseline(x)][:3]
    if r is not None and {"condition_id", "answer_code", "model"} <= set(r.columns):
        for x in llms:
            panels = {}
            for qid in ctx.data.question_ids:
                codes = substantive_codes(ctx.data, qid)
                sub = r[(r["model"] == x) & (r["question_id"] == qid)]
                if sub.empty or not codes:
                    continue
                series = {str(c): mean_distribution(g, codes, use_probs=ctx.use_probs(x))
                          for c, g in sub.groupby(sub["condition_id"].astype(str), sort=True)}
                panels[qid] = ([option_label(ctx.data, qid, c) for c in codes], series)
            if panels:
                fig = F.condition_small_multiples(panels)
                out.append(H.figure(ctx.fig(fig, f"order_conditions_{x}", f"answers by condition for {x}"),
                                    f"{x}: share of answers per option under each presentation condition (option "
                                    "order | label style ...), unweighted, no_persona control included. A robust respondent gives the same bars in "
                                    "every condition; bars that follow the display position reveal primacy or "
                                    "recency effects."))
    oe = ctx.data.order_effects
    if oe is None or oe.empty:
        out.append(H.note("order_effects.parquet is missing or empty: no pairwise order-effect table."))
        return "".join(out)
    out.append(H.para("js_divergence: how far apart the two conditions' answer distributions are (0 = same). "
                      "flip_rate: share of personas whose answer changed between the conditions (within-persona "
                      "designs only), beside retest flip: the same share between two replicates of one condition "
                      "(response noise, not an order effect). primacy / recency (per question, over all randomized "
                      "orders): an option's share when shown first / last minus its share when shown in a middle "
                      "position (0 for a respondent that ignores position). p: permutation test of no difference "
                      "that follows the design (within-persona swaps; copies of one deterministic prompt are one "
                      "unit); p Holm: Holm-adjusted over the question's condition pairs."))
    level = oe["level"].astype(str) if "level" in oe.columns else pd.Series("pair", index=oe.index)
    pairs, per_q = oe[level == "pair"], oe[level == "question"]
    stats = [c for c in ("js_divergence", "flip_rate", "retest_flip_rate") if c in pairs.columns]
    pcol = "p_adjusted" if "p_adjusted" in pairs.columns else "p_value"
    models = [m for m in ctx.models if m in set(oe["model"].astype(str))] if "model" in oe else []
    for m in models:
        sub = pairs[pairs["model"].astype(str) == m]
        q_rows = per_q[(per_q["model"].astype(str) == m) & (per_q["condition_a"].astype(str) == "*")] \
            if len(per_q) else per_q
        out.append(f"<h4>{H.esc(m)}</h4>")
        # Per question, averaged over condition pairs: where is the model unstable?
        summary = []
        for qid, g in sub.groupby(sub["question_id"].astype(str), sort=False):
            row = [H.esc(qid), H.fmt_num(len(g))] + [H.fmt_num(g[c].mean()) for c in stats]
            qr = q_rows[q_rows["question_id"].astype(str) == qid]
            for c in ("primacy", "recency"):
                row.append(H.fmt_num(qr[c].iloc[0]) if len(qr) and c in qr else "–")
            if pcol in g:
                row.append(f"{int((g[pcol] < 0.05).sum())} / {int(g[pcol].notna().sum())}")
            summary.append(row)
        heads = ["question", "pairs", *[f"mean {c}" for c in stats], "primacy", "recency"] + \
            ([f"pairs with {'Holm ' if pcol == 'p_adjusted' else ''}p < 0.05"] if pcol in sub else [])
        out.append(H.table(heads, summary, numeric=[False] + [True] * (len(heads) - 1), raw=True))
        if "js_divergence" in sub:
            sub = sub.sort_values("js_divergence", ascending=False)
        limit = 15
        detail = []
        for _, r in sub.head(limit).iterrows():
            n = f"{H.fmt_num(r.get('n_a'))} / {H.fmt_num(r.get('n_b'))}" if "n_a" in sub and "n_b" in sub else "–"
            detail.append([H.esc(r.get("question_id")), H.esc(r.get("condition_a")), H.esc(r.get("condition_b")),
                           *[H.fmt_num(r.get(c)) for c in stats], H.fmt_num(r.get("p_value")),
                           H.fmt_num(r.get("p_adjusted")), n])
        out.append(f"<p>The {min(limit, len(sub))} condition pairs with the largest JS divergence "
                   f"(of {len(sub)}; all are in order_effects.parquet):</p>")
        out.append(H.table(["question", "condition A", "condition B", *stats, "p", "p Holm", "n A / B"], detail,
                           numeric=[False] * 3 + [True] * (len(stats) + 3), raw=True))
    return "".join(out)


SECTIONS: tuple[tuple[str, str, Callable[[Ctx], str]], ...] = (
    ("overview", "Overview", overview),
    ("questions", "Questions: human vs silicon", questions),
    ("numeric", "Numeric questions: the raw scale", numeric_questions),
    ("homogenization", "Homogenization", homogenization),
    ("structure", "Structure: subgroup differences", structure),
    ("order-effects", "Order and label effects", order_effects),
    ("experiments", "Survey experiments: treatment effects", experiments),
    ("batteries", "Batteries and multi-select questions", batteries),
    ("question-order", "Question-order (context) effects", question_order),
)
