"""A workspace: the folder that holds one ratecard installation's config and data.

Layout::

    <dir>/ratecard.toml     settings (late-event window, grace period, ...)
    <dir>/state.db          transactional state (SQLite) unless RATECARD_DATABASE_URL is set
    <dir>/usage.duckdb      usage events unless RATECARD_USAGE_URL is set

The folder is ``--workspace DIR``, else ``$RATECARD_HOME``, else ``./.ratecard``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratecard.errors import NotFound

CONFIG_NAME = "ratecard.toml"

DEFAULT_CONFIG = """\
# ratecard workspace settings
[events]
# events older than this many days are rejected on ingest
late_event_days = 35
# events further than this many minutes in the future are rejected
future_tolerance_minutes = 5

[billing]
# drafts stay re-ratable for this many hours after their period ends
grace_hours = 24
"""


def default_dir() -> Path:
    return Path(os.environ.get("RATECARD_HOME") or ".ratecard")


@dataclass
class Workspace:
    path: Path
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = False) -> Workspace:
        p = Path(path) if path is not None else default_dir()
        cfg_file = p / CONFIG_NAME
        if not cfg_file.exists():
            if not create:
                raise NotFound(
                    f"no ratecard workspace at {p}; create one with `ratecard init {p}` "
                    "or pass --workspace DIR"
                )
            p.mkdir(parents=True, exist_ok=True)
            cfg_file.write_text(DEFAULT_CONFIG, encoding="utf-8")
        with cfg_file.open("rb") as f:
            config = tomllib.load(f)
        return cls(path=p, config=config)

    def setting(self, section: str, key: str, default: Any) -> Any:
        return self.config.get(section, {}).get(key, default)

    @property
    def database_url(self) -> str:
        return os.environ.get("RATECARD_DATABASE_URL") or f"sqlite:///{self.path / 'state.db'}"

    @property
    def usage_url(self) -> str:
        return os.environ.get("RATECARD_USAGE_URL") or f"duckdb:///{self.path / 'usage.duckdb'}"
