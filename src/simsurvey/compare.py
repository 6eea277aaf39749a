"""Compare the runs of a sweep: one tidy table of their overall metrics.

    python -m simsurvey -m +experiment=politics model=local,baseline/uniform design.cue=attributes,backstory
    python -m simsurvey.compare multirun/2026-11-23/10-00-00 [--out comparison.parquet] [--metric js_divergence]

A run directory is any directory holding ``metrics.parquet``. A run is described by its Hydra
overrides (``.hydra/overrides.yaml``) or, without them, by the config keys whose values differ
between the compared runs' manifests.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simsurvey.errors import UserError
from simsurvey.io import write_parquet
from simsurvey.io import write_bytes

COLUMNS = ["run", "overrides", "model", "question_id", "metric", "value", "ci_low", "ci_high"]


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Run directories (holding metrics.parquet) at or below each path, sorted, deduplicated.

    Raises:
        UserError: a path does not exist, or no run is found anywhere.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise UserError(f"compare: not a directory: {p}")
        if (p / "metrics.parquet").exists():
            found.append(p.resolve())
        else:
            found += sorted(m.parent.resolve() for m in p.rglob("metrics.parquet"))
    runs = sorted(dict.fromkeys(found), key=_run_sort_key)
    if not runs:
        raise UserError(f"compare: no run directories (with metrics.parquet) under {', '.join(map(str, paths))}")
    return runs


def _run_sort_key(p: Path) -> tuple[str, int, str]:
    # Hydra numbers multirun jobs 0, 1, ..., 10: sort numerically, not as text.
    return (str(p.parent), int(p.name) if p.name.isdigit() else -1, p.name)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _hydra_overrides(run: Path) -> list[str] | None:
    path = run / ".hydra" / "overrides.yaml"
    if not path.exists():
        return None
    import yaml

    items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return [str(x) for x in items]


def _manifest_config(run: Path) -> dict[str, Any]:
    path = run / "manifest.json"
    try:
        return _flatten(json.loads(path.read_text(encoding="utf-8")).get("config") or {})
    except (OSError, json.JSONDecodeError):
        return {}


def describe_runs(runs: Sequence[Path]) -> dict[Path, str]:
    """Each run's overrides: Hydra's when recorded, else the config keys that differ between runs."""
    configs = {r: _manifest_config(r) for r in runs}
    keys = sorted({k for c in configs.values() for k in c})
    varying = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs.values()}) > 1]
    out = {}
    for r in runs:
        hydra = _hydra_overrides(r)
        if hydra is not None:
            out[r] = " ".join(hydra)
        else:
            out[r] = " ".join(f"{k}={json.dumps(configs[r].get(k), default=str)}" for k in varying)
    return out


def _run_labels(runs: Sequence[Path]) -> dict[Path, str]:
    """Short unique labels: paths relative to the runs' common parent."""
    if len(runs) == 1:
        return {runs[0]: runs[0].name}
    common = Path(*Path(runs[0]).parts[: min(len(r.parts) for r in runs)])
    while not all(r.is_relative_to(common) for r in runs):
        common = common.parent
    return {r: str(r.relative_to(common)) or r.name for r in runs}


def compare_runs(paths: Sequence[Path]) -> pd.DataFrame:
    """Overall (``group_var == "all"``) metrics of several runs in one long table.

    Args:
        paths: run directories (each holding metrics.parquet).

    Returns:
        One row per run × model × question × metric with columns run, overrides, model,
        question_id, metric, value, ci_low, ci_high.

    Raises:
        UserError: a path has no metrics.parquet.
    """
    runs = [Path(p).resolve() for p in paths]
    for r in runs:
        if not (r / "metrics.parquet").exists():
            raise UserError(f"compare: no metrics.parquet in {r}")
    labels, overrides = _run_labels(runs), describe_runs(runs)
    frames = []
    for r in runs:
        m = pd.read_parquet(r / "metrics.parquet")
        if "group_var" in m.columns:
            m = m[m["group_var"].astype(str) == "all"]
        for c in ("ci_low", "ci_high"):
            if c not in m.columns:
                m = m.assign(**{c: float("nan")})
        m = m.assign(run=labels[r], overrides=overrides[r])
        frames.append(m[COLUMNS])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    for c in ("run", "overrides", "model", "question_id", "metric"):
        out[c] = out[c].astype(str)
    for c in ("value", "ci_low", "ci_high"):
        out[c] = out[c].astype(float)
    return out


def varying_overrides(overrides: Sequence[str]) -> list[str]:
    """Each run's overrides minus those every run shares (what distinguishes the runs)."""
    tokens = [o.split() for o in overrides]
    common = set.intersection(*map(set, tokens)) if tokens else set()
    return [" ".join(t for t in ts if t not in common) for ts in tokens]


def pivot(comparison: pd.DataFrame) -> pd.DataFrame:
    """Runs (and models) × metric, each cell the mean over questions.

    The run index reads ``<run> <overrides that differ between runs>``.
    """
    if comparison.empty:
        return pd.DataFrame()
    runs = comparison.drop_duplicates("run")[["run", "overrides"]]
    label = dict(zip(runs["run"], (f"{r} {v}".strip() for r, v in
                                   zip(runs["run"], varying_overrides(runs["overrides"].tolist())))))
    table = comparison.assign(run=comparison["run"].map(label))
    return table.pivot_table(index=["run", "model"], columns="metric", values="value", aggfunc="mean", sort=False)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: find runs, print the pivot, write comparison.parquet and comparison.csv."""
    ap = argparse.ArgumentParser(prog="python -m simsurvey.compare", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path, help="a sweep directory (searched recursively) or run directories")
    ap.add_argument("--out", type=Path, default=Path("comparison.parquet"),
                    help="parquet file to write; a .csv is written beside it (default: ./comparison.parquet)")
    ap.add_argument("--metric", action="append", default=None,
                    help="keep only this metric (repeatable); default: all metrics")
    args = ap.parse_args(argv)
    try:
        runs = find_runs(args.paths)
        table = compare_runs(runs)
        if args.metric:
            unknown = sorted(set(args.metric) - set(table["metric"]))
            if unknown:
                raise UserError(f"compare: --metric {unknown[0]!r} not in any run's metrics "
                                f"(have: {', '.join(sorted(set(table['metric'])))})")
            table = table[table["metric"].isin(args.metric)].reset_index(drop=True)
    except UserError as err:
        print(f"simsurvey: error: {err}", file=sys.stderr)
        return 2
    descr = table.drop_duplicates("run")[["run", "overrides"]]
    print(f"{len(runs)} run(s):")
    for _, row in descr.iterrows():
        print(f"  {row['run']}: {row['overrides'] or '(no overrides)'}")
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4f}".format):
        print(pivot(table).to_string() if len(table) else "(no overall metrics)")
    out = write_parquet(table, args.out, kind="comparison")
    csv = out.with_suffix(".csv")
    write_bytes(csv, table.to_csv(index=False).encode("utf-8"))  # atomic like every simsurvey output
    print(f"wrote {out} and {csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
