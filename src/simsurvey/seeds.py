"""Derived seeds: one master seed, an independent stream per purpose.

``derive_seed(seed, "design")`` is stable across Python versions and processes (SHA-256, not
``hash()``), so each stage's randomness can change without shifting the others.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed derived from ``seed`` and a path of names."""
    text = ":".join([str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
