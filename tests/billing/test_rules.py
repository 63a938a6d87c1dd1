"""Pure billing rules: boundaries, calendars across DST, proration, exact assembly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.billing import rules
from ratecard.billing.model import Phase, Subscription
from ratecard.catalog.loader import parse_catalog_text
from ratecard.clock import Window
from ratecard.metering.model import MeterUsage
from ratecard.money import quantize

from .conftest import CATALOG

CAT = parse_catalog_text(CATALOG)


def sub(start: datetime, *phases: Phase, tz: str = "UTC", trial_end: datetime | None = None,
        ends_at: datetime | None = None) -> Subscription:
    return Subscription(id=1, customer="c", timezone=tz, currency="USD", started_at=start,
                        trial_end=trial_end, ends_at=ends_at, canceled_at=None,
                        phases=phases, created_at=start)


def phase(at: datetime, code: str = "starter", *, anchor: datetime | None = None,
          term: str = "month", seats: int = 1, version: int = 1) -> Phase:
    return Phase(starts_at=at, plan_code=code, plan_version=version, seats=seats, term=term,
                 anchor=anchor or at)


PLANS = {(code, 1): plan for code, plan in CAT.plans.items()}
CATALOGS = {(code, 1): CAT for code in CAT.plans}


def u(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_month_end_anchor_never_drifts() -> None:
    start = u(2026, 1, 31)
    s = sub(start, phase(start))
    assert rules.boundaries(s, PLANS, u(2026, 6, 1)) == [
        u(2026, 1, 31), u(2026, 2, 28), u(2026, 3, 31), u(2026, 4, 30), u(2026, 5, 31)]


def test_boundaries_keep_local_midnight_across_daylight_saving() -> None:
    # Los Angeles: UTC-8 in winter, UTC-7 from 2026-03-08
    start = datetime(2026, 2, 1, 8, tzinfo=UTC)  # local midnight
    s = sub(start, phase(start), tz="America/Los_Angeles")
    assert rules.boundaries(s, PLANS, u(2026, 5, 1)) == [
        u(2026, 2, 1, 8), u(2026, 3, 1, 8), u(2026, 4, 1, 7)]
    # March has 31 local days even though it is 30 days and 23 hours long
    assert rules.local_days(Window(u(2026, 3, 1, 8), u(2026, 4, 1, 7)),
                            "America/Los_Angeles") == 31


def test_year_plan_bills_fee_yearly_and_usage_monthly() -> None:
    start = u(2026, 1, 1)
    s = sub(start, phase(start, "yearly", term="year"))
    bs = rules.boundaries(s, PLANS, u(2027, 1, 1))
    assert len(bs) == 13
    plans = [rules.plan_invoice(s, PLANS, b, prev) for prev, b in
             zip([None, *bs[:-1]], bs, strict=True)]
    with_fee = [p.boundary for p in plans if p.advance]
    assert with_fee == [u(2026, 1, 1), u(2027, 1, 1)]
    assert all(len(p.segments) == 1 for p in plans[1:])


def test_closing_boundary_and_cancel_credit() -> None:
    start = u(2026, 1, 1)
    s = sub(start, phase(start), ends_at=u(2026, 1, 11))
    bs = rules.boundaries(s, PLANS, u(2026, 3, 1))
    assert bs == [u(2026, 1, 1), u(2026, 1, 11)]
    closing = rules.plan_invoice(s, PLANS, bs[1], bs[0])
    assert closing.closing
    assert [(a.kind, a.covered) for a in closing.advance] == [
        ("credit", Window(u(2026, 1, 11), u(2026, 2, 1)))]


@settings(max_examples=60, deadline=None)
@given(day=st.integers(min_value=2, max_value=28),
       old=st.sampled_from(["starter", "pro", "lite"]),
       new=st.sampled_from(["starter", "pro", "lite"]))
def test_proration_charges_each_plan_for_the_days_it_ran(day: int, old: str, new: str) -> None:
    start = u(2026, 3, 1)
    change = u(2026, 3, day)
    s = sub(start, phase(start, old), phase(change, new, anchor=start))
    b = u(2026, 4, 1)
    ip = rules.plan_invoice(s, PLANS, b, start)
    lines = rules.assemble(ip, PLANS, CATALOGS, {}, "USD", "UTC")
    prorations = [ln for ln in lines if ln.kind == "proration"]
    assert {ln.plan_code for ln in prorations} == {old, new}
    days_left = 31 - (day - 1)
    old_fee = CAT.plans[old].base_fee
    new_fee = CAT.plans[new].base_fee
    net = sum((ln.amount for ln in prorations), Decimal(0))
    # the old plan was charged in full on March 1: the credit returns its unused days
    exact = (new_fee - old_fee) * days_left / 31
    assert abs(net - exact) <= Decimal("0.01")
    for ln in lines:
        assert ln.amount == quantize(ln.precise, "USD")


@settings(max_examples=60, deadline=None)
@given(resolutions=st.integers(min_value=0, max_value=5000),
       small=st.integers(min_value=0, max_value=10**7),
       large=st.integers(min_value=0, max_value=10**7))
def test_invoice_total_is_the_sum_of_lines_rounded_once(
    resolutions: int, small: int, large: int
) -> None:
    start = u(2026, 1, 1)
    for code in ("starter", "committed", "api"):
        s = sub(start, phase(start, code))
        ip = rules.plan_invoice(s, PLANS, u(2026, 2, 1), start)
        usage = {
            "resolutions": MeterUsage("resolutions", Decimal(resolutions)),
            "tokens": MeterUsage("tokens", Decimal(small + large), ("model",),
                                 {("small",): Decimal(small), ("large",): Decimal(large)}),
        }
        snaps = {((code, 1), seg.window): usage for seg in ip.segments}
        lines = rules.assemble(ip, PLANS, CATALOGS, snaps, "USD", "UTC")
        total = rules.invoice_total(lines)
        assert total == sum((ln.amount for ln in lines), Decimal(0))
        for ln in lines:
            assert ln.amount == quantize(ln.precise, "USD")
        if code == "committed":  # the minimum holds
            usage_total = sum((ln.amount for ln in lines if ln.kind == "usage"), Decimal(0))
            assert total == max(usage_total, Decimal(500))


def test_terms_and_discounts() -> None:
    lite = CAT.plans["lite"]
    assert rules.allowed_terms(lite) == ["month", "quarter", "year"]
    assert rules.allowed_terms(CAT.plans["yearly"]) == ["year"]
    assert rules.term_multiple(lite, "quarter") == 3
    assert rules.term_discount(lite, "quarter") == Decimal("0.10")
    assert rules.term_discount(lite, "month") == 0
    assert rules.usage_interval(CAT.plans["yearly"]) == "month"


def test_day_fraction_counts_local_calendar_days() -> None:
    tz = "Asia/Tokyo"  # UTC+9: 2026-01-14T20:00Z is already Jan 15 there
    whole = Window(u(2026, 1, 1) - timedelta(hours=9), u(2026, 2, 1) - timedelta(hours=9))
    part = Window(u(2026, 1, 14, 20), whole.end)
    assert rules.day_fraction(part, whole, tz) == Decimal(17) / Decimal(31)
