"""Helpers for the cost tests: a small hand-written price book (USD per million tokens)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ratecard.costs.model import LongContextTier, ModelPrice, TokenRates


def per_m(value: str) -> Decimal:
    """USD per million tokens → USD per token, exactly."""
    return Decimal(value).scaleb(-6)


def rates(**kw: str) -> TokenRates:
    return TokenRates(**{k: per_m(v) for k, v in kw.items()})


MARCH_15 = datetime(2026, 3, 15, tzinfo=UTC)


def book_prices() -> list[ModelPrice]:
    return [
        # Anthropic-like: cache reads, 5-minute and 1-hour writes, batch, long context
        ModelPrice(
            model="claude-x", provider="anthropic",
            rates=rates(input="3", output="15", cache_read="0.30", cache_write="3.75",
                        cache_write_1h="6"),
            batch=rates(input="1.5", output="7.5"),
            long_context=(LongContextTier(200_000, rates(input="6", output="22.5",
                                                         cache_read="0.6",
                                                         cache_write="7.5")),),
        ),
        # a reasoning model without a reasoning price, and one with
        ModelPrice(model="o-x", rates=rates(input="2", output="8")),
        ModelPrice(model="o-r", rates=rates(input="2", output="8", reasoning="10")),
        # bare input/output prices only
        ModelPrice(model="plain", rates=rates(input="1", output="2")),
        # a per-request price
        ModelPrice(model="search-x", rates=rates(input="0", output="2.8"),
                   per_request=Decimal("0.005")),
        # a price that changes on March 15
        ModelPrice(model="m", rates=rates(input="1", output="2"), valid_to=MARCH_15),
        ModelPrice(model="m", rates=rates(input="0.5", output="1"), valid_from=MARCH_15),
        # an embedding model: no output price
        ModelPrice(model="embed-x", rates=rates(input="0.02")),
    ]


