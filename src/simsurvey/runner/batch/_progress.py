"""The progress bar of batch polling: requests done / total over the live batches, and an ETA.

Counts are the providers' ``request_counts``; off under CI or without a terminal, like the
runner's bar (:func:`simsurvey.runner._progress.progress_enabled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simsurvey.runner._progress import progress_enabled
from simsurvey.runner.batch._state import Job


class BatchProgress:
    """Progress of the live batches (a no-op when disabled).

    Args:
        label: The model id.
        enabled: Requested (``progress=True``); still off under CI or without a terminal.
    """

    def __init__(self, label: str, *, enabled: bool) -> None:
        self._bar: Any = None
        if not progress_enabled(enabled):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[batches]} batch(es) {task.fields[status]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self._task = self._bar.add_task(f"{label} (batch)", total=None, batches=0, status="")
        self._bar.start()

    def update(self, live: Sequence[Job]) -> None:
        """Show the counts of the batches still running."""
        if self._bar is None:
            return
        total = sum(j.request_counts.get("total") or j.n for j in live)
        done = sum((j.request_counts.get("completed") or 0) + (j.request_counts.get("failed") or 0) for j in live)
        status = ", ".join(sorted({j.status or "?" for j in live}))
        self._bar.update(self._task, total=total or None, completed=done, batches=len(live), status=status)

    def close(self) -> None:
        """Stop drawing."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
