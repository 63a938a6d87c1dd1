"""Invariants of the cost rules, checked on generated prices and usage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.costs import (
    TOKEN_KINDS,
    LongContextTier,
    ModelPrice,
    TokenRates,
    TokenUsage,
    cost_with_price,
    normalise_usage,
)

AT = datetime(2026, 3, 1, tzinfo=UTC)

# prices per million with up to 12 decimals, as the issue requires
price_pm = st.decimals(min_value=0, max_value=100, places=12, allow_nan=False,
                       allow_infinity=False)
maybe = st.one_of(st.none(), price_pm)
counts = st.integers(min_value=0, max_value=400_000)


@st.composite
def model_prices(draw: st.DrawFn) -> ModelPrice:
    def tr(required: bool = False) -> TokenRates:
        vals = {k: draw(maybe) for k in TOKEN_KINDS}
        if required:
            vals["input"] = draw(price_pm)
            vals["output"] = draw(price_pm)
        return TokenRates(**{k: v.scaleb(-6) for k, v in vals.items() if v is not None})

    base = tr(required=True)
    # a batch price is a discount: at most half the standard price of its kind
    batch = TokenRates(**{
        k: (v if (std := base.get(k)) is None else min(v, std / 2))
        for k, v in tr().given().items()})
    tiers = []
    if draw(st.booleans()):
        # a long-context tier never cheaper than the base (as every provider prices it)
        up = {k: v + draw(price_pm).scaleb(-6) for k, v in base.given().items()}
        tiers.append(LongContextTier(draw(st.integers(1, 300_000)), TokenRates(**up)))
    per_request = draw(st.one_of(st.none(), price_pm))
    return ModelPrice(model="m", rates=base, batch=batch, long_context=tuple(tiers),
                      per_request=per_request)


@st.composite
def usages(draw: st.DrawFn) -> TokenUsage:
    output = draw(counts)
    return TokenUsage(input=draw(counts), cache_read=draw(counts), cache_write=draw(counts),
                      cache_write_1h=draw(counts), output=output,
                      reasoning=draw(st.integers(0, output)), batch=draw(st.booleans()))


BUCKETS = ("input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning")


@settings(max_examples=150, deadline=None)
@given(model_prices(), usages(), st.sampled_from(BUCKETS), st.integers(1, 300_000))
def test_cost_is_non_decreasing_in_every_token_count(price: ModelPrice, u: TokenUsage,
                                                      bucket: str, more: int) -> None:
    change = {bucket: getattr(u, bucket) + more}
    if bucket == "reasoning":  # reasoning is a part of output: more reasoning, more output
        change["output"] = u.output + more
    bigger = replace(u, **change)
    assert cost_with_price(price, bigger, AT).total >= cost_with_price(price, u, AT).total


@settings(max_examples=150, deadline=None)
@given(model_prices(), usages())
def test_total_is_exact_sum_of_lines(price: ModelPrice, u: TokenUsage) -> None:
    b = cost_with_price(price, u, AT)
    assert b.total == sum((ln.amount for ln in b.lines), Decimal(0))
    assert all(ln.amount == ln.unit_price * ln.tokens for ln in b.lines)
    assert b.total >= 0


@settings(max_examples=150, deadline=None)
@given(counts, counts, counts, counts, counts)
def test_every_usage_shape_agrees(uncached: int, cached: int, written: int, answer: int,
                                  reasoning: int) -> None:
    real = TokenUsage(input=uncached, cache_read=cached, cache_write=written,
                      output=answer + reasoning, reasoning=reasoning)
    openai = {"prompt_tokens": uncached + cached + written,
              "completion_tokens": answer + reasoning,
              "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
              "completion_tokens_details": {"reasoning_tokens": reasoning}}
    anthropic = {"input_tokens": uncached, "cache_read_input_tokens": cached,
                 "cache_creation_input_tokens": written, "output_tokens": answer + reasoning}
    canonical = {"input_tokens": uncached, "cache_read_tokens": cached,
                 "cache_write_tokens": written, "output_tokens": answer + reasoning,
                 "reasoning_tokens": reasoning}
    assert normalise_usage(openai) == real
    assert normalise_usage(canonical) == real
    # Anthropic does not report reasoning apart: same tokens, same cost at any price
    a = normalise_usage(anthropic)
    assert replace(a, reasoning=reasoning) == real
    price = ModelPrice(model="m", rates=TokenRates(
        input=Decimal("3E-6"), cache_read=Decimal("3E-7"), cache_write=Decimal("3.75E-6"),
        output=Decimal("0.000015")))
    assert cost_with_price(price, a, AT).total == cost_with_price(price, real, AT).total


@settings(max_examples=100, deadline=None)
@given(model_prices(), usages())
def test_batch_without_batch_prices_costs_half_of_the_tokens(price: ModelPrice,
                                                              u: TokenUsage) -> None:
    price = replace(price, batch=TokenRates(), long_context=tuple(
        replace(t, batch=TokenRates()) for t in price.long_context))
    std = cost_with_price(price, replace(u, batch=False), AT)
    bat = cost_with_price(price, replace(u, batch=True), AT)
    per_request = price.per_request or Decimal(0)
    assert (bat.total - per_request) * 2 == std.total - per_request
