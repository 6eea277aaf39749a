"""The pipeline: sample -> administer -> analyze -> report, each a library call.

Each stage reads and writes files in the run directory, so a stage can run alone
(``stages=[analyze]`` on an existing run directory, via ``hydra.run.dir=...``) and a killed run
resumes where it stopped. Inputs (population spec, instrument, reference data) are all loaded
and validated before any stage writes, so a user's mistake leaves nothing half-written.

Stage imports are deferred on purpose: an analysis-only run should not pay for importing torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simsurvey.config import Config, resolve_path
from simsurvey.errors import UserError
from simsurvey.io import write_parquet
from simsurvey.manifest import Manifest
from simsurvey.respondents.config import ModelConfig
from simsurvey.seeds import derive_seed

log = logging.getLogger("simsurvey")


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` leaves behind."""

    run_dir: Path
    manifest: Manifest
    #: Response rows whose call failed (kept with their error; a rerun on the run dir asks them again).
    failed_rows: int = 0


def _read(run_dir: Path, name: str, stage: str) -> pd.DataFrame:
    path = run_dir / name
    if not path.exists():
        raise UserError(f"stages: '{stage}' needs {name} in {run_dir}; run the stage that writes it first")
    return pd.read_parquet(path)


def respondent_configs(cfg: Config) -> list[ModelConfig]:
    """The model under study followed by the configured baselines (without duplicates)."""
    configs = [cfg.model]
    for name in cfg.baselines:
        backend = f"baseline/{name}"
        if backend == cfg.model.backend:
            continue
        # "both": the baseline's distribution goes in `probs` and `answer_code` is a seeded draw
        # from it (an argmax would always pick the first of the uniform baseline's tied options).
        configs.append(ModelConfig(backend=backend, name=backend, elicitation="both"))
    return configs


def _say(msg: str) -> None:
    print(msg, flush=True)


@contextmanager
def _working(what: str) -> Iterator[None]:
    """A spinner with elapsed time on stderr while a stage without its own progress bar runs
    (the runner draws a bar per model); off under CI or when stderr is not a terminal."""
    from simsurvey.runner._progress import progress_enabled

    if not progress_enabled(True):
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        bar.add_task(what, total=None)
        yield


def run(cfg: Config, run_dir: Path) -> RunResult:
    """Run the configured stages in ``run_dir``."""
    run_dir = Path(run_dir)
    # Load and validate every input before writing anything.
    instrument = None
    if {"administer", "analyze", "report"} & set(cfg.stages):
        from simsurvey.instruments import load_instrument

        instrument = load_instrument(resolve_path(cfg.survey.instrument, key="survey.instrument"))
    reference = None
    if {"administer", "analyze"} & set(cfg.stages):
        from simsurvey.reference import load_reference, reference_provenance

        reference = load_reference(instrument, cfg.survey)
        provenance = reference_provenance(cfg.survey, instrument)

    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.start(run_dir, config=cfg.model_dump(mode="json"), seed=cfg.seed)
    timings: dict[str, float] = {}
    if reference is not None:
        manifest.set("reference", provenance)

    # 1. sample
    if "sample" in cfg.stages:
        from simsurvey.population import sample_personas

        t0 = time.perf_counter()
        with _working("sample: raking and drawing personas"):
            sample = sample_personas(cfg.population, seed=cfg.seed, cue_style=cfg.design.cue)
        personas = sample.frame
        write_parquet(personas, run_dir / "personas.parquet", kind="personas")
        timings["sample"] = time.perf_counter() - t0
        manifest.stage("sample", {**sample.diagnostics, "seconds": round(timings["sample"], 3)})
        _say(f"sample: {len(personas):,} personas -> personas.parquet")
    else:
        personas = None

    # 2. administer
    if "administer" in cfg.stages:
        from simsurvey.instruments import build_design
        from simsurvey.runner import RESPONSE_SCHEMA, administer

        personas = personas if personas is not None else _read(run_dir, "personas.parquet", "administer")
        t0 = time.perf_counter()
        trials = build_design(personas, instrument, cfg.design, seed=derive_seed(cfg.seed, "design"))
        write_parquet(reference, run_dir / "reference.parquet", kind="reference")
        frames, stats = [], {}
        for model_cfg in respondent_configs(cfg):
            result = administer(
                trials, personas, instrument,
                model=model_cfg, prompt=cfg.prompt, runner=cfg.runner, run_dir=run_dir,
                seed=derive_seed(cfg.seed, "respond", model_cfg.name), reference=reference,
            )
            frames.append(result.frame)
            stats[model_cfg.name] = result.stats
        responses = pd.concat(frames, ignore_index=True)
        write_parquet(responses, run_dir / "responses.parquet", kind="responses", schema=RESPONSE_SCHEMA)
        timings["administer"] = time.perf_counter() - t0
        manifest.stage("administer", {
            "trials": len(trials), "rows": len(responses), "models": stats,
            "seconds": round(timings["administer"], 3),
        })
        # Baselines make no calls: a row they cannot answer (no reference data) is not a failed call.
        failed = sum(int(s["errors"]) for name, s in stats.items() if not name.startswith("baseline/"))
        _say(f"administer: {len(responses):,} responses ({len(frames)} respondents) -> responses.parquet"
             + (f"; {failed:,} rows failed (kept with their error)" if failed else ""))
    else:
        responses = None
        failed = 0

    # 3. analyze
    if "analyze" in cfg.stages:
        from simsurvey.analysis import analyze

        personas = personas if personas is not None else _read(run_dir, "personas.parquet", "analyze")
        responses = responses if responses is not None else _read(run_dir, "responses.parquet", "analyze")
        if not (run_dir / "reference.parquet").exists():
            write_parquet(reference, run_dir / "reference.parquet", kind="reference")
        t0 = time.perf_counter()
        with _working("analyze: metrics, bootstrap, order effects"):
            result = analyze(responses, reference, personas, instrument, cfg.analysis,
                             seed=derive_seed(cfg.seed, "analysis"))
        write_parquet(result.metrics, run_dir / "metrics.parquet", kind="metrics")
        write_parquet(result.order_effects, run_dir / "order_effects.parquet", kind="order_effects")
        timings["analyze"] = time.perf_counter() - t0
        manifest.stage("analyze", {**result.diagnostics, "seconds": round(timings["analyze"], 3)})
        _say(f"analyze: {len(result.metrics):,} metric rows -> metrics.parquet, order_effects.parquet")

    # 4. report
    if "report" in cfg.stages:
        from simsurvey.report import export_wide, render_report

        t0 = time.perf_counter()
        with _working("report: figures, report.html, exports"):
            report = render_report(run_dir, instrument=instrument, cfg=cfg.report)
            exports = export_wide(run_dir, instrument, formats=cfg.report.export_formats)
        timings["report"] = time.perf_counter() - t0
        manifest.stage("report", {"report": report.name, "exports": [p.name for p in exports],
                                  "seconds": round(timings["report"], 3)})
        _say(f"report: {report.name}, exports: {', '.join(p.name for p in exports)}")

    manifest.set("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return RunResult(run_dir=run_dir, manifest=manifest, failed_rows=failed)
