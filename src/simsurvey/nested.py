"""Reading nested config / manifest dicts (a leaf module: the CLI imports it at start-up)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def get_path(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, or None as soon as a level is missing or not a mapping."""
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d
