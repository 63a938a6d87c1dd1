"""Credit stories worked by hand with the pure wallet.

* Flex credits: $500 buys 100,000 credits; an action costs 20 credits, so a case of
  3 actions burns 60 credits, worth $0.30 of the prepaid money.
* A prepaid pack with bonus credits that expire before the paid ones.
* Capped rollover of plan credits.
* Promotional credits burn before paid ones.

The same stories through the database live in tests/credits/test_service.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ratecard.catalog.loader import parse_catalog_text
from ratecard.clock import Window
from ratecard.credits.model import Grant
from ratecard.credits.rules import Wallet, conservation, credits_for, pack_grants, plan_grant
from ratecard.money import quantize

T0 = datetime(2026, 1, 1, tzinfo=UTC)

CATALOG = """
currency: USD
meters:
  actions: {event: agent.action, aggregation: count}
plans:
  agentforce:
    credits: {grant: 0, burn: {actions: 20}, on_exhausted: block}
  team:
    credits: {grant: 3000, per: month, rollover: {max: 1500}, burn: {actions: 1},
              on_exhausted: overage, overage_unit_price: "0.01"}
credits:
  packs:
    flex: {price: 500, credits: 100000}
    growth: {price: 500, credits: 500, bonus: 75, bonus_expires_after: 90d}
"""


def test_flex_credits_case_costs_thirty_cents() -> None:
    catalog = parse_catalog_text(CATALOG)
    pc = catalog.plans["agentforce"].credits
    assert pc is not None
    (paid,) = pack_grants("flex", catalog.credits.packs["flex"], customer="acme", at=T0,
                          currency="USD", id_prefix="po-1")
    w = Wallet("acme").add(paid)
    value = Decimal(0)
    for case in range(10):
        credits = credits_for(pc, "actions", Decimal(3))
        assert credits == 60
        w, burn = w.burn(credits, T0 + timedelta(hours=case), reference=f"case-{case}",
                         mode="hard")
        case_value = sum((-e.amount * paid.cost_basis for e in burn.entries), Decimal(0))
        assert case_value == Decimal("0.30")
        value += case_value
    assert w.available(T0 + timedelta(days=1)) == 100_000 - 600
    assert quantize(value, "USD") == Decimal("3.00")
    # deferred revenue left: 99,400 credits × $0.005
    assert w.available(T0 + timedelta(days=1)) * paid.cost_basis == Decimal("497.000")


def test_prepaid_pack_bonus_burns_first_and_expires() -> None:
    catalog = parse_catalog_text(CATALOG)
    paid, bonus = pack_grants("growth", catalog.credits.packs["growth"], customer="c",
                              at=T0, currency="USD", id_prefix="po-2")
    w = Wallet("c").add(paid).add(bonus)
    assert w.available(T0) == 575
    w, b = w.burn(Decimal(100), T0 + timedelta(days=10))
    assert b.allocations() == [(bonus.id, Decimal(75)), (paid.id, Decimal(25))]
    # a second pack's bonus is burned before the paid credits; it expires after 90 days
    paid2, bonus2 = pack_grants("growth", catalog.credits.packs["growth"], customer="c",
                                at=T0 + timedelta(days=20), currency="USD", id_prefix="po-3")
    w = w.add(paid2).add(bonus2)
    w, b = w.burn(Decimal(50), T0 + timedelta(days=30))
    assert b.allocations() == [(bonus2.id, Decimal(50))]
    w = w.advance(T0 + timedelta(days=111))
    sums = conservation(w.entries)
    assert sums["expired"] == 25 and sums["difference"] == 0
    assert w.available(T0 + timedelta(days=111)) == 1000 - 25
    # revenue: the paid credits burned so far are 25 × $1
    assert sum((-e.amount for e in w.entries if e.kind == "burn" and e.grant_id == paid.id),
               Decimal(0)) * paid.cost_basis == Decimal(25)


def test_capped_rollover_over_three_months() -> None:
    catalog = parse_catalog_text(CATALOG)
    pc = catalog.plans["team"].credits
    assert pc is not None
    months = [datetime(2026, m, 1, tzinfo=UTC) for m in range(1, 6)]
    w = Wallet("t")
    used = [500, 2900, 4000]  # January leaves 2500 (1500 roll), February 1600 (1500 roll)
    shortfalls = []
    for i, use in enumerate(used):
        period = Window(months[i], months[i + 1])
        w = w.advance(period.start).add(plan_grant(
            "team", pc, customer="t", period=period, next_period_end=months[i + 2],
            currency="USD"), at=period.start)
        w, b = w.burn(Decimal(use), period.start + timedelta(days=10))
        shortfalls.append(b.shortfall)
    w = w.advance(months[3])
    sums = conservation(w.entries)
    # Jan: 3000 - 500 = 2500 left → 1500 roll, 1000 expire
    # Feb: 1500 + 3000 - 2900 = 1600 left (all from the February grant) → 1500 roll, 100 expire
    # Mar: 1500 + 3000 - 4000 = 500 left → 500 roll
    assert sums["expired"] == 1100
    assert sums["rolled"] == 3500
    assert shortfalls == [0, 0, 0]
    assert w.available(months[3]) == 500
    assert sums["difference"] == 0


def test_promotional_before_paid() -> None:
    w = Wallet("c").add(Grant("paid", "c", Decimal(1000), "purchase", T0,
                              cost_basis=Decimal("0.01")))
    w = w.add(Grant("promo", "c", Decimal(200), "promotion", T0, T0 + timedelta(days=30)))
    w = w.add(Grant("promo-forever", "c", Decimal(50), "promotion", T0))
    w, b = w.burn(Decimal(260), T0 + timedelta(days=1))
    # the expiring promotion first, then the free non-expiring one, then paid
    assert b.allocations() == [("promo", Decimal(200)), ("promo-forever", Decimal(50)),
                               ("paid", Decimal(10))]
