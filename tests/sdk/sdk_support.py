"""SDK test helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

from ratecard.workspace import Workspace


@dataclass
class Live:
    """A server running in a thread: its URL, workspace and one token per role."""

    url: str
    ws: Workspace
    tokens: dict[str, str] = field(default_factory=dict)
