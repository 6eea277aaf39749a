"""Errors simsurvey reports to its users.

Exception hierarchy::

    SimsurveyError
    ├── UserError          a user's mistake (config, spec, instrument, data file): one line, exit 2
    │   └── ConfigError    a config key has a bad value
    └── RunFailedError     the model's calls kept failing and the run stopped (exit 3); the rows
                           done are kept and a resume asks the failed ones again

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
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing required key"
    elif "input" in first and not isinstance(first["input"], (dict, list)):
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
