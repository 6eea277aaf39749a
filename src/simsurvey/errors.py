"""Errors simsurvey reports to its users.

Exception hierarchy::

    SimsurveyError
    ├── UserError          a user's mistake (config, spec, instrument, data file): one line, exit 2
    │   ├── ConfigError    a config key has a bad value
    │   ├── DamagedStateError  a file of an earlier run (part, manifest, parquet, cache) is damaged
    │   └── RunDirError    the run directory is locked by another process or holds another run
    ├── RunFailedError     the model's calls kept failing and the run stopped (exit 3); the rows
    │                      done are kept and a resume asks the failed ones again
    └── RunPendingError    the calls were handed to a provider's batch API and the run stops
                           without waiting (``runner.batch.wait: false``): exit 0, a rerun collects

A model's bad answer is never an exception: it is kept as a response row with ``valid=False``.
:func:`format_validation_error` makes the one line of a pydantic error (config, spec, mapping).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class SimsurveyError(Exception):
    """Base class of every error simsurvey raises on purpose."""


class UserError(SimsurveyError):
    """A mistake the user can fix. Its message is one line naming the key, file or value."""


class ConfigError(UserError):
    """A config key has a bad value."""


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<config>"
    msg = first["msg"]
    if first["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")  # our own validators' messages stand alone
    from simsurvey.secrets import is_secret_key  # a leaf module; errors.py stays import-free

    secret = any(is_secret_key(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing required key"
    elif "input" in first and not isinstance(first["input"], (dict, list)) and not secret:
        msg = f"{msg} (got {first['input']!r})"
    more = len(err.errors()) - 1
    return f"{key}: {msg}" + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def format_validation_error(err: ValidationError, *, prefix: str = "") -> str:
    """One line for a pydantic error: ``<prefix><dotted key>: <what is wrong>``."""
    return prefix + _one_line(err)


class RunFailedError(SimsurveyError):
    """The run stopped because its calls kept failing (the runner's circuit breaker).

    Attributes:
        failed_rows: Rows without an answer (failed or not asked); a resume asks them again.
        stats: The runner's statistics at the stop.
    """

    def __init__(self, message: str, *, failed_rows: int = 0, stats: dict | None = None) -> None:
        super().__init__(message)
        self.failed_rows = failed_rows
        self.stats = stats or {}


class DamagedStateError(UserError):
    """A file simsurvey wrote earlier (a checkpoint part, the manifest, a run-dir parquet file,
    the response cache) is truncated or corrupt. The message names the file and what to do;
    the CLI prints it as one line with exit code 2. Raise it (rather than a library's own
    exception) wherever such a file is read."""


class RunDirError(UserError):
    """The run directory cannot be used as asked: another process holds it, or it was made
    with other settings than this command's (its fingerprint differs)."""


class RunPendingError(SimsurveyError):
    """The run's calls are in a provider's batch (submitted, not yet answered) and it stops without
    waiting for them (``runner.batch.wait: false``, or request files to run elsewhere). Not a
    failure: the CLI prints the message (what to run or when to rerun) and exits 0."""
