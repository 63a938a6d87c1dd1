"""Premium requests per month with model multipliers and overage (worked by hand).

300 premium requests a month; a request counts 0.25 (mini), 1 (sonnet) or 10 (opus)
of them; beyond 300 the limit is soft and each premium request costs $0.04, so an
opus request over the limit costs 10 × $0.04 = $0.40.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ratecard.catalog.loader import parse_catalog_text
from ratecard.entitlements.rules import (
    MemoryCounter,
    bucket_deltas,
    evaluate,
    overage_amount,
    resolve,
)
from ratecard.metering.model import Event
from ratecard.money import quantize

CATALOG = """
currency: USD
meters:
  premium_requests:
    event: chat.request
    aggregation: count
    weights: {property: model, values: {mini: "0.25", sonnet: 1, opus: 10}}
plans:
  pro:
    base_fee: 10
    entitlements:
      premium:
        meter: premium_requests
        limit: 300
        window: month
        hard: false
        overage_unit_price: "0.04"
"""

START = datetime(2026, 4, 1, tzinfo=UTC)


def test_multipliers_and_overage() -> None:
    catalog = parse_catalog_text(CATALOG)
    ent = resolve("premium", catalog.plans["pro"].entitlements, [], START, "pro")
    assert ent is not None and not ent.hard
    counter = MemoryCounter()
    events = (
        [Event(f"s{i}", "chat.request", "c1", START + timedelta(minutes=i),
               {"model": "sonnet"}) for i in range(200)]
        + [Event(f"m{i}", "chat.request", "c1", START + timedelta(hours=5, minutes=i),
                 {"model": "mini"}) for i in range(100)]
        + [Event(f"o{i}", "chat.request", "c1", START + timedelta(hours=9, minutes=i),
                 {"model": "opus"}) for i in range(10)]
    )
    for (_, meter, bucket), q in bucket_deltas(events, catalog.meters).items():
        counter.add(meter, bucket, q)
    at = START + timedelta(days=3)
    r = evaluate(ent, counter, at)
    # 200 × 1 + 100 × 0.25 + 10 × 10 = 325
    assert r.used == Decimal("325") and r.limit == 300 and r.remaining == 0
    assert r.allowed and "soft limit" in r.reason
    assert r.resets_at == datetime(2026, 5, 1, tzinfo=UTC)
    assert quantize(overage_amount(ent, r.used), "USD") == Decimal("1.00")  # 25 × $0.04
    # "one more opus request?": allowed, and it would cost 10 × $0.04
    r2 = evaluate(ent, counter, at, quantity=Decimal(10))
    assert r2.allowed and r2.overage == 35
    assert overage_amount(ent, r.used + 10) - overage_amount(ent, r.used) == Decimal("0.40")
    # a mini request costs 0.25 × $0.04 = $0.01, a sonnet one $0.04
    assert overage_amount(ent, r.used + Decimal("0.25")) - overage_amount(ent, r.used) == (
        Decimal("0.01"))
    assert overage_amount(ent, r.used + 1) - overage_amount(ent, r.used) == Decimal("0.04")
    # a new month starts from zero
    assert evaluate(ent, counter, datetime(2026, 5, 1, tzinfo=UTC)).used == 0


def test_hard_variant_blocks_at_the_limit() -> None:
    catalog = parse_catalog_text(CATALOG.replace("hard: false", "hard: true"))
    ent = resolve("premium", catalog.plans["pro"].entitlements, [], START, "pro")
    assert ent is not None
    counter = MemoryCounter()
    counter.add("premium_requests", START, Decimal(295))
    assert evaluate(ent, counter, START, quantity=Decimal(1)).allowed
    r = evaluate(ent, counter, START, quantity=Decimal(10))  # an opus request
    assert not r.allowed and r.retry_at == datetime(2026, 5, 1, tzinfo=UTC)
