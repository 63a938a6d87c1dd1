"""The three-tier generator: worked by hand, the playbook's ranges, and the margin floor
checked with the real rating engine on the generated catalog."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.advisor.archetypes import ARCHETYPES
from ratecard.advisor.decision import BillingUnit, ChargeMetric
from ratecard.advisor.lint import lint_catalog
from ratecard.advisor.tiers import (
    MeterSpec,
    Tier,
    TierDesign,
    build_catalog,
    catalog_yaml,
    design_tiers,
)
from ratecard.catalog import Catalog, parse_catalog_text
from ratecard.errors import InvalidInput
from ratecard.metering.model import MeterUsage
from ratecard.pricing import rate_plan

D = Decimal
AGENT = ARCHETYPES["agent"]
COPILOT = ARCHETYPES["copilot"]


def test_three_tiers_worked_by_hand() -> None:
    # Pro price 2.74 per resolution, 1,000 a month, cost 0.12, agent target 50%; defaults
    # s = 0.4, r = 1.5, k = 4, d = 0.2: allocation share r·s/(r·s + 1 - s) = 0.6/1.2 = 0.5
    starter, pro, ent = design_tiers(archetype=AGENT, unit_price=D("2.74"),
                                     expected_volume=D(1000), cost_per_unit=D("0.12"),
                                     target_margin=D("0.5"))
    assert [t.included for t in (starter, pro, ent)] == [125, 500, 2000]
    # Starter: price 2.74 / 0.8 = 3.425, volume 250: fee 0.4 × 250 × 3.425 = 342.5 -> 343
    assert starter.platform_fee == D(343)
    assert starter.overage_price == D("4.12")          # 1.5 × 343 / 125 = 4.116 -> 4.12
    # Pro: fee 0.4 × 1000 × 2.74 = 1096 -> 1100; overage 1.5 × 1100 / 500 = 3.30
    assert pro.platform_fee == D(1100)
    assert pro.overage_price == D("3.30")
    # Enterprise: price 2.192, volume 4000: fee 3507.2 -> 3510; overage 2.6325 -> 2.64,
    # then volume steps 2.64 × 0.8 = 2.112 -> 2.12 and 2.64 × 0.64 = 1.6896 -> 1.69
    assert ent.platform_fee == D(3510)
    assert ent.overage_steps == ((2000, D("2.64")), (8000, D("2.12")), (None, D("1.69")))
    assert [t.annual_discount for t in (starter, pro, ent)] == [D("0.15"), D("0.20"),
                                                                D("0.25")]
    assert [t.self_serve for t in (starter, pro, ent)] == [True, True, False]
    assert starter.hard_cap == 500 and pro.hard_cap is None
    # the typical Pro customer: 1100 + 500 × 3.30 = 2750 = 1000 × 2.75, fee share 40%
    assert pro.revenue_at(D(1000)) == D(2750)
    assert pro.fee_share_at(D(1000)) == D(1100) / D(2750)
    # Enterprise at 12,000: 3510 + 2000 × 2.64 + 6000 × 2.12 + 2000 × 1.69
    assert ent.revenue_at(D(12000)) == D(3510) + D(5280) + D(12720) + D(3380)


designs = st.builds(
    TierDesign,
    fee_share=st.decimals(min_value=D("0.30"), max_value=D("0.50"), places=2),
    allocation_multiple=st.sampled_from([3, 4, 5]),
    overage_multiple=st.decimals(min_value=D("1.2"), max_value=D("2"), places=1),
    volume_discount=st.sampled_from([D(0), D("0.1"), D("0.2"), D("0.3")]),
)


@settings(max_examples=150, deadline=None)
@given(design=designs,
       price=st.decimals(min_value=D("0.05"), max_value=D(500), places=2),
       volume=st.integers(min_value=200, max_value=2_000_000),
       cost_ratio=st.decimals(min_value=D(0), max_value=D(3), places=2),
       arch=st.sampled_from(["agent", "service", "api", "copilot"]))
def test_playbook_ranges_and_the_margin_floor_hold(
    design: TierDesign, price: Decimal, volume: int, cost_ratio: Decimal, arch: str,
) -> None:
    archetype = ARCHETYPES[arch]
    cost = price * cost_ratio / 4        # from far below to far above the floor
    tiers = design_tiers(archetype=archetype, unit_price=price, expected_volume=D(volume),
                         cost_per_unit=cost, target_margin=archetype.target_margin,
                         design=design)
    k = design.allocation_multiple
    per_seat = [t.included // (t.seats or 1) for t in tiers]
    assert per_seat[1] == per_seat[0] * k and per_seat[2] == per_seat[1] * k
    floor = cost / (1 - archetype.target_margin)
    for t in tiers:
        unit_cost = t.platform_fee / t.included           # the customer's included unit
        assert unit_cost >= floor
        # overage at r × the included unit cost (F / I), rounded up by under 1%; compared
        # by cross-multiplying so that no division rounds
        r = design.overage_multiple
        assert t.overage_price * t.included >= r * t.platform_fee
        assert t.overage_price * t.included <= r * t.platform_fee * D("1.01")
        prices = [p for _, p in t.overage_steps]
        assert prices == sorted(prices, reverse=True) and min(prices) >= floor
        # the least profitable customer uses the allocation exactly: still on target
        for q in (D(0), D(t.included), D(t.included) * 2, t.expected_volume,
                  D(t.included) * 50):
            m = t.margin_at(q)
            assert m is None or m >= archetype.target_margin
    # upgrading pays at the next tier's allocation (the Starter hard cap)
    starter, pro, _ = tiers
    if starter.seats is None:
        assert starter.revenue_at(D(pro.included)) > pro.platform_fee


@pytest.mark.parametrize("volume", [200, 1000, 5000, 80_000])
def test_default_fee_share_stays_within_30_to_50_percent(volume: int) -> None:
    tiers = design_tiers(archetype=AGENT, unit_price=D("1.5"), expected_volume=D(volume),
                         cost_per_unit=D("0.1"), target_margin=D("0.5"))
    for t in tiers:
        share = t.fee_share_at(t.expected_volume)
        assert share is not None and D("0.30") <= share <= D("0.50")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fee_share": D("0.6")}, "30-50%"),
    ({"fee_share": D("0.2")}, "30-50%"),
    ({"allocation_multiple": 6}, "3-5x"),
    ({"allocation_multiple": 2}, "3-5x"),
    ({"overage_multiple": D("2.5")}, "1.2-2x"),
    ({"overage_multiple": D("1.1")}, "1.2-2x"),
    ({"annual_discounts": (D("0.1"), D("0.2"), D("0.2"))}, "15-25%"),
    ({"annual_discounts": (D("0.15"), D("0.2"), D("0.3"))}, "15-25%"),
    ({"volume_discount": D("0.6")}, "volume_discount"),
    ({"seats": (1, 0, 5)}, "seat counts"),
])
def test_knobs_outside_the_playbooks_ranges_are_refused(kwargs: dict[str, object],
                                                        message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        TierDesign(**kwargs)  # type: ignore[arg-type]


def test_bad_volume_or_price_is_refused() -> None:
    with pytest.raises(InvalidInput, match="expected_volume"):
        design_tiers(archetype=AGENT, unit_price=D(1), expected_volume=D(0),
                     cost_per_unit=None, target_margin=D("0.5"))
    with pytest.raises(InvalidInput, match="unit price"):
        design_tiers(archetype=AGENT, unit_price=D(0), expected_volume=D(10),
                     cost_per_unit=None, target_margin=D("0.5"))


def test_a_floor_above_the_value_price_raises_the_fee() -> None:
    # price 0.30 with cost 0.12 at 70% needs 0.40 per included unit: the fee is raised
    tiers = design_tiers(archetype=COPILOT, unit_price=D("0.30"), expected_volume=D(1000),
                         cost_per_unit=D("0.12"), target_margin=D("0.70"))
    assert all(t.floor_raised for t in tiers)
    for t in tiers:
        assert t.platform_fee / t.included >= D("0.4")


def test_copilot_tiers_are_priced_per_seat() -> None:
    tiers = design_tiers(archetype=COPILOT, unit_price=D("0.5"), expected_volume=D(400),
                         cost_per_unit=D("0.05"), target_margin=D("0.7"))
    assert [t.seats for t in tiers] == [1, 5, 50]
    assert [t.name for t in tiers] == ["Individual", "Team", "Enterprise"]
    for t in tiers:
        assert t.seat_price is not None
        assert t.platform_fee == t.seat_price * (t.seats or 0)
    # a heavier user per seat in each higher tier: the seat price rises
    assert tiers[0].seat_price < tiers[1].seat_price < tiers[2].seat_price  # type: ignore


def test_a_free_first_tier_is_capped_at_its_allocation() -> None:
    free, pro, _ = design_tiers(archetype=AGENT, unit_price=D(2), expected_volume=D(1000),
                                cost_per_unit=D("0.1"), target_margin=D("0.5"),
                                design=TierDesign(free_tier=True))
    assert free.free and free.platform_fee == 0 and free.overage_steps == ()
    assert free.hard_cap == free.included
    assert free.revenue_at(D(10_000)) == 0
    assert not pro.free


# --------------------------------------------------------------------------- catalogs


def _catalog(tiers: tuple[Tier, ...], **kw: object) -> Catalog:
    args: dict[str, object] = {
        "archetype": AGENT, "metric": ChargeMetric.OUTCOME,
        "billing_unit": BillingUnit.DIRECT,
        "meter": MeterSpec(key="resolutions", event="ticket.closed", unit="resolution",
                           filter={"outcome": "resolved"}),
        "currency": "USD", "audience": "business", "cost_per_unit": D("0.12"),
    }
    args.update(kw)
    data = build_catalog(tiers, **args)  # type: ignore[arg-type]
    return parse_catalog_text(catalog_yaml(data, header="test"), name="<generated>")


def _usage(meter: str, quantity: Decimal) -> dict[str, MeterUsage]:
    return {meter: MeterUsage(meter=meter, quantity=quantity)}


@pytest.mark.parametrize("quantity", [0, 1, 125, 500, 501, 2000, 4000, 12_000, 100_000])
def test_generated_catalog_rates_on_target_with_the_rating_engine(quantity: int) -> None:
    tiers = design_tiers(archetype=AGENT, unit_price=D("2.74"), expected_volume=D(1000),
                         cost_per_unit=D("0.12"), target_margin=D("0.5"))
    catalog = _catalog(tiers)
    assert lint_catalog(catalog) == []
    for t in tiers:
        quote = rate_plan(catalog, t.code, _usage("resolutions", D(quantity)))
        # the rating engine agrees with the generator's own arithmetic
        assert quote.total == t.revenue_at(D(quantity)).quantize(D("0.01"))
        cost = D(quantity) * D("0.12")
        assert quote.total > 0 and (quote.total - cost) / quote.total >= D("0.5")


def test_enterprise_overage_tiers_rate_as_designed() -> None:
    tiers = design_tiers(archetype=AGENT, unit_price=D("2.74"), expected_volume=D(1000),
                         cost_per_unit=D("0.12"), target_margin=D("0.5"))
    catalog = _catalog(tiers)
    quote = rate_plan(catalog, "enterprise", _usage("resolutions", D(12_000)))
    assert quote.total == D(3510) + D(5280) + D(12720) + D(3380)


def test_credit_tiers_for_business_consumption() -> None:
    tiers = design_tiers(archetype=ARCHETYPES["service"], unit_price=D("0.2"),
                         expected_volume=D(10_000), cost_per_unit=D("0.02"),
                         target_margin=D("0.6"))
    catalog = _catalog(tiers, archetype=ARCHETYPES["service"],
                       metric=ChargeMetric.CONSUMPTION, billing_unit=BillingUnit.CREDITS,
                       meter=MeterSpec(key="ai_credits", event="ai.action", unit="credit",
                                       weights={"simple": D(1), "complex": D(10)}),
                       cost_per_unit=D("0.02"))
    pro = catalog.plans["pro"]
    assert pro.credits is not None and pro.credits.grant == tiers[1].included
    assert pro.credits.overage_unit_price == tiers[1].overage_price
    assert not pro.charges
    assert catalog.meters["ai_credits"].weights is not None
    assert lint_catalog(catalog) == []
    over = rate_plan(catalog, "pro", _usage("ai_credits", D(tiers[1].included + 100)))
    assert over.total == tiers[1].platform_fee + 100 * tiers[1].overage_price


def test_tiny_unit_prices_are_quoted_per_thousand() -> None:
    tiers = design_tiers(archetype=ARCHETYPES["api"], unit_price=D("0.0008"),
                         expected_volume=D(5_000_000), cost_per_unit=D("0.0002"),
                         target_margin=D("0.5"))
    catalog = _catalog(tiers, archetype=ARCHETYPES["api"], metric=ChargeMetric.CONSUMPTION,
                       meter=MeterSpec(key="api_calls", event="api.request", unit="api call"),
                       audience="developer", cost_per_unit=D("0.0002"))
    charge = catalog.plans["pro"].charges[0]
    assert charge.per == 1000
    assert charge.unit_price == tiers[1].overage_price * 1000
    q = D(tiers[1].included + 10_000)
    assert rate_plan(catalog, "pro", _usage("api_calls", q)).total == \
        (tiers[1].platform_fee + 10_000 * tiers[1].overage_price).quantize(D("0.01"))


def test_byok_variant_charges_the_fee_and_5_percent_of_provider_cost() -> None:
    tiers = design_tiers(archetype=ARCHETYPES["api"], unit_price=D("0.05"),
                         expected_volume=D(100_000), cost_per_unit=D("0.01"),
                         target_margin=D("0.5"))
    catalog = _catalog(tiers, archetype=ARCHETYPES["api"], metric=ChargeMetric.CONSUMPTION,
                       meter=MeterSpec(key="api_calls", event="api.request", unit="api call"),
                       audience="developer", cost_per_unit=D("0.01"), byok_tier="pro")
    byok = catalog.plans["pro_byok"]
    assert byok.byok and byok.base_fee == tiers[1].platform_fee
    quote = rate_plan(catalog, "pro_byok", _usage("api_calls", D(100_000)))
    # 5% of 100,000 × 0.01 = 50 on top of the software fee
    assert quote.total == tiers[1].platform_fee + D(50)
    assert lint_catalog(catalog) == []
    with pytest.raises(InvalidInput, match="no tier"):
        build_catalog(tiers, archetype=AGENT, metric=ChargeMetric.OUTCOME,
                      billing_unit=BillingUnit.DIRECT,
                      meter=MeterSpec(key="x", event="x", unit="x"), currency="USD",
                      audience="business", cost_per_unit=None, byok_tier="gold")


def test_copilot_catalog_rates_seats_at_the_minimum() -> None:
    tiers = design_tiers(archetype=COPILOT, unit_price=D("0.5"), expected_volume=D(400),
                         cost_per_unit=D("0.05"), target_margin=D("0.7"))
    catalog = _catalog(tiers, archetype=COPILOT, metric=ChargeMetric.WORKFLOW,
                       meter=MeterSpec(key="suggestions", event="suggestion.accepted",
                                       unit="suggestion"),
                       audience="developer", cost_per_unit=D("0.05"))
    team = catalog.plans["team"]
    assert team.seats is not None and team.seats.minimum == 5
    assert lint_catalog(catalog) == []
    quote = rate_plan(catalog, "team", _usage("suggestions", D(tiers[1].included)), seats=1)
    assert quote.total == tiers[1].platform_fee       # billed at the 5-seat minimum


def test_free_tier_catalog_is_lint_clean() -> None:
    tiers = design_tiers(archetype=AGENT, unit_price=D(2), expected_volume=D(1000),
                         cost_per_unit=D("0.1"), target_margin=D("0.5"),
                         design=TierDesign(free_tier=True))
    catalog = _catalog(tiers)
    free = catalog.plans["free"]
    assert free.free is True and free.base_fee == 0 and not free.charges
    ent = free.entitlements["resolutions"]
    assert getattr(ent, "hard", False)
    assert lint_catalog(catalog) == []
