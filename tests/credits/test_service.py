"""Credit wallets in the state database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ratecard.clock import Window
from ratecard.credits import service as credits
from ratecard.credits.model import AutoTopUp, Grant
from ratecard.credits.rules import Wallet
from ratecard.errors import (
    Conflict,
    InsufficientCredits,
    InvalidAmount,
    NotFound,
    TimeInvalid,
)
from ratecard.store import state

from .conftest import Env

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def test_grant_balance_ledger_and_errors(env: Env) -> None:
    env.customer("c1")
    g = env.run(credits.grant, "c1", "100", source="promotion", at=T0,
                expires_at=T0 + timedelta(days=30))
    env.run(credits.grant, "c1", 50, source="purchase", cost_basis="0.01", at=T0)
    b = env.run(credits.balance, "c1", at=T0 + timedelta(days=1))
    assert b.available == 150 and b.pending == 0
    assert b.deferred_revenue == D("0.50")
    with pytest.raises(InvalidAmount, match="must be positive"):
        env.run(credits.grant, "c1", -5, at=T0)
    with pytest.raises(TimeInvalid, match="not after the effective time"):
        env.run(credits.grant, "c1", 5, at=T0, effective_at=T0 + timedelta(days=2),
                expires_at=T0 + timedelta(days=1))
    with pytest.raises(NotFound, match="no customer 'nobody'"):
        env.run(credits.grant, "nobody", 5, at=T0)
    # the promotion expires after 30 days: an expire entry, the balance drops
    b = env.run(credits.balance, "c1", at=T0 + timedelta(days=30))
    assert b.available == 50
    kinds = [(e.grant_id == g.id, e.kind, e.amount) for e in env.run(credits.ledger, "c1")]
    assert (True, "expire", D(-100)) in kinds
    assert env.run(credits.verify, "c1")["ok"]


def test_burn_order_and_idempotent_reference(env: Env) -> None:
    env.customer("c1")
    paid = env.run(credits.grant, "c1", 100, source="purchase", cost_basis="0.005", at=T0)
    promo = env.run(credits.grant, "c1", 30, source="promotion", at=T0,
                    expires_at=T0 + timedelta(days=10))
    r = env.run(credits.burn, "c1", 50, at=T0 + timedelta(hours=1), reference="job-1")
    assert [(e.grant_id, -e.amount) for e in r.entries] == [(promo.id, 30), (paid.id, 20)]
    assert r.value == D("0.100") and r.shortfall == 0
    again = env.run(credits.burn, "c1", 50, at=T0 + timedelta(hours=2), reference="job-1")
    assert again.duplicate and again.covered == 50
    assert env.run(credits.available, "c1", at=T0 + timedelta(hours=3)) == 80
    with pytest.raises(InsufficientCredits):
        env.run(credits.burn, "c1", 81, at=T0 + timedelta(hours=3))
    assert env.run(credits.available, "c1", at=T0 + timedelta(hours=3)) == 80
    partial = env.run(credits.burn, "c1", 81, at=T0 + timedelta(hours=3), mode="partial")
    assert (partial.covered, partial.shortfall) == (80, 1)
    assert env.run(credits.verify, "c1")["ok"]


def test_void_then_burn_from_it_is_refused(env: Env) -> None:
    env.customer("c1")
    g = env.run(credits.grant, "c1", 10, at=T0)
    env.run(credits.void_grant, "c1", g.id, at=T0 + timedelta(hours=1), reason="refund")
    with pytest.raises(Conflict, match="was voided"):
        env.run(credits.burn, "c1", 1, at=T0 + timedelta(hours=2), grant_id=g.id)
    with pytest.raises(Conflict, match="already void"):
        env.run(credits.void_grant, "c1", g.id, at=T0 + timedelta(hours=2))
    with pytest.raises(NotFound):
        env.run(credits.void_grant, "c1", "g-nope", at=T0 + timedelta(hours=2))
    assert env.run(credits.verify, "c1")["voided"] == 10


def test_ledger_is_append_only_in_the_database(env: Env) -> None:
    env.customer("c1")
    env.run(credits.grant, "c1", 10, at=T0)
    for sql in ("UPDATE credit_ledger SET amount = '99'", "DELETE FROM credit_ledger"):
        with pytest.raises(DBAPIError, match="append-only"), env.session() as s:
            s.execute(text(sql))
    assert env.run(credits.available, "c1", at=T0) == 10


def test_purchase_pack_with_bonus_and_revenue(env: Env) -> None:
    env.customer("c1")
    p = env.run(credits.purchase, "c1", "growth", at=T0, reference="po-1")
    assert (p.credits, p.bonus, p.price) == (500, 75, 500)
    assert env.run(credits.purchase, "c1", "growth", at=T0, reference="po-1").duplicate
    b = env.run(credits.balance, "c1", at=T0)
    assert b.available == 575 and b.deferred_revenue == 500
    r = env.run(credits.burn, "c1", 100, at=T0 + timedelta(days=1))
    assert r.value == 25  # 75 bonus (free) + 25 paid at $1
    b = env.run(credits.balance, "c1", at=T0 + timedelta(days=91))
    assert b.available == 475 and b.deferred_revenue == 475
    with pytest.raises(NotFound, match="packs: flex, growth, small"):
        env.run(credits.purchase, "c1", "mega", at=T0)


def test_plan_credits_grant_each_month_with_capped_rollover(env: Env) -> None:
    env.customer("t1")
    env.subscribe("t1", "team", T0)
    assert env.run(credits.available, "t1", at=T0) == 3000
    env.run(credits.burn_usage, "t1", {"ai_credits": D(500)}, at=T0 + timedelta(days=3),
            reference="batch-1")
    feb = datetime(2026, 2, 1, tzinfo=UTC)
    # 2500 left in January: 1500 roll over (the cap), 1000 expire; February adds 3000
    assert env.run(credits.available, "t1", at=feb) == 4500
    v = env.run(credits.verify, "t1")
    assert v["ok"] and v["expired"] == 1000 and v["rolled"] == 1500
    # February burns beyond the balance: overage
    rs = env.run(credits.burn_usage, "t1", {"ai_credits": D(4700)}, at=feb + timedelta(days=5),
                 reference="batch-2")
    assert (rs[0].covered, rs[0].shortfall) == (4500, 200)
    lines = env.run(credits.period_lines, "t1", Window(feb, datetime(2026, 3, 1, tzinfo=UTC)),
                    plan_credits=env.catalog.plans["team"].credits, currency="USD")
    assert [(ln.kind, ln.quantity, ln.rounded) for ln in lines] == [
        ("credits_applied", 4500, 0), ("credit_overage", 200, D("2.00"))]
    jan_lines = env.run(credits.period_lines, "t1", Window(T0, feb),
                        plan_credits=env.catalog.plans["team"].credits, currency="USD")
    assert [(ln.kind, ln.quantity) for ln in jan_lines] == [("credits_applied", 500)]


def test_block_plan_records_shortfall_without_overage_line(env: Env) -> None:
    env.customer("i1")
    env.subscribe("i1", "individual", T0)
    rs = env.run(credits.burn_usage, "i1", {"ai_credits": D(520), "prompts": D(3)},
                 at=T0 + timedelta(days=1), reference="b")
    assert len(rs) == 1 and (rs[0].covered, rs[0].shortfall) == (500, 20)
    lines = env.run(credits.period_lines, "i1", Window(T0, T0 + timedelta(days=31)),
                    plan_credits=env.catalog.plans["individual"].credits, currency="USD")
    assert [ln.kind for ln in lines] == ["credits_applied"]
    kinds = [n.kind for n in env.run(credits.notices, "i1")]
    assert kinds == ["depleted"]


def test_auto_topup_with_monthly_cap_and_low_balance_notice(env: Env) -> None:
    env.customer("c1")
    env.run(credits.set_low_balance, "c1", D(300))
    env.run(credits.set_auto_topup, "c1", AutoTopUp(threshold=D(200), target=D(2000),
                                                    pack="small", monthly_cap=D(20)))
    env.run(credits.grant, "c1", 1000, at=T0)
    r = env.run(credits.burn, "c1", 850, at=T0 + timedelta(days=1), reference="b1")
    # 150 left < 200: buy packs of 1000 up to 2000 → 2 packs ($20, the whole cap)
    assert r.topup is not None and r.topup.quantity == 2 and r.topup.price == 20
    assert [n.kind for n in r.notices] == ["low_balance"]
    assert env.run(credits.available, "c1", at=T0 + timedelta(days=1)) == 2150
    r = env.run(credits.burn, "c1", 2100, at=T0 + timedelta(days=2), reference="b2")
    assert r.topup is None  # the cap is spent for January
    assert [n.kind for n in r.notices] == ["low_balance"]
    r = env.run(credits.burn, "c1", 50, at=datetime(2026, 2, 2, tzinfo=UTC), reference="b3")
    assert r.topup is not None and r.topup.quantity == 2  # a new month, a new cap
    assert [n.kind for n in r.notices] == ["depleted"]
    assert env.run(credits.verify, "c1")["ok"]
    with pytest.raises(InvalidAmount):
        env.run(credits.set_auto_topup, "c1", AutoTopUp(threshold=D(10), target=D(5),
                                                        unit_price=D("0.01")))


def test_apply_prepaid_balance_to_an_invoice(env: Env) -> None:
    env.customer("c1")
    env.run(credits.purchase, "c1", "flex", at=T0)
    line = env.run(credits.apply_to_invoice, "c1", D("123.456"), currency="USD",
                   at=T0 + timedelta(days=31), reference="inv-1", credit_value=D("0.005"))
    assert line is not None and line.kind == "prepaid_applied"
    assert line.rounded == D("-123.46") and line.quantity == D("24691.2")
    again = env.run(credits.apply_to_invoice, "c1", D("123.456"), currency="USD",
                    at=T0 + timedelta(days=31), reference="inv-1", credit_value=D("0.005"))
    assert again is not None and again.quantity == line.quantity
    assert env.run(credits.available, "c1", at=T0 + timedelta(days=32)) == D("75308.8")


def _burn_worker(url: str, n: int, barrier: threading.Barrier, out: list[str]) -> None:
    barrier.wait()
    try:
        with state.session_scope(url) as s:
            credits.burn(s, "race", 10, at=T0 + timedelta(hours=1), reference=f"w{n}")
        out.append("ok")
    except InsufficientCredits:
        out.append("refused")


def test_concurrent_hard_burns_never_overspend(env: Env) -> None:
    env.customer("race")
    env.run(credits.grant, "race", 95, at=T0)
    env.run(credits.available, "race", at=T0)  # the wallet exists before the race
    workers = 12
    barrier = threading.Barrier(workers)
    out: list[str] = []
    threads = [threading.Thread(target=_burn_worker, args=(env.url, i, barrier, out))
               for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(out) == ["ok"] * 9 + ["refused"] * 3
    assert env.run(credits.available, "race", at=T0 + timedelta(hours=2)) == 5
    v = env.run(credits.verify, "race")
    assert v["ok"] and v["burned"] == 90


# --------------------------------------------------------------------------- the database agrees

_ops = st.lists(st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 300), st.sampled_from(["0", "0.01"]),
              st.none() | st.integers(1, 200), st.integers(0, 2)),
    st.tuples(st.just("burn"), st.integers(1, 250), st.sampled_from(["hard", "partial"])),
    st.tuples(st.just("void"), st.integers(0, 20)),
), max_size=14)
_n = iter(range(10**9))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=_ops, gaps=st.lists(st.integers(0, 60), min_size=14, max_size=14))
def test_database_wallet_matches_the_rules(sqlite_env: Env, ops: list, gaps: list[int]) -> None:
    cid = f"prop{next(_n)}"
    sqlite_env.customer(cid)
    mem = Wallet(cid)
    now = T0
    for op, gap in zip(ops, gaps, strict=False):
        now = now + timedelta(hours=gap)
        if op[0] == "grant":
            _, amount, cost, exp_h, prio = op
            g = sqlite_env.run(credits.grant, cid, amount, source="promotion", cost_basis=cost,
                               priority=prio, at=now,
                               expires_at=None if exp_h is None else now + timedelta(hours=exp_h))
            mem = mem.add(Grant(g.id, cid, D(amount), "promotion", now, g.expires_at, prio,
                                D(cost), created_at=now), at=now)
        elif op[0] == "burn":
            _, amount, mode = op
            try:
                r = sqlite_env.run(credits.burn, cid, amount, at=now, mode=mode)
            except InsufficientCredits:
                with pytest.raises(InsufficientCredits):
                    mem.burn(D(amount), now, mode=mode)
                continue
            mem, plan = mem.burn(D(amount), now, mode=mode)
            assert [(e.grant_id, e.amount) for e in r.entries] == [
                (e.grant_id, e.amount) for e in plan.entries]
        elif mem.grants:
            target = mem.grants[op[1] % len(mem.grants)]
            if target.voided_at is None:
                sqlite_env.run(credits.void_grant, cid, target.id, at=now)
                mem = mem.void(target.id, now)
        assert sqlite_env.run(credits.available, cid, at=now) == mem.advance(now).available(now)
    v = sqlite_env.run(credits.verify, cid)
    assert v["ok"] and v["difference"] == 0
