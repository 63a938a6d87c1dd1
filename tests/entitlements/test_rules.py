"""Entitlement rules: windows, resets, several limits, hard/soft, overrides, config values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.catalog.schema import Limit, Meter, Metered, Weights
from ratecard.entitlements.model import Override
from ratecard.entitlements.rules import (
    MemoryCounter,
    bucket_deltas,
    calendar_period,
    contribution,
    evaluate,
    floor_minute,
    from_value,
    parse_window,
    resolve,
    window_bounds,
)
from ratecard.errors import EventInvalid, InvalidAmount, TimeInvalid
from ratecard.metering.model import Event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
MIN = timedelta(minutes=1)


def metered(*limits: tuple[int, str], hard: bool = True, price: str | None = None) -> Metered:
    return Metered(meter="prompts", limits=[Limit(limit=Decimal(n), window=w) for n, w in limits],
                   hard=hard, overage_unit_price=None if price is None else Decimal(price))


def counter_with(*uses: tuple[datetime, int]) -> MemoryCounter:
    c = MemoryCounter()
    for at, q in uses:
        c.add("prompts", at, Decimal(q))
    return c


# --------------------------------------------------------------------------- windows


def test_parse_window_calendar_and_rolling() -> None:
    assert parse_window("month").kind == "calendar"
    w = parse_window("5h")
    assert (w.kind, w.length) == ("rolling", timedelta(hours=5))
    with pytest.raises(TimeInvalid):
        parse_window("fortnight")


@pytest.mark.parametrize(("unit", "at", "tz", "start", "end"), [
    ("day", "2026-03-02T23:30:00+00:00", "UTC", "2026-03-02T00:00:00+00:00",
     "2026-03-03T00:00:00+00:00"),
    ("week", "2026-03-08T23:59:00+00:00", "UTC", "2026-03-02T00:00:00+00:00",
     "2026-03-09T00:00:00+00:00"),
    ("month", "2026-02-14T10:00:00+00:00", "UTC", "2026-02-01T00:00:00+00:00",
     "2026-03-01T00:00:00+00:00"),
    # Shanghai midnight is 16:00 UTC the day before
    ("day", "2026-03-02T17:00:00+00:00", "Asia/Shanghai", "2026-03-02T16:00:00+00:00",
     "2026-03-03T16:00:00+00:00"),
    # India's half-hour offset
    ("month", "2026-01-31T18:29:00+00:00", "Asia/Kolkata", "2025-12-31T18:30:00+00:00",
     "2026-01-31T18:30:00+00:00"),
    # a day across the spring DST change in Paris is 23 hours long
    ("day", "2026-03-29T12:00:00+00:00", "Europe/Paris", "2026-03-28T23:00:00+00:00",
     "2026-03-29T22:00:00+00:00"),
])
def test_calendar_periods(unit: str, at: str, tz: str, start: str, end: str) -> None:
    p = calendar_period(unit, datetime.fromisoformat(at), tz)
    assert (p.start, p.end) == (datetime.fromisoformat(start), datetime.fromisoformat(end))


def test_rolling_bounds_are_whole_minutes() -> None:
    span, reset = window_bounds(parse_window("5h"), T0 + timedelta(seconds=42))
    assert span.end == T0 + MIN
    assert span.start == T0 + MIN - timedelta(hours=5)
    assert reset is None


# --------------------------------------------------------------------------- 120 prompts / 5h


def test_five_hour_window_denies_at_limit_and_reopens_as_it_slides() -> None:
    ent = from_value("prompts", metered((120, "5h")), "plan:lite")
    # 60 prompts at 09:00, 60 at 10:30
    c = counter_with((T0, 60), (T0 + timedelta(minutes=90), 60))
    now = T0 + timedelta(hours=2)
    r = evaluate(ent, c, now)
    assert not r.allowed and r.used == 120 and r.remaining == 0
    assert r.resets_at == T0 + timedelta(hours=5)  # the 09:00 prompts leave at 14:00
    assert r.retry_at == T0 + timedelta(hours=5)
    assert "limit reached" in r.reason
    # one minute before 14:00: still denied; at 14:00: 60 left in the window
    assert not evaluate(ent, c, T0 + timedelta(hours=5) - MIN).allowed
    r = evaluate(ent, c, T0 + timedelta(hours=5))
    assert r.allowed and r.used == 60 and r.resets_at == T0 + timedelta(hours=6, minutes=30)
    # "would 61 be allowed?" at 14:00: no, not until the 10:30 prompts leave
    r = evaluate(ent, c, T0 + timedelta(hours=5), quantity=Decimal(61))
    assert not r.allowed and r.retry_at == T0 + timedelta(hours=6, minutes=30)
    # a request above the limit itself never fits
    r = evaluate(ent, c, now, quantity=Decimal(121))
    assert not r.allowed and r.retry_at is None


def test_several_windows_the_weekly_cap_binds() -> None:
    ent = from_value("prompts", metered((120, "5h"), (300, "7d")))
    # 100 prompts on each of the last 3 days (outside the current 5h window)
    c = counter_with(*[(T0 - timedelta(days=d), 100) for d in (1, 2, 3)])
    r = evaluate(ent, c, T0)
    assert not r.allowed
    assert [w.window for w in r.windows] == ["5h", "7d"]
    assert r.windows[0].allowed and r.windows[0].used == 0
    assert (r.limit, r.used, r.remaining) == (300, 300, 0)
    assert r.resets_at == T0 - timedelta(days=3) + timedelta(days=7)
    assert r.retry_at == r.resets_at
    # within limits: the binding window is the one with the least room
    r = evaluate(ent, counter_with((T0, 50)), T0)
    assert r.allowed and (r.limit, r.remaining) == (120, 70)


def test_calendar_month_resets_at_next_month_start() -> None:
    ent = from_value("premium", Metered(meter="prompts", limit=Decimal(300), window="month"))
    c = counter_with((datetime(2026, 2, 27, tzinfo=UTC), 250), (T0, 50))
    r = evaluate(ent, c, T0)
    assert r.allowed and r.used == 50  # February's 250 do not count in March
    assert r.resets_at == datetime(2026, 4, 1, tzinfo=UTC)


def test_quantity_consumes_nothing_and_checks_fit() -> None:
    ent = from_value("prompts", metered((10, "day")))
    c = counter_with((T0, 7))
    assert evaluate(ent, c, T0, quantity=Decimal(3)).allowed
    assert not evaluate(ent, c, T0, quantity=Decimal(4)).allowed
    assert evaluate(ent, c, T0).used == 7  # nothing was consumed
    with pytest.raises(InvalidAmount):
        evaluate(ent, c, T0, quantity=Decimal(-1))


def test_soft_limit_allows_and_reports_overage() -> None:
    ent = from_value("premium", metered((300, "month"), hard=False, price="0.04"))
    r = evaluate(ent, counter_with((T0, 310)), T0, quantity=Decimal(10))
    assert r.allowed and not r.hard and r.overage == 20
    assert "soft limit" in r.reason


# --------------------------------------------------------------------------- other kinds


def test_boolean_and_config_entitlements() -> None:
    assert not evaluate(from_value("sso", False), None, T0).allowed
    assert evaluate(from_value("sso", True), None, T0).allowed
    models = from_value("models", ["glm-4-flash", "glm-4-plus"])
    r = evaluate(models, None, T0)
    assert r.allowed and r.value == ["glm-4-flash", "glm-4-plus"] and r.kind == "config"
    assert evaluate(models, None, T0, value="glm-4-plus").allowed
    assert not evaluate(models, None, T0, value="glm-4.5").allowed
    seats = from_value("integrations", 3)
    assert evaluate(seats, None, T0, quantity=Decimal(3)).allowed
    assert not evaluate(seats, None, T0, quantity=Decimal(4)).allowed


def test_overrides_apply_within_their_dates_and_latest_wins() -> None:
    plan = {"prompts": metered((120, "5h"))}
    o1 = Override("o1", "c1", "prompts", metered((500, "5h")), T0, T0 + timedelta(days=7))
    o2 = Override("o2", "c1", "prompts", metered((1000, "5h")), T0 + timedelta(days=1),
                  T0 + timedelta(days=2))
    assert resolve("prompts", plan, [o1, o2], T0 - MIN, "lite").limits[0].limit == 120
    assert resolve("prompts", plan, [o1, o2], T0, "lite").limits[0].limit == 500
    e = resolve("prompts", plan, [o1, o2], T0 + timedelta(days=1), "lite")
    assert e.limits[0].limit == 1000 and e.source == "override:o2"
    assert resolve("prompts", plan, [o1, o2], T0 + timedelta(days=7), "lite").source == (
        "plan:lite")
    assert resolve("sso", plan, [], T0) is None
    # an override can grant a feature the plan lacks
    o3 = Override("o3", "c1", "sso", True, T0)
    assert resolve("sso", plan, [o3], T0).value is True


# --------------------------------------------------------------------------- meters → counters


def test_contributions_count_weights_filter_sum() -> None:
    ev = Event("e1", "llm.request", "c1", T0, {"model": "opus", "tokens": 1200, "ok": True})
    assert contribution("n", Meter(event="llm.request", aggregation="count"), ev) == 1
    weighted = Meter(event="llm.request", aggregation="count",
                     weights=Weights(property="model",
                                     values={"mini": Decimal("0.25"), "opus": Decimal(10)}))
    assert contribution("premium", weighted, ev) == 10
    assert contribution("n", Meter(event="other", aggregation="count"), ev) is None
    filt = Meter(event="llm.request", aggregation="count", filter={"model": ["mini"]})
    assert contribution("n", filt, ev) is None
    assert contribution("t", Meter(event="llm.request", aggregation="sum",
                                   property="tokens"), ev) == 1200
    assert contribution("u", Meter(event="llm.request", aggregation="unique_count",
                                   property="tokens"), ev) is None
    bad = Event("e2", "llm.request", "c1", T0, {"model": "gpt-9"})
    with pytest.raises(EventInvalid, match="e2"):
        contribution("premium", weighted, bad)


def test_bucket_deltas_group_by_customer_meter_minute() -> None:
    meters = {"prompts": Meter(event="coding.prompt", aggregation="count")}
    evs = [Event(f"e{i}", "coding.prompt", "c1" if i % 2 else "c2",
                 T0 + timedelta(seconds=20 * i), {}) for i in range(6)]
    d = bucket_deltas(evs, meters)
    assert d == {("c2", "prompts", T0): 2, ("c1", "prompts", T0): 1,
                 ("c1", "prompts", T0 + MIN): 2, ("c2", "prompts", T0 + MIN): 1}


# --------------------------------------------------------------------------- properties


def counter_has(c: MemoryCounter, bucket: datetime, start: datetime, end: datetime) -> bool:
    return any(b == bucket for b, _ in c.buckets("prompts", start, end))


windows = st.sampled_from(["30m", "5h", "7d", "day", "week", "month"])


@settings(max_examples=200, deadline=None)
@given(
    uses=st.lists(st.tuples(st.integers(0, 60 * 24 * 20), st.integers(1, 5)), max_size=40),
    window=windows,
    limit=st.integers(0, 40),
    check_at=st.integers(0, 60 * 24 * 21),
    quantity=st.none() | st.integers(0, 10),
)
def test_window_usage_resets_and_retry_are_exact(
    uses: list[tuple[int, int]], window: str, limit: int, check_at: int, quantity: int | None
) -> None:
    base = datetime(2026, 2, 20, tzinfo=UTC)
    c = MemoryCounter()
    raw: list[tuple[datetime, int]] = []
    for minute, q in uses:
        at = base + timedelta(minutes=minute, seconds=minute % 60)
        c.add("prompts", at, Decimal(q))
        raw.append((at, q))
    ent = from_value("prompts", metered((limit, window)))
    now = base + timedelta(minutes=check_at, seconds=17)
    q = None if quantity is None else Decimal(quantity)
    r = evaluate(ent, c, now, quantity=q)
    w = r.windows[0]
    spec = parse_window(window)
    # brute force over the raw usage
    if spec.kind == "rolling":
        assert spec.length is not None
        counted = [(a, n) for a, n in raw
                   if floor_minute(now) - spec.length < floor_minute(a) <= floor_minute(now)]
    else:
        p = calendar_period(window, now)
        counted = [(a, n) for a, n in raw if p.start <= a < floor_minute(now) + MIN]
    assert w.used == sum(n for _, n in counted)
    if spec.kind == "rolling" and counted:
        oldest = min(floor_minute(a) for a, _ in counted)
        assert w.resets_at == oldest + spec.length
        # exactly then the oldest usage stops counting; a minute earlier it still counts
        gone = sum(n for a, n in counted if floor_minute(a) == oldest)
        arrived = sum(n for a, n in raw if floor_minute(now) < floor_minute(a) <= w.resets_at)
        later = evaluate(ent, c, w.resets_at).windows[0]
        assert later.used == w.used - gone + arrived
        before = evaluate(ent, c, w.resets_at - MIN).windows[0]
        assert counter_has(c, oldest, before.start, before.end)
    if spec.kind == "calendar":
        assert w.resets_at == calendar_period(window, now).end
    expected = (w.used + q <= limit) if q is not None else (w.used < limit)
    assert r.allowed == expected
    if not r.allowed and r.retry_at is not None and spec.kind == "rolling":
        # with no new usage, the request fits at retry_at and not a minute before
        after = MemoryCounter()
        for a, n in raw:
            if a < floor_minute(now) + MIN:
                after.add("prompts", a, Decimal(n))
        assert evaluate(ent, after, r.retry_at, quantity=q).allowed
        if r.retry_at - MIN >= now:
            assert not evaluate(ent, after, r.retry_at - MIN, quantity=q).allowed
