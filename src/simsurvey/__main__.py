"""Hydra entry point: compose the config, validate it, run the pipeline. Nothing else.

    python -m simsurvey +experiment=politics
    python -m simsurvey +experiment=politics population.n=5000 stages=[sample]
    python -m simsurvey -m +experiment=politics model=local,baseline/uniform
    python -m simsurvey check +experiment=politics     # validate inputs, show composition; no model call

Exit codes: 0 done; 2 a user error (one line on stderr, nothing half-written); 3 rows failed
(their calls did not succeed, or the runner's circuit breaker stopped the run): the rows done
are kept and rerunning with ``hydra.run.dir=<run dir>`` asks the failed ones again; 130
interrupted.

A user's or the environment's mistake is one line on stderr and exit code 2, including the
ones Hydra reports itself before our code runs (an unknown key or config option, a run
directory that cannot be created): Hydra's report is held back and condensed to one line.
Everything printed or left in the run directory is scrubbed of credentials
(:func:`simsurvey.secrets.scrub`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import signal
import sys
import traceback
from pathlib import Path

# litellm fetches its cost map over the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from simsurvey.config import PROJECT_ROOT, validate_config  # noqa: E402
from simsurvey.errors import RunFailedError, RunPendingError, UserError  # noqa: E402
from simsurvey.secrets import known_secrets, scrub  # noqa: E402

CONF_DIR = PROJECT_ROOT / "conf"

# Set once Hydra has composed the config and called us: an exit before that is Hydra refusing
# the command line (unknown group option, bad override), which is a user error too (exit 2).
_composed = False
_stderr = sys.stderr  # the real stderr while Hydra's own report is held back
_held: io.StringIO | None = None


class _ScrubbedStream:
    """A text stream that scrubs what is written to it (Hydra's own console logging, which
    prints the overrides of each job of a multirun, runs before any code of ours)."""

    def __init__(self, stream: object) -> None:
        self._stream = stream
        self.secrets: tuple[str, ...] = known_secrets()

    def write(self, text: str) -> int:
        self._stream.write(scrub(text, self.secrets))  # type: ignore[attr-defined]
        return len(text)

    def __getattr__(self, name: str) -> object:  # flush, isatty, fileno, encoding...
        return getattr(self._stream, name)


class _Terminated(Exception):
    """SIGTERM outside the runner (which handles it itself while administering)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _release_stderr(secrets: tuple[str, ...] = ()) -> None:
    """Give stderr back (with anything Hydra wrote to it, scrubbed)."""
    global _held
    if _held is None:
        return
    text, held, _held = _held.getvalue(), _held, None
    sys.stderr = _stderr
    for h in logging.getLogger().handlers:  # a handler Hydra pointed at the held stream
        if isinstance(h, logging.StreamHandler) and h.stream is held:
            h.setStream(_stderr)
    if text:
        _stderr.write(scrub(text, secrets))


class _ScrubFilter(logging.Filter):
    """Scrubs every log record (the run's log file, the console)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage(), self.secrets)
        record.args = None
        return True


def _scrub_file(path: Path, secrets: tuple[str, ...]) -> None:
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if (clean := scrub(text, secrets)) != text:
            from simsurvey.io import write_bytes

            write_bytes(path, clean.encode("utf-8"))


def _write_hydra_files(cfg: DictConfig, run_dir: Path, secrets: tuple[str, ...]) -> None:
    """Write ``.hydra/{config,hydra,overrides}.yaml`` as Hydra would, but scrubbed, and only once
    the run directory has accepted this command (``conf/config.yaml`` sets
    ``hydra.output_subdir: null``, so a refused command never replaces a run's record)."""
    from simsurvey.io import write_bytes

    hc = HydraConfig.get()
    out = run_dir / ".hydra"
    files = {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": OmegaConf.to_container(hc)})),
        "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(list(hc.overrides.task))),
    }
    for name, text in files.items():
        write_bytes(out / name, scrub(text, secrets).encode("utf-8"))


def _is_fresh(run_dir: Path) -> bool:
    """True when the run dir holds nothing of ours (only Hydra's own files)."""
    if not run_dir.exists():
        return False
    return not any(p.name not in {".hydra", "__main__.log", "simsurvey.log"} for p in run_dir.iterdir())


def _remove_run_dir(run_dir: Path) -> None:
    """Remove a run directory this command created (and Hydra's empty ``outputs/<date>/`` above it)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", parent.name):
        try:
            parent.rmdir()  # only when empty: another run of that day keeps it
        except OSError:
            pass


def _error(msg: str, secrets: tuple[str, ...]) -> None:
    line = " ".join(str(msg).split())  # one line, whatever the message held
    print(f"simsurvey: error: {scrub(line, secrets)}", file=sys.stderr)


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    global _composed
    _composed = True
    try:
        raw_env = OmegaConf.select(cfg, "model.api_key_env", default=None, throw_on_missing=False)
    except OmegaConfBaseException:
        raw_env = None  # reported as a config error below
    secrets = known_secrets(str(raw_env) if raw_env else None)
    for stream in (sys.stdout, _stderr):
        if isinstance(stream, _ScrubbedStream):
            stream.secrets = secrets
    _release_stderr(secrets)
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:  # Hydra's record of the sweep holds the command line verbatim
        _scrub_file(Path(hc.sweep.dir) / "multirun.yaml", secrets)
    scrubber = _ScrubFilter(secrets)
    for h in logging.getLogger().handlers:
        h.addFilter(scrubber)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    fresh = _is_fresh(run_dir)
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", "") or "<config>"
            raise UserError(f"{key}: {str(err).splitlines()[0]}") from None
        config = validate_config(data)  # type: ignore[arg-type]
        checking = config.stages == ["check"]
        from simsurvey.pipeline import run
        from simsurvey.reproduce import reproduce_command

        reproduce = reproduce_command(OmegaConf.to_container(hc, resolve=False),  # type: ignore[arg-type]
                                      seed=config.seed, default_config_dir=CONF_DIR, secrets=secrets)
        try:
            result = run(config, run_dir, secrets=secrets,
                         on_accept=lambda: _write_hydra_files(cfg, run_dir, secrets),
                         command=sys.argv, reproduce=reproduce)
        finally:
            if checking and fresh:
                _remove_run_dir(run_dir)  # check writes nothing: no run directory is left behind
        if (result.run_dir / "metrics.parquet").exists():
            from simsurvey.summary import print_summary

            print_summary(result.run_dir)
        if (result.run_dir / "report.html").exists():
            print(f"open the report: {result.run_dir / 'report.html'}")
        if result.failed_rows:
            print(scrub(f"simsurvey: {result.failed_rows:,} rows failed (see the error column of responses.parquet); "
                        f"ask them again with hydra.run.dir={run_dir}", secrets), file=sys.stderr)
            sys.exit(3)
    except RunFailedError as err:
        _error(f"{err}; resume with hydra.run.dir={run_dir}", secrets)
        sys.exit(3)
    except RunPendingError as err:
        # Calls handed to a provider's batch API (runner.batch.wait: false): not a failure.
        print(scrub(f"simsurvey: {err}", secrets), file=sys.stderr)
        sys.exit(0)
    except (UserError, OSError) as err:
        if isinstance(err, OSError):
            # The environment's mistake (a read-only or full disk...): one line naming the file.
            where = f"{err.filename}: " if err.filename else ""
            err = UserError(f"{where}{err.strerror or err}")
        _error(str(err), secrets)
        if fresh:
            # Nothing half-written: a run that failed on a user error leaves no run directory.
            _remove_run_dir(run_dir)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"simsurvey: interrupted; resume with hydra.run.dir={run_dir}", file=sys.stderr)
        sys.exit(130)
    except _Terminated:
        print(f"simsurvey: terminated; resume with hydra.run.dir={run_dir}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except Exception:  # noqa: BLE001
        # A bug: keep the traceback (for the report), but never with a credential in it.
        print(scrub(traceback.format_exc(), secrets), file=sys.stderr, end="")
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _hydra_one_line(text: str) -> str:
    """Hydra's multi-line report of a refused command line, as one line."""
    lines = [ln.rstrip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith("Set the environment variable HYDRA_FULL_ERROR")]
    if not lines:
        return "the command line was refused"
    first = lines[0].strip()
    if m := re.match(r"Could not override '([^']+)'", first):
        if any("not in struct" in ln for ln in lines):
            return f"{m[1]}: unknown config key (a new key needs a leading +, e.g. +{m[1]}=...)"
        return " ".join(ln.strip() for ln in lines[:2])
    if m := re.search(r"Could not find '([^']+)/([^']+)'", first):
        group, opts, inside = m[1], [], False
        for ln in lines[1:]:
            if ln.startswith("Available options"):
                inside = True
            elif inside and ln.startswith("\t"):
                opts.append(ln.strip())
            else:
                inside = False
        avail = f"; available: {', '.join(opts)}" if opts else ""
        return f"{group}={m[2]}: no such config option in {group}/{avail}"
    if first.startswith("Traceback"):
        last = next((ln for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)\b", ln)), lines[-1])
        exc, _, msg = last.partition(": ")
        if exc.endswith(("FileExistsError", "NotADirectoryError")):
            path = re.search(r"'([^']+)'", msg)
            return f"hydra.run.dir: {path[1] if path else msg} is a file; a run directory must be a directory"
        if exc.endswith("PermissionError") or "Permission denied" in msg or "not permitted" in msg:
            return f"hydra.run.dir: cannot create or write the run directory: {msg}"
        return msg or exc
    return " ".join(ln.strip() for ln in lines[:2])


def _check_command(argv: list[str]) -> list[str]:
    """``simsurvey check [overrides]`` is ``simsurvey [overrides] stages=[check]`` (Hydra's parser
    takes overrides only, so the subcommand is rewritten before it parses)."""
    if len(argv) > 1 and argv[1] == "check":
        return [argv[0], *argv[2:], "stages=[check]"]
    return argv


def main() -> None:
    """Console entry point (``simsurvey ...`` or ``python -m simsurvey ...``; ``simsurvey check ...``
    validates the inputs and prints the personas' match with the human sample, calling no model)."""
    global _held, _stderr
    sys.argv = _check_command(sys.argv)
    sys.stdout = _ScrubbedStream(sys.stdout)  # type: ignore[assignment]
    _stderr = _ScrubbedStream(sys.stderr)  # type: ignore[assignment]
    _held = io.StringIO()
    sys.stderr = _held
    try:
        _hydra_main()
    except SystemExit as exc:
        if _held is not None:  # Hydra stopped before composing the config
            text = _held.getvalue()
            _held = None
            sys.stderr = _stderr
            if exc.code not in (0, None):
                print(f"simsurvey: error: {scrub(_hydra_one_line(text), known_secrets())}", file=sys.stderr)
                sys.exit(2)
            sys.stderr.write(scrub(text, known_secrets()))
        raise
    finally:
        _release_stderr()


if __name__ == "__main__":
    main()
