"""Errors simsurvey reports to its users.

Exception hierarchy::

    SimsurveyError
    └── UserError          a user's mistake (config, spec, instrument, data file): one line, exit 2
        ├── ConfigError    a config key has a bad value
        ├── DamagedStateError  a file of an earlier run (part, manifest, parquet, cache) is damaged
        └── RunDirError    the run directory is locked by another process or holds another run

A model's bad answer is never an exception: it is kept as a response row with ``valid=False``.
"""

from __future__ import annotations


class SimsurveyError(Exception):
    """Base class of every error simsurvey raises on purpose."""


class UserError(SimsurveyError):
    """A mistake the user can fix. Its message is one line naming the key, file or value."""


class ConfigError(UserError):
    """A config key has a bad value."""


class DamagedStateError(UserError):
    """A file simsurvey wrote earlier (a checkpoint part, the manifest, a run-dir parquet file,
    the response cache) is truncated or corrupt. The message names the file and what to do;
    the CLI prints it as one line with exit code 2. Raise it (rather than a library's own
    exception) wherever such a file is read."""


class RunDirError(UserError):
    """The run directory cannot be used as asked: another process holds it, or it was made
    with other settings than this command's (its fingerprint differs)."""
