"""API test fixtures: an app over a fresh workspace whose state is SQLite or PostgreSQL.

``api`` (parametrised through ``state_url``) gives a :class:`~api.support.Api`: an HTTP
client on the app, the workspace, and one token per role (``api.h("admin")`` is the
header dict). Customers ``cust-a`` and ``cust-b`` exist, each with a portal token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.support import Api, make_api
from ratecard.workspace import Workspace


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
