"""Errors simsurvey reports to its users.

Exception hierarchy::

    SimsurveyError
    └── UserError          a user's mistake (config, spec, instrument, data file): one line, exit 2
        └── ConfigError    a config key has a bad value

A model's bad answer is never an exception: it is kept as a response row with ``valid=False``.
"""

from __future__ import annotations


class SimsurveyError(Exception):
    """Base class of every error simsurvey raises on purpose."""


class UserError(SimsurveyError):
    """A mistake the user can fix. Its message is one line naming the key, file or value."""


class ConfigError(UserError):
    """A config key has a bad value."""
