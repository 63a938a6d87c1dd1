"""Invariants of the price models and of money (hypothesis)."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.catalog.schema import Tier
from ratecard.money import allocate, minor_units, quantize
from ratecard.pricing.graduated import price_graduated
from ratecard.pricing.per_unit import price_per_unit
from ratecard.pricing.volume import price_volume

quantities = st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False,
                         allow_infinity=False)
prices = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False,
                     allow_infinity=False)


@st.composite
def tier_lists(draw: st.DrawFn) -> list[Tier]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 10**6), min_size=0, max_size=5))))
    tiers = [Tier(up_to=Decimal(b), unit_price=draw(prices), flat_fee=draw(prices))
             for b in bounds]
    tiers.append(Tier(up_to=None, unit_price=draw(prices), flat_fee=draw(prices)))
    return tiers


@settings(max_examples=300)
@given(tier_lists(), quantities, quantities)
def test_graduated_is_non_decreasing(tiers: list[Tier], a: Decimal, b: Decimal) -> None:
    lo, hi = sorted((a, b))
    assert price_graduated(lo, tiers=tiers).amount <= price_graduated(hi, tiers=tiers).amount


@given(quantities, prices, quantities)
def test_one_tier_graduated_equals_per_unit(q: Decimal, p: Decimal, inc: Decimal) -> None:
    tiers = [Tier(up_to=None, unit_price=p)]
    assert (price_graduated(q, tiers=tiers, included=inc).amount
            == price_per_unit(q, unit_price=p, included=inc).amount)


@given(quantities, prices, prices)
def test_one_tier_volume_equals_one_tier_graduated(q: Decimal, p: Decimal, fee: Decimal) -> None:
    tiers = [Tier(up_to=None, unit_price=p, flat_fee=fee)]
    assert price_volume(q, tiers=tiers).amount == price_graduated(q, tiers=tiers).amount


@given(tier_lists(), quantities)
def test_graduated_breakdown_sums_to_amount(tiers: list[Tier], q: Decimal) -> None:
    r = price_graduated(q, tiers=tiers)
    assert sum(s.amount for s in r.breakdown) == r.amount
    assert sum(s.quantity for s in r.breakdown) == q


currencies = st.sampled_from(["USD", "JPY", "KWD", "CNY", "EUR"])


@given(st.decimals(min_value=-10**7, max_value=10**7, places=6, allow_nan=False,
                   allow_infinity=False),
       st.lists(st.integers(0, 10**6), min_size=1, max_size=12), currencies)
def test_allocate_conserves_every_minor_unit(total: Decimal, weights: list[int], cur: str) -> None:
    parts = allocate(total, weights, cur)
    assert sum(parts) == quantize(total, cur)
    assert len(parts) == len(weights)
    q = Decimal(1).scaleb(-minor_units(cur))
    for p in parts:
        assert p == p.quantize(q)
    if any(weights) and total >= 0:
        for p, w in zip(parts, weights, strict=True):
            if w == 0:
                assert p == 0
