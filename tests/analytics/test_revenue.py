"""Revenue by stream, MRR and ARR: hand-worked examples."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ratecard.analytics.revenue import (
    CreditNote,
    RevenueLine,
    arr,
    monthly_fee,
    mrr,
    revenue_by_stream,
)
from ratecard.billing.model import Phase, Subscription
from ratecard.catalog.schema import Plan

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)
AT = datetime(2026, 3, 15, tzinfo=UTC)


def _sub(i: int, currency: str, code: str, seats: int = 0, term: str = "month",
         trial_end: datetime | None = None, ends_at: datetime | None = None) -> Subscription:
    phase = Phase(starts_at=T0, plan_code=code, plan_version=1, seats=seats, term=term,
                  anchor=T0)
    return Subscription(id=i, customer=f"c{i}", timezone="UTC", currency=currency,
                        started_at=T0, trial_end=trial_end, ends_at=ends_at, canceled_at=None,
                        phases=(phase,), created_at=T0)


PLANS = {
    "pro": Plan(base_fee=D("20")),
    "team": Plan(base_fee=D("0"), seats={"unit_price": D("30"), "included": 1, "minimum": 3}),
    "yearly": Plan(interval="year", base_fee=D("1200")),
    "cn": Plan(currency="CNY", base_fee=D("99")),
    "quarterly": Plan(base_fee=D("100"), annual_discount=D("0.2"), quarterly_discount=D("0.1")),
}


def _plan(code: str, version: int) -> Plan:
    return PLANS[code]


def test_monthly_fee_normalises_interval_seats_and_discounts() -> None:
    assert monthly_fee(PLANS["pro"], 0) == D("20")
    # 5 seats, 1 included: 4 × 30
    assert monthly_fee(PLANS["team"], 5) == D("120")
    # 1 seat, but minimum 3: (3 - 1) × 30
    assert monthly_fee(PLANS["team"], 1) == D("60")
    assert monthly_fee(PLANS["yearly"], 0) == D("100")
    assert monthly_fee(PLANS["quarterly"], 0, "year") == D("80")
    assert monthly_fee(PLANS["quarterly"], 0, "quarter") == D("90")
    assert monthly_fee(PLANS["quarterly"], 0, "month") == D("100")


def test_mrr_per_currency_skips_trials_and_ended() -> None:
    subs = [
        _sub(1, "USD", "pro"),
        _sub(2, "USD", "team", seats=5),
        _sub(3, "USD", "yearly"),
        _sub(4, "CNY", "cn"),
        _sub(5, "USD", "pro", trial_end=datetime(2026, 4, 1, tzinfo=UTC)),
        _sub(6, "USD", "pro", ends_at=datetime(2026, 2, 1, tzinfo=UTC)),
        _sub(7, "USD", "quarterly", term="year"),
    ]
    m = mrr(subs, _plan, AT)
    assert m == {"CNY": D("99.00"), "USD": D("320.00")}  # 20 + 120 + 100 + 80
    assert arr(m) == {"CNY": D("1188.00"), "USD": D("3840.00")}


def test_revenue_by_stream_nets_credit_notes_and_keeps_currencies_apart() -> None:
    lines = [
        RevenueLine(1, "USD", "2026-01", "subscription", D("30.00")),
        RevenueLine(1, "USD", "2026-01", "usage", D("10.00")),
        RevenueLine(2, "USD", "2026-02", "usage", D("5.00")),
        RevenueLine(3, "CNY", "2026-01", "subscription", D("99.00")),
        RevenueLine(4, "USD", "2026-02", "", D("1.00")),
    ]
    # 4.00 credited on invoice 1: 3.00 subscription, 1.00 usage (30:10)
    notes = [CreditNote(1, "USD", D("4.00")), CreditNote(99, "USD", D("7.00"))]
    out = revenue_by_stream(lines, notes)
    assert out == {
        "USD": {"2026-01": {"subscription": D("27.00"), "usage": D("9.00")},
                "2026-02": {"usage": D("5.00"), "other": D("1.00")}},
        "CNY": {"2026-01": {"subscription": D("99.00")}},
    }
