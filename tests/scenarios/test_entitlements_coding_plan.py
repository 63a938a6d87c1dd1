"""A coding plan: 120 prompts per rolling 5 hours and 1,200 per 7 days (worked by hand).

The rules alone: events become minute counters, the check reads them. The same story
through the database and the CLI lives in tests/entitlements/test_service.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ratecard.catalog.loader import parse_catalog_text
from ratecard.entitlements.rules import MemoryCounter, bucket_deltas, evaluate, resolve
from ratecard.metering.model import Event

CATALOG = """
currency: USD
meters:
  prompts: {event: coding.prompt, aggregation: count}
plans:
  lite:
    base_fee: 20
    entitlements:
      prompts:
        meter: prompts
        limits: [{limit: 120, window: 5h}, {limit: 1200, window: 7d}]
        hard: true
"""

MON = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def prompts(n: int, start: datetime, every: timedelta, tag: str) -> list[Event]:
    return [Event(f"{tag}{i}", "coding.prompt", "dev1", start + i * every, {})
            for i in range(n)]


def test_five_hour_window_and_weekly_cap() -> None:
    catalog = parse_catalog_text(CATALOG)
    plan = catalog.plans["lite"]
    ent = resolve("prompts", plan.entitlements, [], MON, "lite")
    assert ent is not None
    counter = MemoryCounter()

    def ingest(events: list[Event]) -> None:
        for (_, meter, bucket), q in bucket_deltas(events, catalog.meters).items():
            counter.add(meter, bucket, q)

    # 08:00-09:59: 120 prompts, one a minute
    ingest(prompts(120, MON, timedelta(minutes=1), "a"))
    at = MON + timedelta(hours=2)  # 10:00
    r = evaluate(ent, counter, at)
    assert not r.allowed
    assert (r.limit, r.used, r.remaining) == (120, 120, 0)
    # the first prompt (08:00) leaves the 5-hour window at 13:00 exactly
    assert r.resets_at == MON + timedelta(hours=5)
    assert r.retry_at == MON + timedelta(hours=5)
    assert r.windows[1].used == 120 and r.windows[1].remaining == 1080
    # 12:59: still denied; 13:00: one prompt has left, so one more is allowed
    assert not evaluate(ent, counter, MON + timedelta(hours=4, minutes=59)).allowed
    r = evaluate(ent, counter, MON + timedelta(hours=5))
    assert r.allowed and r.used == 119 and r.remaining == 1
    # "would 10 be allowed at 13:00?": no; at 13:09 ten prompts have left
    r = evaluate(ent, counter, MON + timedelta(hours=5), quantity=Decimal(10))
    assert not r.allowed and r.retry_at == MON + timedelta(hours=5, minutes=9)
    assert evaluate(ent, counter, MON + timedelta(hours=5, minutes=9),
                    quantity=Decimal(10)).allowed

    # the rest of the week: 120 prompts every 6 hours until the weekly cap binds
    t = MON + timedelta(hours=6)
    for k in range(9):
        ingest(prompts(120, t + k * timedelta(hours=6), timedelta(minutes=1), f"b{k}-"))
    end = t + 8 * timedelta(hours=6) + timedelta(hours=2)
    r = evaluate(ent, counter, end)
    weekly = r.windows[1]
    assert weekly.used == 1200 and not weekly.allowed
    assert not r.allowed and r.limit == 1200
    # the weekly window frees its first prompts seven days after Monday 08:00
    assert r.resets_at == MON + timedelta(days=7)
    assert r.retry_at == MON + timedelta(days=7)
    assert evaluate(ent, counter, MON + timedelta(days=7)).windows[1].used == 1199
