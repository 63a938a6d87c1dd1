"""Premium requests and a coding plan through the state database, as the check API sees them.

* Premium requests: 300 a month, weights 0.25 / 1 / 10 by model, soft limit with
  overage at $0.04 × the weight. The check reads the counters kept at ingestion and
  agrees with aggregating the events.
* A VIP override lifts the 5-hour limit of one coding customer for a week; a plan
  change of the catalog leaves existing subscribers on their version.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ratecard.clock import Window
from ratecard.entitlements import service as ent
from ratecard.entitlements.rules import overage_amount, resolve
from ratecard.metering.meters import aggregate
from ratecard.metering.model import Event
from ratecard.money import quantize

_spec = importlib.util.spec_from_file_location(
    "_credit_factories_s2", Path(__file__).resolve().parent.parent / "credits" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_f = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_f)

APR = datetime(2026, 4, 1, tzinfo=UTC)


def test_premium_requests_month(state_url: str) -> None:
    env = _f.Env(state_url)
    env.customer("dev")
    env.subscribe("dev", "copilot", APR)
    models = ["sonnet"] * 200 + ["mini"] * 100 + ["opus"] * 10
    events = [Event(f"p{i}", "chat.request", "dev", APR + timedelta(hours=1, minutes=i),
                    {"model": m}) for i, m in enumerate(models)]
    env.run(ent.on_events_ingested, events, env.catalog)
    at = APR + timedelta(days=2)
    r = env.run(ent.check, "dev", "premium_requests", at=at)
    assert r.allowed and r.used == Decimal("325") and r.limit == 300
    assert r.resets_at == datetime(2026, 5, 1, tzinfo=UTC)
    expected = aggregate("premium", env.catalog.meters["premium"],
                         [e for e in events if e.timestamp in Window(APR, at)]).quantity
    assert r.used == expected
    e = resolve("premium_requests", env.catalog.plans["copilot"].entitlements, [], at)
    assert e is not None
    assert quantize(overage_amount(e, r.used), "USD") == Decimal("1.00")
    more = env.run(ent.check, "dev", "premium_requests", at=at, quantity=10)  # one opus
    assert more.allowed and more.overage == 35
    assert overage_amount(e, r.used + 10) - overage_amount(e, r.used) == Decimal("0.40")


def test_vip_override_and_grandfathered_limits(state_url: str) -> None:
    env = _f.Env(state_url)
    mon = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    for cid in ("vip", "regular"):
        env.customer(cid)
        env.subscribe(cid, "lite", mon - timedelta(days=7))
        burst = [Event(f"{cid}{i}", "coding.prompt", cid, mon + timedelta(seconds=20 * i), {})
                 for i in range(150)]
        env.run(ent.on_events_ingested, burst, env.catalog)
    at = mon + timedelta(hours=1)
    assert not env.run(ent.check, "vip", "prompts", at=at).allowed
    env.run(ent.set_override, "vip", "prompts",
            {"meter": "prompts", "limits": [{"limit": 600, "window": "5h"},
                                            {"limit": 1200, "window": "7d"}]},
            starts_at=mon, ends_at=mon + timedelta(days=7), note="launch week", at=mon)
    r = env.run(ent.check, "vip", "prompts", at=at)
    assert r.allowed and r.remaining == 450
    assert not env.run(ent.check, "regular", "prompts", at=at).allowed
    # the catalog halves the 5-hour limit: existing subscribers keep version 1
    env.apply(_f.CATALOG.replace("{limit: 120, window: 5h}", "{limit: 60, window: 5h}"))
    r = env.run(ent.check, "regular", "prompts", at=mon + timedelta(hours=6))
    assert r.windows[0].limit == 120 and r.allowed
    # after the override ends, the VIP is back on the plan's limits
    r = env.run(ent.check, "vip", "prompts", at=mon + timedelta(days=7))
    assert r.windows[0].limit == 120
