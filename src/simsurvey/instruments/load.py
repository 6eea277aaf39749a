"""Load survey instruments from YAML, with one-line errors naming the file and question."""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from simsurvey.errors import UserError
from simsurvey.instruments.models import Instrument, expand_batteries
from simsurvey.io import read_yaml


def _question_label(data: Any, loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """Turn ``questions.3.options.1.code`` into ``question 'pid7': options.1.code`` (and
    ``experiments.0.arms...`` into ``experiment '<id>': arms...``)."""
    for key, what in (("questions", "question"), ("experiments", "experiment")):
        if len(loc) >= 2 and loc[0] == key and isinstance(loc[1], int):
            ident: Any = loc[1]
            try:
                ident = data[key][loc[1]]["id"]
            except (KeyError, IndexError, TypeError):
                pass
            return f"{what} '{ident}'", loc[2:]
    return "", loc


def format_instrument_error(err: ValidationError, data: Any, *, prefix: str) -> str:
    """One line for an instrument validation error: ``<file>: question '<id>': <problem>``."""
    first = err.errors()[0]
    msg = first["msg"]
    if first["type"] == "value_error":
        # Our own validators already name the question; pydantic prepends "Value error, ".
        msg = msg.removeprefix("Value error, ")
        head, _ = _question_label(data, tuple(first["loc"]))
        if msg.startswith(("question '", "experiment '", "battery '")) or not head:
            return f"{prefix}{msg}"
        _, rest = _question_label(data, tuple(first["loc"]))
        key = ".".join(str(p) for p in rest)
        return f"{prefix}{head}: {key}: {msg}" if key else f"{prefix}{head}: {msg}"
    head, rest = _question_label(data, tuple(first["loc"]))
    key = ".".join(str(p) for p in rest)
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing required key"
    elif "input" in first and not isinstance(first["input"], (dict, list)):
        msg = f"{msg} (got {first['input']!r})"
    parts = [p for p in (head, key) if p]
    return f"{prefix}{': '.join(parts)}: {msg}" if parts else f"{prefix}{msg}"


def parse_instrument(data: Any, *, name: str = "<instrument>") -> Instrument:
    """Validate already-parsed YAML/JSON data into an :class:`Instrument`.

    Raises:
        UserError: one line ``<name>: question '<id>': <what is wrong>``.
    """
    if not isinstance(data, dict):
        raise UserError(f"{name}: expected a mapping with id, title and questions (got {type(data).__name__})")
    if "questions" in data:
        # Batteries expand first, so an error's location names the item question it is in.
        try:
            data = {**data, "questions": expand_batteries(data["questions"])}
        except ValueError as err:
            raise UserError(f"{name}: {err}") from None
    try:
        return Instrument.model_validate(data)
    except ValidationError as err:
        raise UserError(format_instrument_error(err, data, prefix=f"{name}: ")) from None


def load_instrument(path: str | os.PathLike) -> Instrument:
    """Load and validate an instrument YAML file.

    Args:
        path: The YAML file (see ``surveys/politics.yaml`` for the format).

    Returns:
        The validated, frozen instrument.

    Raises:
        UserError: missing file, YAML syntax error, or an invalid instrument; one line naming
            the file, the question and the problem.
    """
    data = read_yaml(path, what="instrument file")
    return parse_instrument(data, name=str(path))
