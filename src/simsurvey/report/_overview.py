"""The overview section: run settings, sizes, cost, validity, the human reference, how to reproduce."""

from __future__ import annotations

from typing import Any

import pandas as pd

from simsurvey.report import _html as H
from simsurvey.report._context import Ctx, get_path
from simsurvey.report._data import RunData


def _reproduce_command(data: RunData) -> str:
    """The command that reproduces the run: the manifest's record (built from Hydra's, with the
    config directory, config name and quoting kept), else rebuilt from ``.hydra/hydra.yaml`` (a run
    made before the manifest recorded it), else its task overrides or recorded command line."""
    from simsurvey.reproduce import reproduce_command
    from simsurvey.secrets import scrub

    seed = data.manifest.get("seed")
    if data.manifest.get("reproduce"):
        return scrub(str(data.manifest["reproduce"]))
    hydra_yaml = data.run_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.exists():
        import yaml

        from simsurvey.paths import PROJECT_ROOT

        try:
            hydra = (yaml.safe_load(hydra_yaml.read_text(encoding="utf-8")) or {}).get("hydra") or {}
        except (OSError, yaml.YAMLError):
            hydra = {}
        if hydra:
            return reproduce_command(hydra, seed=seed, default_config_dir=PROJECT_ROOT / "conf")
    import shlex

    overrides = data.run_dir / ".hydra" / "overrides.yaml"
    if overrides.exists():  # the task overrides alone (a run directory without Hydra's full record)
        import yaml

        items = [str(x) for x in (yaml.safe_load(overrides.read_text(encoding="utf-8")) or [])]
    else:
        try:
            argv = shlex.split(str(data.manifest.get("command", "")))
        except ValueError:
            argv = str(data.manifest.get("command", "")).split()
        items = argv[1:]
    if seed is not None and not any(i.startswith("seed=") for i in items):
        items.append(f"seed={seed}")
    return scrub(shlex.join(["python", "-m", "simsurvey", *items]))


def targets_sentence(manifest: dict[str, Any]) -> str:
    """One sentence: which targets the personas were drawn to (the spec's, or the human sample's)."""
    sample = get_path(manifest, "stages", "sample") or {}
    targets = sample.get("targets") or get_path(manifest, "config", "population", "targets") or "spec"
    name = sample.get("spec_name") or get_path(manifest, "config", "population", "spec") or "the population spec"
    if targets == "reference":
        src = sample.get("reference_source") or "the human reference"
        others = [s for s in (get_path(manifest, "composition", "sources") or {}) if s != src]
        rest = (f" The other human sources ({', '.join(others)}) have compositions of their own: see \"Personas "
                "and the human sample\"." if others else "")
        return (f"The personas were drawn to the weighted composition of the human sample {src} (targets: "
                f"reference, raked onto its own microdata), so a distance to {src} measures fidelity, not "
                f"composition.{rest}")
    return (f"The personas were drawn to the population spec's own figures ({name}, targets: spec), not to the "
            "human sample's composition: a distance mixes fidelity with the difference in composition shown under "
            "\"Personas and the human sample\" (population.targets=reference draws personas that match it).")


def _administer_totals(adm: Any) -> dict[str, float]:
    """Tokens, cost and cache hits of the administer stage (top level, or summed over its models)."""
    if not isinstance(adm, dict) or not adm:
        return {}
    keys = ("prompt_tokens", "completion_tokens", "cost_usd", "cached")
    parts = [adm] if any(k in adm for k in keys) else [v for v in (adm.get("models") or {}).values() if isinstance(v, dict)]
    if not parts:
        return {}
    return {k: float(sum(float(part.get(k, 0) or 0) for part in parts)) for k in keys}


def overview(ctx: Ctx) -> str:
    """Run settings, sizes, cost, validity, the human reference, how to reproduce."""
    data, man = ctx.data, ctx.data.manifest
    cfg = man.get("config") or {}
    stages = man.get("stages") or {}
    adm = stages.get("administer") or {}
    seconds = sum(float(s.get("seconds", 0) or 0) for s in stages.values() if isinstance(s, dict))
    r, p, h = data.responses, data.personas, data.reference
    spent = _administer_totals(adm)
    items: list[tuple[str, Any]] = [
        ("models", ", ".join(ctx.models) or "–"),
        ("model config", ", ".join(f"{k}={v}" for k, v in (cfg.get("model") or {}).items()) or "–"),
        ("population", ", ".join(f"{k}={v}" for k, v in (cfg.get("population") or {}).items()) or "–"),
        ("instrument", (data.instrument.title if data.instrument else None) or get_path(cfg, "survey", "instrument") or "–"),
        ("design", ", ".join(f"{k}={v}" for k, v in (cfg.get("design") or {}).items()) or "–"),
        ("personas", f"{len(p):,}" if p is not None else "missing"),
        ("responses", f"{len(r):,} rows" if r is not None else "missing"),
        ("questions", len(data.question_ids)),
        ("conditions", r["condition_id"].nunique() if r is not None and "condition_id" in r.columns else "–"),
        ("started", man.get("started_at", "–")),
        ("time in stages", f"{seconds:,.1f} s" if seconds else "–"),
        ("tokens spent (prompt / completion)",
         f"{int(spent['prompt_tokens']):,} / {int(spent['completion_tokens']):,}" if spent else "–"),
        ("cost", f"${spent['cost_usd']:,.4f}" if spent else "–"),
        ("answers from cache", f"{int(spent['cached']):,}" if spent else "–"),
        ("seed", man.get("seed", "–")),
    ]
    out = [H.kv(items), H.para(targets_sentence(man))]
    if r is not None and "model" in r.columns:
        rows = []
        for m in ctx.models:
            g = r[r["model"] == m]
            if g.empty:
                continue
            valid = g["valid"].fillna(False).astype(bool) if "valid" in g else pd.Series(True, index=g.index)
            refusal = g["refusal"].fillna(False).astype(bool) if "refusal" in g else pd.Series(False, index=g.index)
            rows.append([
                H.esc(m), H.fmt_num(len(g)), f"{100 * (~valid).mean():.1f}%", f"{100 * refusal.mean():.1f}%",
                H.fmt_num(g["prompt_tokens"].sum() if "prompt_tokens" in g else None),
                H.fmt_num(g["cost_usd"].sum() if "cost_usd" in g else None, 4),
                H.fmt_num(g["latency_s"].mean() if "latency_s" in g else None, 3),
            ])
        out.append("<h3>Answer quality by model</h3>")
        out.append(H.table(["model", "rows", "invalid", "refusals", "prompt tokens", "cost ($)", "mean latency (s)"],
                           rows, numeric=[False] + [True] * 6, raw=True))
        out.append(H.para("Invalid answers (no option could be read from the model's text) and refusals are kept "
                          "in responses.parquet with their raw text; they are left out of every distribution below."))
    out.append("<h3>The human reference</h3>")
    if h is not None and "question_id" in h.columns:
        src = h.groupby(h["source"].astype(str) if "source" in h else pd.Series("reference", index=h.index))
        rows = [[s, H.fmt_num(g["respondent_id"].nunique() if "respondent_id" in g else len(g)),
                 ", ".join(sorted(g["question_id"].astype(str).unique()))] for s, g in src]
        out.append(H.table(["source", "respondents", "questions"], rows, numeric=[False, True, False]))
    out.append(_provenance(man.get("reference")))
    out.append(H.para(
        "What the human reference is: answers of real survey respondents (weighted only where the source "
        "ships weights: see each source's weights line above), with the survey's own sampling error, "
        "nonresponse, population and fieldwork year, which need not match the personas' population. What it "
        "is not: the population itself, nor the same people as the personas. Every distance is read "
        "against its sampling null: what a perfect silicon sample of the same effective size would score "
        "against this human sample; differences it explains (p > 0.05) are not evidence of anything."))
    out.append("<h3>Reproduce this run</h3>")
    out.append(f"<pre>{H.esc(_reproduce_command(data))}</pre>")
    for n in [*data.notes, *ctx.analysis_notes]:
        out.append(H.note(n))
    return "".join(out)


_PROVENANCE_KEYS = ("title", "source", "sample", "weights", "demographics", "description", "file", "rows",
                    "package", "package_version")


def _provenance(prov: Any) -> str:
    """The manifest's ``reference`` record: per source what the sample is; per question its variable."""
    if not isinstance(prov, dict) or not prov:
        return H.note("The manifest records no provenance for the human reference.")
    out = []
    for sid, info in (prov.get("sources") or {}).items():
        info = info if isinstance(info, dict) else {"source": info}
        out.append(f"<h4>{H.esc(sid)}</h4>")
        out.append(H.kv((k, info[k]) for k in _PROVENANCE_KEYS if info.get(k) not in (None, "")))
    rows = [[qid, e.get("source"), e.get("variable"), H.fmt_num(e.get("n")), H.fmt_num(e.get("n_missing_dropped"))]
            for qid, entries in (prov.get("questions") or {}).items() if isinstance(entries, list)
            for e in entries if isinstance(e, dict)]
    if rows:
        out.append(H.table(["question", "source", "variable", "answers", "missing answers dropped"],
                           [[H.esc(c) if i < 3 else c for i, c in enumerate(r)] for r in rows],
                           numeric=[False, False, False, True, True], raw=True))
    if prov.get("no_reference"):
        out.append(H.note("No human reference for: " + ", ".join(map(str, prov["no_reference"]))
                          + ". Those questions are shown without a human comparison."))
    other = [(k, v) for k, v in prov.items() if k not in ("sources", "questions", "no_reference")
             and not isinstance(v, (dict, list))]
    if other:
        out.append(H.kv(other))
    return "".join(out)
