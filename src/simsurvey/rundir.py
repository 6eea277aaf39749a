"""Run-directory integrity: one process at a time, one question per directory.

**Lock.** :func:`lock_run_dir` takes an exclusive ``fcntl.flock`` on ``<run_dir>/.lock`` for
the lifetime of a run; a second process on the same directory fails at once with one line
(the kernel drops the lock when the holder dies, so a killed run never leaves it stuck).

**Fingerprint.** Every setting that changes what ends up in the run's data files is hashed,
one hash per setting (``model.temperature``, ``prompt.persona_template``, the content of each
question, the human reference data, ...), into ``<run_dir>/fingerprint.json``. A stage records
the settings it depends on when it runs; a later command on the same directory whose stages
depend on a recorded setting with another value is refused (:func:`check_fingerprint`), naming
the settings that differ. A run directory so always answers one question: resumed rows are
never mixed with rows made under other settings, and re-analysis never scores stored answers
against another reference than the one they were made with. Starting a new run instead is
cheap: the response cache serves every call already paid for.

Only hashes are stored, never values (a value may be a credential); settings that do not
change answers (runner concurrency, retries, timeouts, the cache, ``model.api_key_env``,
``model.transport``, analysis and report settings) are not fingerprinted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from simsurvey.errors import DamagedStateError, RunDirError
from simsurvey.io import write_json
from simsurvey.secrets import is_secret_key

FINGERPRINT_FILE = "fingerprint.json"
LOCK_FILE = ".lock"
FINGERPRINT_VERSION = 1
# model settings that do not change an answer (how the key is found, how calls are sent).
_MODEL_NOT_ANSWERS = {"api_key_env", "transport"}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _without_secrets(value: Any) -> Any:
    # A credential does not change answers, and not even its hash is stored.
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not is_secret_key(k)}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _flatten(prefix: str, section: dict[str, Any], out: dict[str, Any]) -> None:
    # One key per field of the section: the key set is fixed by the config schema, so a setting
    # added to an open mapping (model.params) changes a key's hash instead of adding a key.
    for k, v in section.items():
        out[f"{prefix}.{k}"] = _without_secrets(v)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def frame_digest(df: pd.DataFrame) -> str:
    """A content hash of a data frame (column names, order and values)."""
    rows = pd.util.hash_pandas_object(df.astype("string"), index=False).to_numpy()
    return hashlib.sha256(json.dumps(list(df.columns)).encode() + rows.tobytes()).hexdigest()[:16]


def reference_hash(df: pd.DataFrame) -> str:
    """The hash of human reference rows as :func:`fingerprint` records it (``reference data``)."""
    return _digest(frame_digest(df))


def fingerprint(cfg: Any, *, instrument: Any = None, reference: pd.DataFrame | None = None,
                population_spec: Path | None = None) -> dict[str, dict[str, str]]:
    """The hashes of every answer-changing setting, grouped by the stage that depends on it.

    Args:
        cfg: The run's :class:`~simsurvey.config.Config`.
        instrument: The loaded instrument (its content is hashed, question by question).
        reference: The loaded human reference rows (hashed as data: a changed mapping or data
            file changes it even when the config does not change).
        population_spec: The resolved population spec file (its bytes are hashed).

    Returns:
        ``{stage: {setting: hash}}`` for the stages sample, administer and analyze; a stage
        also depends on the settings of the stages before it whose files it reads.
    """
    dump = cfg.model_dump(mode="json")
    sample: dict[str, Any] = {"seed": dump["seed"], "design.cue": dump["design"]["cue"]}
    population = dict(dump["population"])
    if population_spec is not None:  # what the spec says matters, not where it is
        population.pop("spec")
        sample["population.spec (file content)"] = _file_digest(population_spec)
    _flatten("population", population, sample)
    administer: dict[str, Any] = {"baselines": dump["baselines"]}
    _flatten("model", {k: v for k, v in dump["model"].items() if k not in _MODEL_NOT_ANSWERS}, administer)
    _flatten("prompt", dump["prompt"], administer)
    _flatten("design", dump["design"], administer)
    analyze: dict[str, Any] = {}
    if instrument is not None:
        inst = instrument.model_dump(mode="json")
        analyze["instrument"] = {k: v for k, v in inst.items() if k != "questions"} | {
            "questions": [q["id"] for q in inst["questions"]]}
        for q in inst["questions"]:
            refs = q.pop("reference", [])
            analyze[f"instrument question '{q['id']}'"] = q
            analyze[f"reference mapping of '{q['id']}'"] = refs
    if reference is not None:
        analyze["survey.reference"] = dump["survey"]["reference"]
        analyze["survey.combine"] = dump["survey"]["combine"]
        analyze["reference data"] = frame_digest(reference)
    return {
        "sample": {k: _digest(v) for k, v in sample.items()},
        "administer": {k: _digest(v) for k, v in administer.items()},
        "analyze": {k: _digest(v) for k, v in analyze.items()},
    }


def depends_on(stages: Iterable[str]) -> tuple[str, ...]:
    """Fingerprint groups the given stages depend on (administer answers the instrument and
    gives the reference to the baselines, so it depends on everything; analyze and report read
    the stored personas and responses, so only on the instrument and the reference)."""
    stages = set(stages)
    if "administer" in stages:
        return ("sample", "administer", "analyze")
    groups: list[str] = []
    if "sample" in stages:
        groups.append("sample")
    if stages & {"analyze", "report"}:
        groups.append("analyze")
    return tuple(groups)


def read_fingerprint(run_dir: Path) -> dict[str, dict[str, str]]:
    """The recorded fingerprint of a run directory ({} for a new one).

    Raises:
        DamagedStateError: the file is unreadable.
    """
    path = Path(run_dir) / FINGERPRINT_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        groups = data["settings"]
        if not isinstance(groups, dict) or not all(isinstance(g, dict) for g in groups.values()):
            raise TypeError
        return groups
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise DamagedStateError(
            f"{path}: damaged run fingerprint; this run's settings cannot be checked: start a new run "
            "(drop hydra.run.dir, or give a new directory); the response cache serves every call already paid for"
        ) from None


def check_fingerprint(run_dir: Path, current: dict[str, dict[str, str]], stages: Iterable[str]) -> None:
    """Refuse a command whose stages depend on settings recorded in ``run_dir`` with other values;
    then record the settings of these stages.

    Raises:
        RunDirError: one line naming the settings that differ and how to start a new run.
        DamagedStateError: the recorded fingerprint is unreadable.
    """
    run_dir = Path(run_dir)
    stored = read_fingerprint(run_dir)
    groups = depends_on(stages)
    differ = [key for g in groups for key, h in current.get(g, {}).items()
              if key in stored.get(g, {}) and stored[g][key] != h]
    # The settings of sample and administer are a fixed set: one recorded but gone now (or new
    # now, once recorded) is a difference too. The analyze group holds the reference only when
    # this command loaded it.
    for g in ("sample", "administer"):
        if g in groups and stored.get(g):
            differ += sorted(set(stored[g]) ^ set(current.get(g, {})))
    if differ:
        shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        raise RunDirError(
            f"hydra.run.dir={run_dir}: this run was made with other settings ({shown}); a run directory "
            "answers one question, so it is not resumed or re-analysed under changed settings: start a new "
            "run (drop hydra.run.dir, or give a new directory); the response cache serves every call already paid for"
        )
    merged = {g: dict(stored.get(g, {})) for g in ("sample", "administer", "analyze")}
    for g in groups:
        merged[g].update(current.get(g, {}))
    if merged != {g: stored.get(g, {}) for g in merged}:
        write_json({"fingerprint_version": FINGERPRINT_VERSION, "settings": merged}, run_dir / FINGERPRINT_FILE)


@contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` for the duration of the block.

    Raises:
        RunDirError: another process holds the lock (one line with its pid).
    """
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(
                f"hydra.run.dir={run_dir}: another simsurvey process (pid {holder}) is using this run "
                "directory; wait for it to finish, or use another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
