"""Plan rating: base fee, seats, charges per group, minimum true-up, rounding once."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratecard.catalog import parse_catalog_text
from ratecard.errors import CatalogInvalid, UsageInvalid
from ratecard.metering.model import MeterUsage
from ratecard.money import D, quantize
from ratecard.pricing import rate_plan

CATALOG = parse_catalog_text("""
currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
  tokens: {event: llm.request, aggregation: sum, property: input_tokens, group_by: [model]}
plans:
  starter:
    name: Starter
    base_fee: 199
    charges:
      - {meter: resolutions, model: per_unit, included: 200, unit_price: "1.29"}
  committed:
    minimum: 5000
    charges:
      - meter: resolutions
        model: volume
        tiers: [{up_to: 5000, unit_price: "0.99"}, {up_to: 20000, unit_price: "0.79"},
                {up_to: null, unit_price: "0.59"}]
  by_model:
    charges:
      - meter: tokens
        model: per_unit
        per: 1000000
        prices_by: model
        prices: {a: {unit_price: "2.50"}, b: {unit_price: "0.333"}}
  strict_models:
    charges:
      - meter: tokens
        model: per_unit
        prices_by: model
        prices: {a: {unit_price: "2.50"}}
  seats:
    seats: {unit_price: 39, minimum: 3, included: 1}
""")


def usage(q: int | str) -> dict[str, MeterUsage]:
    return {"resolutions": MeterUsage("resolutions", D(q))}


def test_playbook_starter_350_resolutions() -> None:
    q = rate_plan(CATALOG, "starter", usage(350))
    assert q.total == D("392.50")  # 199 + 150 × 1.29
    assert [ln.kind for ln in q.lines] == ["base_fee", "usage"]


def test_minimum_true_up_only_when_below() -> None:
    below = rate_plan(CATALOG, "committed", usage(3000))
    assert below.subtotal == D("2970.00") and below.total == D("5000.00")
    assert below.lines[-1].kind == "minimum" and below.lines[-1].rounded == D("2030.00")
    above = rate_plan(CATALOG, "committed", usage(7000))
    assert above.total == D("5530.00") and all(ln.kind != "minimum" for ln in above.lines)


def test_dimension_pricing_one_line_per_group() -> None:
    u = {"tokens": MeterUsage("tokens", D(3_000_000), group_by=("model",),
                              groups={("a",): D(1_000_000), ("b",): D(2_000_000)})}
    q = rate_plan(CATALOG, "by_model", u)
    assert [(dict(ln.group or {}), ln.rounded) for ln in q.lines] == [
        ({"model": "a"}, D("2.50")), ({"model": "b"}, D("0.67"))]
    assert q.total == D("3.17")


def test_group_without_price_or_default_is_an_error() -> None:
    u = {"tokens": MeterUsage("tokens", D(5), group_by=("model",),
                              groups={("a",): D(1), ("zzz",): D(4)})}
    with pytest.raises(CatalogInvalid, match=r"no price for model 'zzz' and no default"):
        rate_plan(CATALOG, "strict_models", u)


def test_grouped_charge_needs_grouped_usage() -> None:
    with pytest.raises(UsageInvalid, match="not split by 'model'"):
        rate_plan(CATALOG, "by_model", {"tokens": MeterUsage("tokens", D(5))})


def test_seats_minimum_and_included() -> None:
    assert rate_plan(CATALOG, "seats", {}, seats=1).total == D(78)   # min 3, 1 included
    assert rate_plan(CATALOG, "seats", {}, seats=10).total == D(351)


@given(st.decimals(min_value=0, max_value=10**8, places=4, allow_nan=False,
                   allow_infinity=False),
       st.decimals(min_value=0, max_value=10**8, places=4, allow_nan=False,
                   allow_infinity=False))
def test_each_line_rounded_once_and_total_is_their_sum(a: Decimal, b: Decimal) -> None:
    u = {"tokens": MeterUsage("tokens", a + b, group_by=("model",),
                              groups={("a",): a, ("b",): b})}
    q = rate_plan(CATALOG, "by_model", u)
    for ln in q.lines:
        assert ln.rounded == quantize(ln.amount, "USD")
    assert q.total == sum((ln.rounded for ln in q.lines), Decimal(0))
