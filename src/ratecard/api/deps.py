"""What routes share: the workspace of the app and a transaction per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from ratecard.store.state import session_scope
from ratecard.workspace import Workspace


def workspace_of(request: Request) -> Workspace:
    ws = request.app.state.workspace
    assert isinstance(ws, Workspace)
    return ws


def usage_store_of(request: Request) -> Any:
    """The app's usage store, shared by every request (opened on first use)."""
    from ratecard.api.usage import usage_store

    return usage_store(request.app)


@contextmanager
def transaction(request: Request) -> Iterator[Session]:
    """A session that commits when the block succeeds (the request owns the transaction)."""
    with session_scope(workspace_of(request)) as session:
        yield session
