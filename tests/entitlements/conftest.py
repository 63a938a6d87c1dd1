"""Entitlement service fixtures: the same factories as the credits tests (one definition)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parent.parent / "credits" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_credit_factories", _path)
assert _spec is not None and _spec.loader is not None
_factories = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_factories)

Env = _factories.Env
CATALOG = _factories.CATALOG
env = _factories.env
sqlite_env = _factories.sqlite_env
