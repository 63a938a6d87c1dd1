"""Fixtures for the cost tests."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

# Tests import with --import-mode=importlib, which adds no folder to sys.path: make
# this folder's helper module importable for the tests beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from costs_helpers import book_prices

from ratecard.costs.model import PriceBook


@pytest.fixture
def book() -> PriceBook:
    return PriceBook.build(book_prices(), meter_costs={"resolutions": Decimal("0.12")},
                           source="test")


@pytest.fixture
def at() -> datetime:
    return datetime(2026, 3, 10, 12, tzinfo=UTC)
