"""Job state of the batch executor: ``run_dir/batches/<model-slug>/state.json``.

Every request file submitted is one :class:`Job`: its request file and meta sidecar (the
custom_ids it holds), the provider's input file id and batch id, the last status seen and its
request counts, the output / error file ids, and what was collected. The file is rewritten
atomically (:func:`simsurvey.io.write_json`) after every step, each job recorded *before* the
provider is asked to act on it:

    written -> uploaded (input_file_id) -> submitted (batch_id) -> ended (completed / failed /
    expired / cancelled) -> collected

so a killed run knows which calls are in a live or finished batch and never submits them again.
Credentials are never stored: the state is scrubbed (:func:`simsurvey.secrets.scrub`) on write.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simsurvey.errors import DamagedStateError
from simsurvey.io import write_json
from simsurvey.secrets import scrub

#: Version of the state file's layout.
STATE_VERSION = 1
#: Provider statuses after which a batch does no more work.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled", "ended"})


@dataclass
class Job:
    """One request file and what became of it.

    Attributes:
        name: Request file stem (``req-00001``).
        n: Request lines in the file.
        bytes: Size of the request file.
        provider: ``litellm:<provider>``, ``anthropic`` or ``file``.
        stage: ``written``, ``uploaded``, ``submitted``, ``ended`` or ``collected``.
        input_file_id: The provider's id of the uploaded file.
        batch_id: The provider's batch id.
        status: The provider's last status (validating, in_progress, ..., completed / failed /
            expired / cancelled; Anthropic: in_progress / canceling / ended).
        request_counts: The provider's last counts (total, completed, failed).
        output_file_id / error_file_id: Where the results are (provider file ids, or a URL).
        errors: The provider's batch-level error (a failed batch), scrubbed.
        collected_ok: Lines answered and written to the cache.
        collected_failed: Lines that came back without an answer (resubmitted or kept as errors).
        submitted_at / ended_at / collected_at: Unix times.
        round: The executor round (pass) that wrote the file.
        est_cost_usd: The budget guard's estimate of the file at the batch price.
    """

    name: str
    n: int
    bytes: int
    provider: str
    stage: str = "written"
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: str | None = None
    collected_ok: int = 0
    collected_failed: int = 0
    submitted_at: float | None = None
    ended_at: float | None = None
    collected_at: float | None = None
    round: int = 0
    est_cost_usd: float = 0.0

    @property
    def live(self) -> bool:
        """Submitted (or being submitted) and not collected: its keys must not be submitted again."""
        return self.stage in ("written", "uploaded", "submitted", "ended")


class BatchState:
    """The jobs of one model's batch directory.

    Args:
        directory: ``run_dir/batches/<model-slug>``.
        secrets: Values scrubbed from the file (the API key).
    """

    def __init__(self, directory: Path, *, secrets: tuple[str, ...] = ()) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "state.json"
        self.secrets = secrets
        self.jobs: list[Job] = []
        self.model: str | None = None

    @classmethod
    def load(cls, directory: Path, *, secrets: tuple[str, ...] = ()) -> BatchState:
        """Read the state (an empty one when there is none yet).

        Raises:
            DamagedStateError: the file is not a state file (truncated, edited by hand).
        """
        state = cls(directory, secrets=secrets)
        if not state.path.exists():
            return state
        try:
            data = json.loads(state.path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            state.model = data.get("model")
            state.jobs = [Job(**j) for j in data["jobs"]]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            raise DamagedStateError(
                f"{state.path}: not a readable batch state ({type(err).__name__}: {err}); its batches may still be "
                "running at the provider: restore the file, or move the run's batches/ directory away to start over "
                "(live batches are then submitted again and paid twice)") from None
        return state

    def save(self) -> None:
        """Write the state atomically (scrubbed of credentials)."""
        data: dict[str, Any] = {"version": STATE_VERSION, "model": self.model, "updated_at": time.time(),
                                "jobs": [asdict(j) for j in self.jobs]}
        write_json(scrub(data, self.secrets), self.path)

    def next_number(self) -> int:
        """The number of the next request file (one more than any recorded)."""
        nums = [int(j.name.rsplit("-", 1)[1]) for j in self.jobs if j.name.rsplit("-", 1)[-1].isdigit()]
        return max(nums, default=0) + 1

    def live(self) -> list[Job]:
        """Jobs whose keys are in a live or finished, not yet collected, batch."""
        return [j for j in self.jobs if j.live]

    def request_file(self, job: Job) -> Path:
        """The request file of a job."""
        return self.directory / f"{job.name}.jsonl"

    def meta_file(self, job: Job) -> Path:
        """The meta sidecar (custom_ids, labels) of a job."""
        return self.directory / f"{job.name}.meta.jsonl"

    def output_file(self, job: Job, which: str = "out") -> Path:
        """Where a job's downloaded output (``out``) or error (``err``) lines are kept."""
        return self.directory / f"{job.name}.{which}.jsonl"

    def submitted_calls(self) -> int:
        """Calls submitted over the life of the run directory (the budget guard's count)."""
        return sum(j.n for j in self.jobs if j.stage != "written")
