"""The pipeline: sample -> administer -> analyze -> report, each a library call.

Each stage reads and writes files in the run directory, so a stage can run alone
(``stages=[analyze]`` on an existing run directory) and a killed run can be resumed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from simsurvey.config import Config
from simsurvey.errors import UserError
from simsurvey.io import write_parquet
from simsurvey.manifest import Manifest

log = logging.getLogger("simsurvey")

NOT_BUILT: tuple[str, ...] = ("administer", "analyze", "report")


def _read(run_dir: Path, name: str, stage: str) -> pd.DataFrame:
    path = run_dir / name
    if not path.exists():
        raise UserError(f"stages: '{stage}' needs {name} in {run_dir}; run the stage that writes it first")
    return pd.read_parquet(path)


def run(cfg: Config, run_dir: Path) -> Manifest:
    """Run the configured stages in ``run_dir`` and return the manifest."""
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.start(run_dir, config=cfg.model_dump(mode="json"), seed=cfg.seed)

    if "sample" in cfg.stages:
        from simsurvey.population import sample_personas

        t0 = time.perf_counter()
        sample = sample_personas(cfg.population, seed=cfg.seed, cue_style=cfg.design.cue)
        write_parquet(sample.frame, run_dir / "personas.parquet", kind="personas")
        manifest.stage("sample", {**sample.diagnostics, "seconds": round(time.perf_counter() - t0, 3)})
        print(f"sample: {len(sample.frame):,} personas -> {run_dir / 'personas.parquet'}")

    pending = [s for s in cfg.stages if s in NOT_BUILT]
    if pending:
        print(f"not built yet: {', '.join(pending)}")
        manifest.set("stages_not_built", pending)
    return manifest
