"""The short summary table printed at the end of a run.

One row per model × question: JS divergence to the humans, representativeness, entropy and
variance ratios (silicon / human), the mean order-effect JS between conditions and the invalid
rate. Read from ``metrics.parquet`` and ``order_effects.parquet``, so it can be reprinted for any
run directory with ``python -m simsurvey.summary <run_dir>``.
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


def summary_table(run_dir: str | Path) -> pd.DataFrame:
    """The summary as a data frame (index: model, question_id)."""
    run_dir = Path(run_dir)
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    overall = metrics[(metrics["group_var"] == "all") & metrics["metric"].isin(SUMMARY_METRICS.values())]
    table = overall.pivot_table(index=["model", "question_id"], columns="metric", values="value", aggfunc="first")
    table = table.reindex(columns=list(SUMMARY_METRICS.values()))
    table.columns = list(SUMMARY_METRICS)
    oe_path = run_dir / "order_effects.parquet"
    if oe_path.exists():
        oe = pd.read_parquet(oe_path)
        if len(oe):
            table["order JS"] = oe.groupby(["model", "question_id"])["js_divergence"].mean()
    return table


def print_summary(run_dir: str | Path, *, file=None) -> None:
    """Print the summary table with rich (plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = summary_table(run_dir)
    out = Table(title="silicon vs human (overall; JS: 0 = identical, repr.: 1 = identical, ratios: 1 = as diverse as humans)")
    out.add_column("model")
    out.add_column("question")
    for col in table.columns:
        out.add_column(col, justify="right")
    for (model, qid), row in table.iterrows():
        out.add_row(str(model), str(qid), *("—" if pd.isna(v) else f"{v:.3f}" for v in row))
    Console(file=file or sys.stdout, width=140).print(out)


if __name__ == "__main__":  # pragma: no cover - thin CLI
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "metrics.parquet").exists():
        print("usage: python -m simsurvey.summary <run_dir with metrics.parquet>", file=sys.stderr)
        sys.exit(2)
    print_summary(sys.argv[1])
