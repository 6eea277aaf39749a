"""The short summary table printed at the end of a run.

One row per model × question: the verdict of the calibrated test of "silicon = human" (JS against
its sampling null at the run's effective sizes), the excess JS over that null, representativeness,
the entropy and variance ratios (silicon / human) with their CIs, the mean order-effect JS between
conditions and the invalid rate; then, for survey experiments, each arm's headline treatment
effect, silicon beside human (``treatment_effects.parquet``). Read from the run's parquet files, so
it can be reprinted for any run directory with ``python -m simsurvey.summary <run_dir>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

#: Summary column -> metric name in metrics.parquet (overall rows, group_var == "all").
SUMMARY_METRICS: dict[str, str] = {
    "JS": "js_divergence",
    "repr.": "representativeness",
    "H ratio": "entropy_ratio",
    "var ratio": "variance_ratio",
    "invalid": "invalid_rate",
}
#: Metrics whose CI is shown beside the value.
WITH_CI = ("entropy_ratio", "variance_ratio")


def summary_table(run_dir: str | Path) -> pd.DataFrame:
    """The summary as a data frame (index: model, question_id).

    Raises:
        UserError: metrics.parquet was written under an older contract (see io.require_current).
    """
    from simsurvey.analysis.inference import verdict
    from simsurvey.io import require_current

    run_dir = Path(run_dir)
    require_current(run_dir / "metrics.parquet", "metrics")
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    overall = metrics[(metrics["group_var"] == "all") & metrics["metric"].isin(SUMMARY_METRICS.values())]
    idx = ["model", "question_id"]
    table = overall.pivot_table(index=idx, columns="metric", values="value", aggfunc="first")
    table = table.reindex(columns=list(SUMMARY_METRICS.values()))
    table.columns = list(SUMMARY_METRICS)
    js = overall[overall["metric"] == "js_divergence"].set_index(idx)
    table.insert(0, "silicon = human?", [verdict(js["p_value"].get(i, float("nan"))) if i in js.index else "untested"
                                         for i in table.index])
    table.insert(2, "JS excess", js["excess"].reindex(table.index))
    for metric in WITH_CI:
        rows = overall[overall["metric"] == metric].set_index(idx)
        col = next(c for c, v in SUMMARY_METRICS.items() if v == metric)
        table[f"{col} CI"] = [f"[{rows['ci_low'][i]:.2f}, {rows['ci_high'][i]:.2f}]"
                              if i in rows.index and pd.notna(rows["ci_low"][i]) else "—" for i in table.index]
    oe_path = run_dir / "order_effects.parquet"
    if oe_path.exists():
        oe = pd.read_parquet(oe_path)
        if "level" in oe.columns:  # schema 2: pair rows and per-question rows
            oe = oe[oe["level"].astype(str) == "pair"]
        if len(oe):
            table["order JS"] = oe.groupby(["model", "question_id"])["js_divergence"].mean()
    return table


def print_summary(run_dir: str | Path, *, file=None) -> None:
    """Print the summary table with rich (plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = summary_table(run_dir)
    out = Table(title="silicon vs human (overall; the verdict tests JS against its sampling null at these sizes; "
                "JS: 0 = identical, excess: JS beyond that null, repr.: 1 = identical, ratios: 1 = as diverse as humans)")
    out.add_column("model")
    out.add_column("question")
    for col in table.columns:
        out.add_column(col, justify="left" if col == "silicon = human?" else "right")
    for (model, qid), row in table.iterrows():
        out.add_row(str(model), str(qid), *(v if isinstance(v, str) else "—" if pd.isna(v) else f"{v:.3f}"
                                            for v in row))
    console = Console(file=file or sys.stdout, width=200)
    console.print(out)
    lines = experiment_lines(run_dir)
    if lines:
        console.print("survey experiments: treatment effect of each arm vs the control (95% CIs)", highlight=False)
        for line in lines:
            console.print(f"  {line}", highlight=False, markup=False)


def experiment_lines(run_dir: str | Path) -> list[str]:
    """Headline treatment effects of the run's survey experiments (none without experiments)."""
    from simsurvey.analysis.treatment import headlines
    from simsurvey.io import require_current

    path = Path(run_dir) / "treatment_effects.parquet"
    if not path.exists():
        return []
    require_current(path, "treatment_effects")
    return headlines(pd.read_parquet(path))


if __name__ == "__main__":  # pragma: no cover - thin CLI
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "metrics.parquet").exists():
        print("usage: python -m simsurvey.summary <run_dir with metrics.parquet>", file=sys.stderr)
        sys.exit(2)
    from simsurvey.errors import UserError

    try:
        print_summary(sys.argv[1])
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
