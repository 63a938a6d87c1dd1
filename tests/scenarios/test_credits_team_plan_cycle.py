"""A copilot team plan through three months of credits, in the state database.

Team: 3,000 credits a month, at most 1,500 roll over, AI actions burn credits by
weight (chat 1, edit 3, agent 20), beyond the balance each credit costs $0.01.

* January: 2,000 credits used; 1,000 left, all of it rolls over.
* February: 1,000 rolled + 3,000 granted; on Feb 20 the customer buys a pack of
  1,000 credits for $10; 5,500 credits are used: the plan credits (free, expiring
  first) are used before the paid pack, 500 credits are overage: $5.00.
* March: nothing rolls over (the February grant was spent); the pack's paid credits
  are gone too; the ledger balances throughout.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ratecard.clock import Window
from ratecard.credits import service as credits
from ratecard.entitlements import service as ent
from ratecard.metering.model import Event

_spec = importlib.util.spec_from_file_location(
    "_credit_factories_s1", Path(__file__).resolve().parent.parent / "credits" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_f = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_f)

JAN, FEB, MAR, APR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4))


def actions(cid: str, start: datetime, kinds: dict[str, int], tag: str) -> list[Event]:
    out = []
    i = 0
    for kind, n in kinds.items():
        for _ in range(n):
            out.append(Event(f"{tag}-{i}", "ai.action", cid, start + timedelta(seconds=6 * i),
                             {"kind": kind}))
            i += 1
    return out


def test_three_months_of_team_credits(state_url: str) -> None:
    env = _f.Env(state_url)
    env.customer("acme")
    env.subscribe("acme", "team", JAN)
    pc = env.catalog.plans["team"].credits
    # January: 500 chats + 100 edits + 60 agent runs = 500 + 300 + 1200 = 2000 credits
    jan = actions("acme", JAN + timedelta(days=5), {"chat": 500, "edit": 100, "agent": 60}, "j")
    fx = env.run(ent.on_events_ingested, jan, env.catalog)
    assert fx.errors == [] and sum(b.covered for b in fx.burns) == 2000
    assert env.run(credits.available, "acme", at=JAN + timedelta(days=20)) == 1000
    jan_lines = env.run(credits.period_lines, "acme", Window(JAN, FEB), plan_credits=pc,
                        currency="USD")
    assert [(ln.kind, ln.quantity, ln.rounded) for ln in jan_lines] == [
        ("credits_applied", 2000, 0)]
    # February: 1000 rolled over + 3000
    assert env.run(credits.available, "acme", at=FEB) == 4000
    p = env.run(credits.purchase, "acme", "small", at=FEB + timedelta(days=19),
                reference="order-77")
    assert p.price == 10 and p.credits == 1000
    # 5,500 credits: 275 agent runs
    feb = actions("acme", FEB + timedelta(days=20), {"agent": 275}, "f")
    fx = env.run(ent.on_events_ingested, feb, env.catalog)
    assert sum(b.requested for b in fx.burns) == 5500
    assert sum(b.shortfall for b in fx.burns) == 500
    # the paid pack was used after every free plan credit: its value is $10 recognised
    assert sum(b.value for b in fx.burns) == Decimal("10.000")
    lines = env.run(credits.period_lines, "acme", Window(FEB, MAR), plan_credits=pc,
                    currency="USD")
    assert [(ln.kind, ln.quantity, ln.rounded) for ln in lines] == [
        ("credits_applied", 5000, 0), ("credit_overage", 500, Decimal("5.00"))]
    assert lines[0].value == Decimal("10.000")
    # March: a fresh 3,000, nothing rolled (the February grant was spent)
    b = env.run(credits.balance, "acme", at=MAR)
    assert b.available == 3000 and b.deferred_revenue == 0
    v = env.run(credits.verify, "acme")
    assert v["ok"] and v["issued"] == 3000 * 3 + 1000 and v["burned"] == 7000
    assert v["expired"] == 0 and v["rolled"] == 1000
    # the entries tell the story grant by grant
    kinds = [e.kind for e in env.run(credits.ledger, "acme")]
    assert kinds.count("rollover_out") == 1 and kinds.count("rollover_in") == 1
    # April: March left 3,000 unused, 1,500 roll over (the cap) + the April grant
    assert env.run(credits.available, "acme", at=APR) == 4500
