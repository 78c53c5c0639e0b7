"""Fixtures of the sync tests that run against the sandbox LMS (a module may override `env`, e.g. for both
databases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sync_helpers import Env, make_env


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Any:
    """The session's sandbox LMS server (tests/conftest.py)."""
    return request.getfixturevalue("sandbox_server")


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, sqlite_url: str) -> Env:
    return make_env(tmp_path, sandbox, sqlite_url)
