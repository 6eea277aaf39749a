"""Hydra entry point: compose the config, validate it, run the pipeline. Nothing else.

    python -m simsurvey +experiment=politics
    python -m simsurvey +experiment=politics population.n=5000 stages=[sample]
    python -m simsurvey -m +experiment=politics model=local,baseline/uniform

Exit codes: 0 done; 2 a user error (one line on stderr, nothing half-written); 3 rows failed
(their calls did not succeed, or the runner's circuit breaker stopped the run): the rows done
are kept and rerunning with ``hydra.run.dir=<run dir>`` asks the failed ones again; 130
interrupted.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# litellm fetches its cost map over the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from simsurvey.config import PROJECT_ROOT, validate_config  # noqa: E402
from simsurvey.errors import RunFailedError, UserError  # noqa: E402

CONF_DIR = PROJECT_ROOT / "conf"

# Set once Hydra has composed the config and called us: an exit before that is Hydra refusing
# the command line (unknown group option, bad override), which is a user error too (exit 2).
_composed = False


def _is_fresh(run_dir: Path) -> bool:
    """True when the run dir holds nothing of ours (only Hydra's own files)."""
    if not run_dir.exists():
        return False
    return not any(p.name not in {".hydra", "__main__.log", "simsurvey.log"} for p in run_dir.iterdir())


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    global _composed
    _composed = True
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    fresh = _is_fresh(run_dir)
    try:
        try:
            data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", "") or "<config>"
            raise UserError(f"{key}: {str(err).splitlines()[0]}") from None
        config = validate_config(data)  # type: ignore[arg-type]
        from simsurvey.pipeline import run

        result = run(config, run_dir)
        if (result.run_dir / "metrics.parquet").exists():
            from simsurvey.summary import print_summary

            print_summary(result.run_dir)
        if (result.run_dir / "report.html").exists():
            print(f"open the report: {result.run_dir / 'report.html'}")
        if result.failed_rows:
            print(f"simsurvey: {result.failed_rows:,} rows failed (see the error column of responses.parquet); "
                  f"ask them again with hydra.run.dir={run_dir}", file=sys.stderr)
            sys.exit(3)
    except RunFailedError as err:
        print(f"simsurvey: error: {err}; resume with hydra.run.dir={run_dir}", file=sys.stderr)
        sys.exit(3)
    except UserError as err:
        print(f"simsurvey: error: {err}", file=sys.stderr)
        if fresh:
            # Nothing half-written: a run that failed on a user error leaves no run directory.
            shutil.rmtree(run_dir, ignore_errors=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"simsurvey: interrupted; resume with hydra.run.dir={run_dir}", file=sys.stderr)
        sys.exit(130)


def main() -> None:
    """Console entry point (``simsurvey ...`` or ``python -m simsurvey ...``)."""
    try:
        _hydra_main()
    except SystemExit as exc:
        if exc.code == 1 and not _composed:
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
