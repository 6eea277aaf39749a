"""The progress bar switch."""

from __future__ import annotations

import io

from rich.console import Console

from simsurvey.runner._progress import Progress, progress_enabled


def test_off_when_not_requested_or_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert progress_enabled(False) is False
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(True) is False


def test_off_without_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: False))
    assert progress_enabled(True) is False
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    assert progress_enabled(True) is True


def test_disabled_progress_is_a_no_op():
    p = Progress("m", 10, enabled=False)
    p.update(5, rate=1.0, tokens=10, cost=0.0)
    p.close()


def test_enabled_progress_draws_rows_tokens_and_cost():
    buf = io.StringIO()

    p = Progress("openai/x", 10, enabled=True)
    p._bar.console.file = buf  # type: ignore[union-attr]
    p.update(4, rate=2.5, tokens=1234, cost=0.0123)
    p._bar.refresh()  # type: ignore[union-attr]
    p.close()
    out = buf.getvalue()
    assert "4/10" in out and "1,234 tok" in out and "$0.0123" in out and "2.5 req/s" in out
