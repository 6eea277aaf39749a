"""A rich progress bar for the runner: rows done / total, rate, ETA, tokens, cost.

Off when ``progress=False``, under CI (``CI`` set to a true value), or when stderr is not a
terminal, so logs stay clean.
"""

from __future__ import annotations

import os
from typing import Any


def progress_enabled(requested: bool) -> bool:
    """Whether to draw a progress bar."""
    if not requested or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    from rich.console import Console

    return Console(stderr=True).is_terminal


class Progress:
    """Progress display (a no-op when disabled).

    Args:
        label: Shown before the bar (the model id).
        total: Rows to do in this run.
        enabled: Draw it or not.
    """

    def __init__(self, label: str, total: int, *, enabled: bool) -> None:
        self._bar: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]:.1f} req/s"), TimeElapsedColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[tokens]:,} tok ${task.fields[cost]:.4f}"),
            console=Console(stderr=True), transient=False,
        )
        self._task = self._bar.add_task(label, total=total, rate=0.0, tokens=0, cost=0.0)
        self._bar.start()

    def update(self, done: int, *, rate: float, tokens: int, cost: float) -> None:
        """Set the rows done and the running totals."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=rate, tokens=tokens, cost=cost)

    def close(self) -> None:
        """Stop drawing."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
