"""Fixtures for the cost tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from costs_helpers import book_prices

from ratecard.costs.model import PriceBook


@pytest.fixture
def book() -> PriceBook:
    return PriceBook.build(book_prices(), meter_costs={"resolutions": Decimal("0.12")},
                           source="test")


@pytest.fixture
def at() -> datetime:
    return datetime(2026, 3, 10, 12, tzinfo=UTC)
