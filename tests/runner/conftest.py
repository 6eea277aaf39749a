"""Fixtures of the runner tests: a tiny instrument, personas and design, and the fake server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The fake server lives in tests/support (a site-packages "tests" package shadows ours).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from fake_openai import FakeOpenAI, ServerThread  # noqa: E402
from runner_data import make_instrument  # noqa: E402

from simsurvey.instruments.models import Instrument  # noqa: E402


@pytest.fixture
def instrument() -> Instrument:
    return make_instrument()


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def server(fake: FakeOpenAI):
    srv = ServerThread(fake).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never touch the user's cache from a test.
    monkeypatch.setenv("SIMSURVEY_CACHE_DIR", str(tmp_path / "cache-env"))
