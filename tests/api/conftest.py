"""API test fixtures: an app over a fresh workspace whose state is SQLite or PostgreSQL.

``api`` (parametrised through ``state_url``) gives a :class:`~api_support.Api`: an HTTP
client on the app, the workspace, and one token per role (``api.h("admin")`` is the
header dict). Customers ``cust-a`` and ``cust-b`` exist, each with a portal token.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratecard.workspace import Workspace

# tests import with --import-mode=importlib, which adds no folder to sys.path: make the
# helper module beside this file importable
sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_support import Api, make_api


@pytest.fixture
def api(state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The app over a fresh workspace; state on SQLite, then on PostgreSQL."""
    monkeypatch.setenv("RATECARD_DATABASE_URL", state_url)
    ws = Workspace.open(tmp_path / "ws", create=True)
    a = make_api(ws)
    with a.client:
        yield a


@pytest.fixture
def sqlite_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The app over a fresh workspace on SQLite only (for tests of the HTTP layer)."""
    monkeypatch.delenv("RATECARD_DATABASE_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", create=True)
    a = make_api(ws)
    with a.client:
        yield a
