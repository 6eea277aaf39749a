"""The report's question-order (context) effects section, from ``context_effects.parquet``."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from simsurvey.report import _html as H
from simsurvey.report._context import Ctx

#: Rows shown per side × model (all are in the parquet file).
_LIMIT = 15


def question_order(ctx: Ctx) -> str:
    """Per side and model: the contrasts with the smallest p, and what could not be tested."""
    path = ctx.data.run_dir / "context_effects.parquet"
    if not path.exists():
        return H.note("context_effects.parquet is missing: no question-order effects (rerun the analyze stage).")
    try:
        ce = pd.read_parquet(path)
    except (OSError, pa.ArrowException) as err:
        return H.note(f"context_effects.parquet could not be read ({type(err).__name__}).")
    if ce.empty:
        return H.note("Every question was asked in a conversation of its own (design.context: independent): "
                      "no question-order effects to measure. design.context=sequential with "
                      "design.question_order=randomized asks the questions in turn, in a random order per persona.")
    out = [H.para(
        "Sequential questionnaire: each persona answered the questions in turn, its earlier answers in the "
        "context. position: a question asked in the first half of the conversation vs the second half; "
        "previous: asked right after the named question vs after any other (or first). js_divergence: how "
        "far apart the two answer distributions are (0 = same); mean difference: mean scale position A − B "
        "(ordinal questions). p: randomization test that permutes the order labels across conversations "
        "(the order was drawn per conversation; copies of one deterministic prompt are one unit); p Holm: "
        "adjusted within the question. Its size and power are measured in VALIDATION.md.")]
    level = ce["level"].astype(str)
    for side in ("silicon", "human"):
        rows = ce[ce["side"].astype(str) == side]
        if rows.empty:
            continue
        groups = rows.groupby(rows["model"].astype(str).where(rows["model"].notna(), "human"), sort=False)
        for name, g in groups:
            out.append(f"<h4>{H.esc(name if side == 'silicon' else 'Human reference')}</h4>")
            tested = g[level[g.index] != "none"]
            for note in sorted(set(g.loc[level[g.index] == "none", "note"].dropna().astype(str))):
                n = int(((level[g.index] == "none") & (g["note"].astype(str) == note)).sum())
                out.append(H.note(f"{n} question(s): {note}."))
            if tested.empty:
                continue
            n_sig = int((tested["p_adjusted"] < 0.05).sum())
            out.append(H.para(f"{n_sig} of {int(tested['p_adjusted'].notna().sum())} contrasts have Holm p < 0.05."))
            top = tested.sort_values(["p_value", "js_divergence"], ascending=[True, False]).head(_LIMIT)
            table = [[H.esc(r["question_id"]), H.esc(r["level"]), H.esc(r["condition_a"]), H.esc(r["condition_b"]),
                      H.fmt_num(r["js_divergence"]), H.fmt_num(r["mean_difference"]), H.fmt_num(r["p_value"]),
                      H.fmt_num(r["p_adjusted"]), f"{H.fmt_num(r['n_units_a'])} / {H.fmt_num(r['n_units_b'])}"]
                     for _, r in top.iterrows()]
            out.append(f"<p>The {len(top)} contrasts with the smallest p (of {len(tested)}; all are in "
                       "context_effects.parquet):</p>")
            out.append(H.table(["question", "contrast", "A", "B", "js_divergence", "mean difference", "p", "p Holm",
                                "units A / B"], table, numeric=[False] * 4 + [True] * 5, raw=True))
    return "".join(out)
