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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simsurvey.config import Config, resolve_path
from simsurvey.errors import RunDirError, RunPendingError, UserError
from simsurvey.io import (
    RESPONSES_FIX,
    check_stored_parquet,
    read_responses,
    read_stored_parquet,
    write_parquet,
)
from simsurvey.manifest import Manifest, read_manifest
from simsurvey.respondents.config import ModelConfig
from simsurvey.seeds import derive_seed

log = logging.getLogger("simsurvey")


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` leaves behind."""

    run_dir: Path
    #: None for ``stages=[check]`` (it writes nothing).
    manifest: Manifest | None
    #: Response rows whose call failed (kept with their error; a rerun on the run dir asks them again).
    failed_rows: int = 0


# What to do about a damaged file of the run directory (ends the error line).
_FIX = {
    "personas.parquet": "rerun with 'sample' in stages to rebuild it (the same seed gives the same personas)",
    "responses.parquet": RESPONSES_FIX,
    "reference.parquet": "delete it and rerun: it is rebuilt from survey.reference (and checked against the run's fingerprint)",
    "metrics.parquet": "rerun with 'analyze' in stages to rebuild it",
    "order_effects.parquet": "rerun with 'analyze' in stages to rebuild it",
    "context_effects.parquet": "rerun with 'analyze' in stages to rebuild it",
    "treatment_effects.parquet": "rerun with 'analyze' in stages to rebuild it",
}


def _read(run_dir: Path, name: str, stage: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    path = run_dir / name
    if not path.exists():
        raise UserError(f"stages: '{stage}' needs {name} in {run_dir}; run the stage that writes it first")
    if name == "responses.parquet":  # pyarrow, only ``columns``; probs and option_order stay arrow
        return read_responses(path, columns, fix=_FIX[name])
    return read_stored_parquet(path, fix=_FIX[name])


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


def run(cfg: Config, run_dir: Path, *, secrets: Iterable[str] = (),
        on_accept: Callable[[], None] | None = None, command: Sequence[str] | None = None,
        reproduce: str | None = None) -> RunResult:
    """Run the configured stages in ``run_dir``.

    The run directory is locked for the whole run, and refused when it holds a run made with
    other answer-changing settings than ``cfg`` (see :mod:`simsurvey.rundir`).

    Args:
        cfg: The validated config.
        run_dir: The run directory (created if missing).
        secrets: Exact values never to write (see :func:`simsurvey.secrets.known_secrets`).
        on_accept: Called once the run directory is locked and has accepted this config (the
            CLI writes its record of the command line there).
        command: The command line as typed (default ``sys.argv``), for the manifest.
        reproduce: A shell command that reproduces the run (the CLI builds it from Hydra's
            record: config directory, config name, overrides, seed), for the manifest and report.

    With ``stages=[check]`` nothing is written and no model is called: the inputs are validated,
    the personas drawn, and the composition and coverage table printed (see :mod:`simsurvey.check`);
    the result's ``manifest`` is None.

    Raises:
        UserError: a bad input; personas without a human counterpart that
            ``survey.accept_uncovered`` does not accept (before any model call); the run directory
            is locked, holds another run, or holds a damaged file (:class:`~simsurvey.errors.RunDirError`,
            :class:`~simsurvey.errors.DamagedStateError`).
    """
    from simsurvey.rundir import check_fingerprint, fingerprint, lock_run_dir

    run_dir = Path(run_dir)
    stages = set(cfg.stages)
    checking = stages == {"check"}
    # Personas matched to the human sample are drawn from the reference: it is loaded first.
    matched = cfg.population.targets == "reference" and ("sample" in stages or checking)
    # Load and validate every input before writing anything.
    instrument = None
    if {"administer", "analyze", "report", "check"} & stages or matched:
        from simsurvey.instruments import load_instrument

        instrument = load_instrument(resolve_path(cfg.survey.instrument, key="survey.instrument"))
    spec = variables = reference = None
    if {"administer", "analyze", "check"} & stages or matched:
        from simsurvey.population.spec import load_population_spec
        from simsurvey.reference.load import load_reference_with_provenance

        # The population owns its attributes: the reference, baselines and subgroups read them.
        variables = load_population_spec(resolve_path(cfg.population.spec, key="population.spec")).variables
        reference, provenance = load_reference_with_provenance(instrument, cfg.survey, variables)
    # Personas that will be asked are drawn (cheap) or read before anything is written, so that
    # their match with the human sample is checked before any model call and a refusal leaves
    # nothing behind; a sample-only run draws them in its stage.
    sample = personas = None
    if checking or {"sample", "administer"} <= stages:
        sample = _draw(cfg, reference if matched else None)
        personas = sample.frame
    elif "administer" in stages and (run_dir / "personas.parquet").exists():
        personas = read_stored_parquet(run_dir / "personas.parquet", fix=_FIX["personas.parquet"])
    comp = verdict = None
    if personas is not None and reference is not None and variables is not None:
        from simsurvey.population.composition import check_accept, composition, coverage

        check_accept(cfg.survey.accept_uncovered, variables)
        comp = composition(personas, reference, variables)
        verdict = coverage(comp, cfg.survey.accept_uncovered)
    if checking:
        from simsurvey.check import check_summary

        _say(check_summary(instrument=instrument, provenance=provenance,
                           population=cfg.population.model_dump(mode="json"), sample_diag=sample.diagnostics,
                           comp=comp, verdict=verdict))
        if not verdict.ok:
            raise UserError(verdict.message)
        return RunResult(run_dir=run_dir, manifest=None)
    if "administer" in stages and verdict is not None and not verdict.ok:
        raise UserError(verdict.message)
    if {"sample", "administer"} & stages:
        spec = resolve_path(cfg.population.spec, key="population.spec")

    run_dir.mkdir(parents=True, exist_ok=True)
    with lock_run_dir(run_dir):
        read_manifest(run_dir)  # a damaged manifest stops the run before anything is written
        current = fingerprint(cfg, instrument=instrument, reference=reference, population_spec=spec)
        if cfg.population.targets == "reference" and reference is not None and {"sample", "administer"} & stages:
            from simsurvey.rundir import reference_hash

            # Matched personas depend on the human data itself, not only on the config.
            current["sample"]["population.targets: reference data"] = reference_hash(reference)
        if "analyze" in cfg.stages and "administer" not in cfg.stages:
            reference = _stored_reference(run_dir, reference, current["analyze"].get("reference data"))
        check_fingerprint(run_dir, current, cfg.stages)
        if "administer" in cfg.stages:
            from simsurvey.runner._checkpoint import check_parts

            for part in check_parts(run_dir, drop=cfg.runner.drop_damaged_parts):
                _say(f"checkpoint: dropped damaged part {part}; its rows are asked again")
        if on_accept is not None:
            on_accept()
        manifest = Manifest.start(run_dir, config=cfg.model_dump(mode="json"), seed=cfg.seed,
                                  stages=cfg.stages, secrets=secrets, command=command, reproduce=reproduce)
        try:
            if reference is not None:
                manifest.set("reference", provenance)
            if comp is not None and verdict is not None:
                manifest.set("composition", comp.to_json())
                manifest.set("coverage", {**verdict.to_json(), "accept_uncovered": cfg.survey.accept_uncovered,
                                          "targets": cfg.population.targets,
                                          "reference_source": (sample.diagnostics.get("reference_source")
                                                               if sample is not None else None)})
                if verdict.uncovered_personas and "administer" in stages:
                    _say(f"coverage: {verdict.uncovered_personas:,} of {comp.n_personas:,} personas have no human "
                         f"counterpart in {', '.join(verdict.accepted)} (accepted by survey.accept_uncovered; "
                         "counted in the report)")
            failed = _stages(cfg, run_dir, manifest, instrument=instrument, reference=reference,
                             variables=variables, sample=sample, personas=personas)
        except KeyboardInterrupt:
            manifest.finish("interrupted")
            raise
        except RunPendingError:  # the calls are in a provider's batch (runner.batch.wait: false)
            manifest.finish("pending")
            raise
        except BaseException:
            manifest.finish("failed")
            raise
        manifest.finish("finished")
    return RunResult(run_dir=run_dir, manifest=manifest, failed_rows=failed)


def _draw(cfg: Config, reference: pd.DataFrame | None) -> Any:
    """The persona sample (its drawing time in ``diagnostics["_seconds"]``, for the stage's timing)."""
    from simsurvey.population import sample_personas

    t0 = time.perf_counter()
    with _working("sample: raking and drawing personas"):
        sample = sample_personas(cfg.population, seed=cfg.seed, cue_style=cfg.design.cue, reference=reference)
    sample.diagnostics["_seconds"] = time.perf_counter() - t0
    return sample


def _stored_reference(run_dir: Path, reference: pd.DataFrame | None, digest: str | None) -> pd.DataFrame | None:
    """Re-analysis scores the stored answers against the reference the run stored; a reference
    that the config now builds differently (``digest``: its :func:`~simsurvey.rundir.reference_hash`)
    is refused: the reference baseline answered from the stored one, so the two cannot be mixed."""
    path = run_dir / "reference.parquet"
    if not path.exists():
        return reference
    from simsurvey.rundir import reference_hash

    stored = read_stored_parquet(path, fix=_FIX["reference.parquet"])
    if digest is not None and reference_hash(stored) != digest:
        raise RunDirError(
            f"survey.reference: the human reference differs from the one this run stored ({path}) and "
            "its reference baseline answered from; re-analysis reads what the run stored: start a new run "
            "(drop hydra.run.dir, or give a new directory) to compare with the new reference; the response "
            "cache serves every call already paid for"
        )
    return stored


def _stages(cfg: Config, run_dir: Path, manifest: Manifest, *, instrument: Any,
            reference: pd.DataFrame | None, variables: Any = None, sample: Any = None,
            personas: pd.DataFrame | None = None) -> int:
    """Run the configured stages; returns the number of response rows whose call failed."""
    timings: dict[str, float] = {}

    # 1. sample
    # (drawn by run() before anything was written when they are asked, so the coverage check came first)
    if "sample" in cfg.stages:
        from simsurvey.population.variables import variables_metadata

        t0 = time.perf_counter()
        if sample is None:
            sample = _draw(cfg, reference if cfg.population.targets == "reference" else None)
            personas = sample.frame
        write_parquet(personas, run_dir / "personas.parquet", kind="personas",
                      metadata=variables_metadata(sample.variables))
        timings["sample"] = float(sample.diagnostics.get("_seconds", 0.0)) + time.perf_counter() - t0
        diag = {k: v for k, v in sample.diagnostics.items() if k != "_seconds"}
        manifest.stage("sample", {**diag, "seconds": round(timings["sample"], 3)})
        targets = (f" matched to {sample.diagnostics.get('reference_source')}"
                   if sample.diagnostics.get("targets") == "reference" else "")
        _say(f"sample: {len(personas):,} personas{targets} -> personas.parquet")

    # 2. administer
    if "administer" in cfg.stages:
        from simsurvey.instruments import build_design
        from simsurvey.runner import administer
        from simsurvey.runner._checkpoint import write_responses

        personas = personas if personas is not None else _read(run_dir, "personas.parquet", "administer")
        t0 = time.perf_counter()
        trials = build_design(personas, instrument, cfg.design, seed=derive_seed(cfg.seed, "design"))
        write_parquet(reference, run_dir / "reference.parquet", kind="reference")
        selections, stats = [], {}
        for model_cfg in respondent_configs(cfg):
            result = administer(
                trials, personas, instrument,
                model=model_cfg, prompt=cfg.prompt, runner=cfg.runner, run_dir=run_dir,
                seed=derive_seed(cfg.seed, "respond", model_cfg.name), reference=reference,
                variables=variables, frame=False,
            )
            selections.append(result.selection)
            stats[model_cfg.name] = result.stats
        # Streamed from the checkpoint parts by row groups, model after model: no frame of every row.
        n_rows = write_responses(run_dir / "responses.parquet", selections)
        del selections
        timings["administer"] = time.perf_counter() - t0
        manifest.stage("administer", {
            "trials": len(trials), "rows": n_rows, "models": stats,
            "seconds": round(timings["administer"], 3),
        })
        # Baselines make no calls: a row they cannot answer (no reference data) is not a failed call.
        failed = sum(int(s["errors"]) for name, s in stats.items() if not name.startswith("baseline/"))
        _say(f"administer: {n_rows:,} responses ({len(stats)} respondents) -> responses.parquet"
             + (f"; {failed:,} rows failed (kept with their error)" if failed else ""))
        del trials
    else:
        failed = 0

    # 3. analyze
    if "analyze" in cfg.stages:
        from simsurvey.analysis import analyze
        from simsurvey.analysis.frames import ANALYSIS_COLUMNS

        personas = personas if personas is not None else _read(run_dir, "personas.parquet", "analyze")
        # Read from the file the administer stage streamed (no frame of every row was kept).
        responses = _read(run_dir, "responses.parquet", "analyze", columns=ANALYSIS_COLUMNS)
        if not (run_dir / "reference.parquet").exists():
            write_parquet(reference, run_dir / "reference.parquet", kind="reference")
        t0 = time.perf_counter()
        with _working("analyze: metrics, bootstrap, order effects"):
            result = analyze(responses, reference, personas, instrument, cfg.analysis,
                             seed=derive_seed(cfg.seed, "analysis"), variables=variables)
        write_parquet(result.metrics, run_dir / "metrics.parquet", kind="metrics")
        write_parquet(result.order_effects, run_dir / "order_effects.parquet", kind="order_effects")
        if result.context_effects is not None:
            write_parquet(result.context_effects, run_dir / "context_effects.parquet", kind="context_effects")
        if instrument.experiments:
            write_parquet(result.treatment_effects, run_dir / "treatment_effects.parquet", kind="treatment_effects")
        timings["analyze"] = time.perf_counter() - t0
        manifest.stage("analyze", {**result.diagnostics, "seconds": round(timings["analyze"], 3)})
        _say(f"analyze: {len(result.metrics):,} metric rows -> metrics.parquet, order_effects.parquet")

    # 4. report
    if "report" in cfg.stages:
        from simsurvey.report import export_wide, render_report

        for name, fix in _FIX.items():  # a damaged input is one line naming it, not a report traceback
            if (run_dir / name).exists() and "analyze" not in cfg.stages:
                check_stored_parquet(run_dir / name, fix=fix)  # decoded batch by batch, no frame
        t0 = time.perf_counter()
        with _working("report: figures, report.html, exports"):
            report = render_report(run_dir, instrument=instrument, cfg=cfg.report)
            exports = export_wide(run_dir, instrument, formats=cfg.report.export_formats)
        timings["report"] = time.perf_counter() - t0
        manifest.stage("report", {"report": report.name, "exports": [p.name for p in exports],
                                  "seconds": round(timings["report"], 3)})
        _say(f"report: {report.name}, exports: {', '.join(p.name for p in exports)}")

    return failed
