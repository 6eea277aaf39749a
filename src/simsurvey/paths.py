"""Where the bundled config and data live, and how a path given in the config is resolved.

``conf/`` (the Hydra config groups), ``personas/`` (population specs, seed microdata) and
``surveys/`` (instruments, derived human reference data) sit at the top of a source checkout,
where users read and edit them. A built wheel carries copies of the three inside the package, as
``simsurvey/_data/`` (``setup.py`` copies them at build time), so an installed simsurvey runs
from any directory with the same relative paths (``surveys/politics.yaml``) as a checkout.

It imports only :mod:`simsurvey.errors`, so every stage may use it without an import cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

from simsurvey.errors import UserError

#: The directories shipped as package data (one list for the build hook and the tests).
DATA_DIRS: tuple[str, ...] = ("conf", "personas", "surveys")

_PACKAGED = Path(__file__).resolve().parent / "_data"

#: Where conf/, personas/ and surveys/ live: the package's copy in an installed wheel, else the
#: top of the checkout (an editable install or ``PYTHONPATH=src`` reads the live files).
PROJECT_ROOT = _PACKAGED if (_PACKAGED / "conf").is_dir() else Path(__file__).resolve().parents[2]


def resolve_path(value: str | os.PathLike, *, key: str, must_exist: bool = True) -> Path:
    """Resolve a config path: absolute, else relative to the cwd, else to :data:`PROJECT_ROOT`.

    Raises:
        UserError: ``<key>: file not found: <value>`` when ``must_exist`` and it does not.
    """
    p = Path(value).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, PROJECT_ROOT / p]
    for c in candidates:
        if c.exists():
            return c.resolve()
    if must_exist:
        raise UserError(f"{key}: file not found: {value}")
    return candidates[-1]
