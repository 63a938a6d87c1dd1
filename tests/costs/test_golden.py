"""Golden cost vectors worked by hand (prices per million tokens in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from costs_helpers import MARCH_15

from ratecard.costs import (
    PriceBook,
    TokenUsage,
    Unpriced,
    cost_of_request,
    normalise_usage,
)
from ratecard.costs.rules import meter_cost


def test_cached_reads(book: PriceBook, at: datetime) -> None:
    # 1,000 × $3/M + 50,000 × $0.30/M + 2,000 × $15/M = 0.003 + 0.015 + 0.03
    u = TokenUsage(input=1000, cache_read=50_000, output=2000)
    b = cost_of_request(book, "claude-x", u, at)
    assert b.total == Decimal("0.048")
    assert [(ln.kind, ln.tokens, ln.amount) for ln in b.lines] == [
        ("input", 1000, Decimal("0.003")),
        ("cache_read", 50_000, Decimal("0.015")),
        ("output", 2000, Decimal("0.03")),
    ]
    assert b.defaults == ()
    assert b.long_context_above is None


def test_cache_writes_5m_and_1h(book: PriceBook, at: datetime) -> None:
    # 200 × 3 + 10,000 × 3.75 + 4,000 × 6 + 500 × 15 (per million)
    # = 0.0006 + 0.0375 + 0.024 + 0.0075
    u = TokenUsage(input=200, cache_write=10_000, cache_write_1h=4000, output=500)
    b = cost_of_request(book, "claude-x", u, at)
    assert b.amount("cache_write") == Decimal("0.0375")
    assert b.amount("cache_write_1h") == Decimal("0.024")
    assert b.total == Decimal("0.0696")


def test_batch_uses_batch_prices_and_halves_the_missing_ones(book: PriceBook,
                                                              at: datetime) -> None:
    # input 100,000 × 1.5 = 0.15; cache read has no batch price: half of 0.30 = 0.15/M,
    # 10,000 × 0.15 = 0.0015; output 20,000 × 7.5 = 0.15
    u = TokenUsage(input=100_000, cache_read=10_000, output=20_000, batch=True)
    b = cost_of_request(book, "claude-x", u, at)
    assert b.total == Decimal("0.3015")
    cr = b.line("cache_read")
    assert cr is not None and cr.per_million == Decimal("0.15")
    assert "half" in cr.basis
    assert any(d.startswith("cache_read: no batch price") for d in b.defaults)


def test_prompt_exactly_at_the_threshold_is_not_long_context(book: PriceBook,
                                                              at: datetime) -> None:
    # prompt = 150,000 + 50,000 = 200,000, not above 200,000: base prices
    # 150,000 × 3 + 50,000 × 0.30 + 1,000 × 15 = 0.45 + 0.015 + 0.015
    u = TokenUsage(input=150_000, cache_read=50_000, output=1000)
    b = cost_of_request(book, "claude-x", u, at)
    assert b.long_context_above is None
    assert b.total == Decimal("0.48")


def test_prompt_one_token_above_the_threshold_reprices_the_whole_request(
        book: PriceBook, at: datetime) -> None:
    # prompt = 200,001 (cached tokens count): 150,001 × 6 + 50,000 × 0.6 + 1,000 × 22.5
    # = 0.900006 + 0.03 + 0.0225
    u = TokenUsage(input=150_001, cache_read=50_000, output=1000)
    b = cost_of_request(book, "claude-x", u, at)
    assert b.long_context_above == 200_000
    assert b.total == Decimal("0.952506")
    out = b.line("output")
    assert out is not None and "above 200000" in out.basis


def test_long_context_tier_without_a_kind_keeps_the_base_price(book: PriceBook,
                                                                at: datetime) -> None:
    # the tier has no 1-hour write price: 4,000 × base 6/M = 0.024;
    # 200,001 × 6/M = 1.200006
    u = TokenUsage(input=200_001, cache_write_1h=4000)
    b = cost_of_request(book, "claude-x", u, at)
    line = b.line("cache_write_1h")
    assert line is not None and line.per_million == Decimal("6")
    assert "base price" in line.basis
    assert b.total == Decimal("1.224006")


def test_batch_above_the_threshold_halves_the_tier_price(book: PriceBook,
                                                          at: datetime) -> None:
    # 150,001 × 3 (half of 6) + 50,000 × 0.3 (half of 0.6) + 1,000 × 11.25 (half of 22.5)
    u = TokenUsage(input=150_001, cache_read=50_000, output=1000, batch=True)
    b = cost_of_request(book, "claude-x", u, at)
    assert b.total == Decimal("0.450003") + Decimal("0.015") + Decimal("0.01125")


def test_reasoning_without_a_price_is_billed_once_at_the_output_price(
        book: PriceBook, at: datetime) -> None:
    # output 5,000 of which 4,000 reasoning: 1,000 × 2 + 1,000 × 8 + 4,000 × 8 per million
    u = TokenUsage(input=1000, output=5000, reasoning=4000)
    b = cost_of_request(book, "o-x", u, at)
    assert b.total == Decimal("0.042")
    assert b.amount("output") == Decimal("0.008")
    assert b.amount("reasoning") == Decimal("0.032")
    assert any(d.startswith("reasoning: no reasoning price") for d in b.defaults)


def test_reasoning_with_its_own_price(book: PriceBook, at: datetime) -> None:
    # 1,000 × 2 + 1,000 × 8 + 4,000 × 10 per million = 0.002 + 0.008 + 0.04
    u = TokenUsage(input=1000, output=5000, reasoning=4000)
    assert cost_of_request(book, "o-r", u, at).total == Decimal("0.05")


def test_no_cache_prices_default_to_the_input_price(book: PriceBook, at: datetime) -> None:
    # 1,000 cached + 2,000 written + 3,000 written 1h at $1/M each, 0 output
    u = TokenUsage(cache_read=1000, cache_write=2000, cache_write_1h=3000)
    b = cost_of_request(book, "plain", u, at)
    assert b.total == Decimal("0.006")
    assert {d.split(":")[0] for d in b.defaults} == {"cache_read", "cache_write",
                                                     "cache_write_1h"}


def test_per_request_price(book: PriceBook, at: datetime) -> None:
    # 100 × 0 + 1,000 × 2.8/M + 0.005 per request
    b = cost_of_request(book, "search-x", TokenUsage(input=100, output=1000), at)
    assert b.total == Decimal("0.0078")
    assert b.amount("request") == Decimal("0.005")


def test_price_changes_mid_month(book: PriceBook) -> None:
    u = TokenUsage(input=1000, output=1000)
    before = cost_of_request(book, "m", u, MARCH_15 - timedelta(seconds=1))
    after = cost_of_request(book, "m", u, MARCH_15)
    assert before.total == Decimal("0.003")  # 1,000 × 1 + 1,000 × 2 per million
    assert after.total == Decimal("0.0015")  # 1,000 × 0.5 + 1,000 × 1 per million
    assert before.price.valid_to == MARCH_15 and after.price.valid_from == MARCH_15


def test_unpriced_model_raises_never_zero(book: PriceBook, at: datetime) -> None:
    with pytest.raises(Unpriced) as e:
        cost_of_request(book, "mystery-model", TokenUsage(input=10), at)
    assert e.value.code == "unpriced_model"
    assert "mystery-model" in str(e.value)


def test_output_tokens_on_a_model_without_an_output_price_are_unpriced(
        book: PriceBook, at: datetime) -> None:
    assert cost_of_request(book, "embed-x", TokenUsage(input=1000), at).total == Decimal(
        "0.00002")
    with pytest.raises(Unpriced, match="no output price"):
        cost_of_request(book, "embed-x", TokenUsage(input=1000, output=1), at)


def test_both_usage_shapes_give_the_same_cost(book: PriceBook, at: datetime) -> None:
    openai = {"prompt_tokens": 51_000, "completion_tokens": 2000, "total_tokens": 53_000,
              "prompt_tokens_details": {"cached_tokens": 50_000}}
    anthropic = {"input_tokens": 1000, "cache_read_input_tokens": 50_000,
                 "cache_creation_input_tokens": 0, "output_tokens": 2000}
    a = cost_of_request(book, "claude-x", normalise_usage(openai), at)
    b = cost_of_request(book, "claude-x", normalise_usage(anthropic), at)
    assert a.total == b.total == Decimal("0.048")


def test_meter_unit_cost(book: PriceBook) -> None:
    assert meter_cost(book, "resolutions", Decimal(250)) == Decimal("30.00")
    assert meter_cost(book, "storage_gb", Decimal(1)) is None


def test_the_total_is_the_sum_of_the_lines(book: PriceBook, at: datetime) -> None:
    u = TokenUsage(input=7, cache_read=11, cache_write=13, cache_write_1h=17, output=19,
                   reasoning=5)
    b = cost_of_request(book, "claude-x", u, at)
    assert b.total == sum((ln.amount for ln in b.lines), Decimal(0))
    assert sum(ln.tokens for ln in b.lines) == u.total


def test_a_naive_time_is_refused(book: PriceBook) -> None:
    from ratecard.errors import TimeInvalid

    with pytest.raises(TimeInvalid):
        cost_of_request(book, "plain", TokenUsage(input=1), datetime(2026, 3, 1))


def test_provider_specific_versions(at: datetime) -> None:
    from costs_helpers import rates

    from ratecard.costs.model import ModelPrice

    book = PriceBook.build([
        ModelPrice(model="llama", rates=rates(input="1", output="1")),
        ModelPrice(model="llama", provider="groq", rates=rates(input="0.5", output="0.5")),
        ModelPrice(model="llama", provider="together", region="eu",
                   rates=rates(input="2", output="2")),
    ])
    u = TokenUsage(input=1_000_000)
    assert cost_of_request(book, "llama", u, at).total == Decimal("1")
    assert cost_of_request(book, "llama", u, at, provider="groq").total == Decimal("0.5")
    assert cost_of_request(book, "llama", u, at, provider="other").total == Decimal("1")
    assert cost_of_request(book, "llama", u, at, provider="together",
                           region="eu").total == Decimal("2")
    # together outside the EU: the generic price
    assert cost_of_request(book, "llama", u, at, provider="together",
                           region="us").total == Decimal("1")


def test_two_equally_specific_prices_are_ambiguous(at: datetime) -> None:
    from costs_helpers import rates

    from ratecard.costs.model import ModelPrice

    book = PriceBook.build([
        ModelPrice(model="llama", provider="a", rates=rates(input="1", output="1")),
        ModelPrice(model="llama", provider="b", rates=rates(input="2", output="2")),
    ])
    with pytest.raises(Unpriced, match="name the provider"):
        cost_of_request(book, "llama", TokenUsage(input=1), at)
    assert cost_of_request(book, "llama", TokenUsage(input=10**6), at,
                           provider="b").total == Decimal(2)


def test_before_the_first_version_is_unpriced() -> None:
    from costs_helpers import rates

    from ratecard.costs.model import ModelPrice

    book = PriceBook.build([ModelPrice(model="new", valid_from=MARCH_15,
                                       rates=rates(input="1", output="1"))])
    with pytest.raises(Unpriced, match="no price in force"):
        cost_of_request(book, "new", TokenUsage(input=1), datetime(2026, 3, 1, tzinfo=UTC))
