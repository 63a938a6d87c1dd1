"""The REST API under ``/v1``: ``create_app(workspace) -> FastAPI`` (see ``docs/api.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratecard.api.app import create_app as create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ratecard.api.app import create_app

        return create_app
    raise AttributeError(name)
