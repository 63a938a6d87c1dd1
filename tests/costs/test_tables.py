"""The price book as tables: segments, buckets and rate rows agree with single-request pricing."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from costs_helpers import MARCH_15, book_prices, rates
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.costs import (
    TOKEN_KINDS,
    LongContextTier,
    ModelPrice,
    PriceBook,
    TokenUsage,
    Unpriced,
    cost_of_request,
)
from ratecard.costs.tables import bucket_of, bucket_prompt, price_segments, rate_row

BOOK = PriceBook.build([
    *book_prices(),
    # two providers with different thresholds and a price change for one of them
    ModelPrice(model="multi", provider="a", rates=rates(input="1", output="2"),
               long_context=(LongContextTier(1000, rates(input="2")),), valid_to=MARCH_15),
    ModelPrice(model="multi", provider="a", rates=rates(input="0.5", output="1"),
               valid_from=MARCH_15),
    ModelPrice(model="multi", provider="b", rates=rates(input="3", output="3"),
               long_context=(LongContextTier(500, rates(input="4")),
                             LongContextTier(2000, rates(input="5")))),
])


def test_segments_cut_at_every_boundary() -> None:
    segs = [s for s in price_segments(BOOK) if s.model == "m"]
    assert [(s.start, s.end) for s in segs] == [(None, MARCH_15), (MARCH_15, None)]
    (multi0, multi1) = [s for s in price_segments(BOOK, {"multi"})]
    assert multi0.thresholds == (500, 1000, 2000)
    assert multi0.representative() == MARCH_15 - timedelta(microseconds=1)
    assert multi1.representative() == MARCH_15


def test_buckets() -> None:
    th = (500, 1000, 2000)
    assert [bucket_of(th, p) for p in (0, 500, 501, 1000, 1001, 2001)] == [0, 0, 1, 1, 2, 3]
    assert [bucket_prompt(th, b) for b in range(4)] == [0, 501, 1001, 2001]
    assert all(bucket_of(th, bucket_prompt(th, b)) == b for b in range(4))


def test_unpriced_rows_carry_the_reason() -> None:
    (seg,) = price_segments(BOOK, {"multi"})[:1]
    row = rate_row(BOOK, seg, None, None, 0, False)  # two providers, none named
    assert row.version is None and row.reason and "name the provider" in row.reason
    (embed,) = price_segments(BOOK, {"embed-x"})
    r = rate_row(BOOK, embed, None, None, 0, False)
    assert r.rates["input"] == Decimal("0.00000002") and r.rates["output"] is None


usages = st.builds(
    lambda i, cr, cw, c1, o, frac, b: TokenUsage(input=i, cache_read=cr, cache_write=cw,
                                                 cache_write_1h=c1, output=o,
                                                 reasoning=int(o * frac), batch=b),
    st.integers(0, 3000), st.integers(0, 300_000), st.integers(0, 2000), st.integers(0, 2000),
    st.integers(0, 5000), st.floats(0, 1), st.booleans())
times = st.sampled_from([MARCH_15 - timedelta(days=3), MARCH_15 - timedelta(microseconds=1),
                         MARCH_15, MARCH_15 + timedelta(days=9)])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(BOOK.models())), st.sampled_from([None, "a", "b", "anthropic"]),
       usages, times)
def test_table_prices_equal_single_request_prices(model: str, provider: str | None,
                                                  u: TokenUsage, at: datetime) -> None:
    seg = next(s for s in price_segments(BOOK, {model})
               if (s.start is None or s.start <= at) and (s.end is None or at < s.end))
    row = rate_row(BOOK, seg, provider, None, bucket_of(seg.thresholds, u.prompt), u.batch)
    try:
        expected = cost_of_request(BOOK, model, u, at, provider=provider).total
    except Unpriced:
        expected = None
    if row.version is None:
        assert expected is None
        return
    if any(u.tokens(k) and row.rates[k] is None for k in TOKEN_KINDS):
        assert expected is None
        return
    total = sum((Decimal(u.tokens(k)) * row.rates[k] for k in TOKEN_KINDS  # type: ignore[misc]
                 if u.tokens(k)), Decimal(0)) + (row.per_request or 0)
    assert total == expected

