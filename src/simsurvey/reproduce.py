"""The shell command that reproduces a run, built from Hydra's record of how it was composed.

``sys.argv`` is not enough: it loses the quoting of an argument with a space, and the run's
``.hydra/overrides.yaml`` (the task overrides) loses ``--config-dir`` / ``--config-name``, so a
run composed from the user's own config directory could not be made again (exit 2: no such
experiment). Hydra's runtime record holds each of them: the config sources (a ``command-line``
source is a ``--config-dir``; a ``main`` source other than the package's ``conf/`` is a
``--config-path``), the config name, the task overrides and the working directory the relative
paths were resolved in. ``hydra.*`` overrides (the run directory) are left out on purpose: the
command makes a new run with the same settings; resuming is ``hydra.run.dir=<run dir>``. A job of
a multirun is reproduced as the single run with that job's values.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simsurvey.nested import get_path
from simsurvey.secrets import scrub


def reproduce_command(hydra: Mapping[str, Any], *, seed: int | None = None,
                      default_config_dir: Path | None = None, secrets: Sequence[str] = ()) -> str:
    """A shell command that reproduces a run.

    Args:
        hydra: Hydra's config of the run (``HydraConfig.get()`` as a container, or the ``hydra``
            entry of ``.hydra/hydra.yaml``).
        seed: The run's master seed, appended as ``seed=`` unless an override sets it (so the
            command keeps reproducing after the default seed changes).
        default_config_dir: The package's own config directory (not repeated as ``--config-path``).
        secrets: Exact values to scrub (see :func:`simsurvey.secrets.known_secrets`).

    Returns:
        ``cd <cwd> && python -m simsurvey [--config-path=...] [--config-dir=...] [--config-name=...]
        <overrides> [seed=...]``, every argument shell-quoted.
    """
    args: list[str] = []
    default = Path(default_config_dir).resolve() if default_config_dir is not None else None
    for src in get_path(hydra, "runtime", "config_sources") or []:
        if not isinstance(src, Mapping) or src.get("schema") != "file":
            continue
        path = str(src.get("path"))
        if src.get("provider") == "command-line":
            args.append(f"--config-dir={path}")
        elif src.get("provider") == "main" and (default is None or Path(path).resolve() != default):
            args.append(f"--config-path={path}")
    name = get_path(hydra, "job", "config_name")
    if name and name != "config":
        args.append(f"--config-name={name}")
    overrides = [str(o) for o in (get_path(hydra, "overrides", "task") or [])]
    if seed is not None and not any(o.lstrip("+~").startswith("seed=") for o in overrides):
        overrides.append(f"seed={seed}")
    command = shlex.join(["python", "-m", "simsurvey", *args, *overrides])
    cwd = get_path(hydra, "runtime", "cwd")
    if cwd:  # relative paths in the overrides were resolved there
        command = f"cd {shlex.quote(str(cwd))} && {command}"
    return scrub(command, tuple(secrets))
