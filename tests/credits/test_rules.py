"""Credit rules: burn order, expiry, rollover, packs, top-ups, and the ledger invariant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.catalog.schema import CreditPack, PlanCredits, Rollover
from ratecard.clock import Window
from ratecard.credits.model import AutoTopUp, Grant, RolloverPolicy
from ratecard.credits.rules import (
    BurnSummary,
    Wallet,
    balance_notices,
    burn_order,
    conservation,
    credit_lines,
    credits_for,
    pack_grants,
    plan_burn,
    plan_grant,
    rollover_amount,
    topup_decision,
    validate_grant,
)
from ratecard.errors import Conflict, InsufficientCredits, InvalidAmount, NotFound, TimeInvalid

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def g(gid: str, amount: str | int, *, source: str = "promotion", prio: int = 10,
      exp: int | None = None, cost: str = "0", eff: int = 0) -> Grant:
    return Grant(id=gid, customer="c1", amount=Decimal(amount), source=source,
                 effective_at=T0 + timedelta(days=eff),
                 expires_at=None if exp is None else T0 + timedelta(days=exp),
                 priority=prio, cost_basis=Decimal(cost))


# --------------------------------------------------------------------------- burn order


def test_burn_order_priority_then_expiry_then_free_then_oldest() -> None:
    grants = [
        g("paid_no_exp", 10, source="purchase", cost="0.01"),
        g("free_no_exp", 10),
        g("exp_20_paid", 10, source="purchase", exp=20, cost="0.01"),
        g("exp_20_free_new", 10, exp=20, eff=2),
        g("exp_20_free_old", 10, exp=20, eff=1),
        g("exp_10", 10, exp=10),
        g("prio_5_no_exp", 10, prio=5),
    ]
    w = Wallet("c1")
    for x in grants:
        w = w.add(x)
    order = [s.grant.id for s in burn_order(w.states())]
    assert order == ["prio_5_no_exp", "exp_10", "exp_20_free_old", "exp_20_free_new",
                     "exp_20_paid", "free_no_exp", "paid_no_exp"]


def test_promotional_before_paid_burn_spans_grants() -> None:
    w = Wallet("c1").add(g("paid", 100, source="purchase", cost="0.005"))
    w = w.add(g("promo", 30, exp=30))
    w, plan = w.burn(Decimal(50), T0 + timedelta(days=5), reference="r1")
    assert plan.allocations() == [("promo", Decimal(30)), ("paid", Decimal(20))]
    assert plan.shortfall == 0
    assert w.balance_of("promo") == 0 and w.balance_of("paid") == 80


def test_burn_skips_grants_not_yet_effective_or_expired() -> None:
    w = Wallet("c1").add(g("future", 10, eff=10)).add(g("old", 10, exp=3)).add(g("now", 10))
    w, plan = w.burn(Decimal(15), T0 + timedelta(days=5), mode="partial")
    assert plan.allocations() == [("now", Decimal(10))]
    assert plan.shortfall == 5
    assert w.balance_of("old") == 0  # expired by the advance before the burn
    assert w.balance_of("future") == 10


def test_hard_burn_refuses_and_changes_nothing() -> None:
    w = Wallet("c1").add(g("a", 10))
    with pytest.raises(InsufficientCredits, match="10 usable credits"):
        w.burn(Decimal(11), T0, mode="hard")
    w2, plan = w.burn(Decimal(10), T0, mode="hard")
    assert plan.covered == 10 and w2.available(T0) == 0 and w.available(T0) == 10


def test_burn_from_a_voided_grant_is_a_clear_error() -> None:
    w = Wallet("c1").add(g("a", 10)).add(g("b", 10))
    w = w.void("a", T0 + timedelta(hours=1))
    with pytest.raises(Conflict, match="grant a was voided"):
        w.burn(Decimal(1), T0 + timedelta(hours=2), grant_id="a")
    with pytest.raises(NotFound):
        w.burn(Decimal(1), T0 + timedelta(hours=2), grant_id="zz")
    with pytest.raises(Conflict, match="already void"):
        w.void("a", T0 + timedelta(hours=3))
    w, plan = w.burn(Decimal(1), T0 + timedelta(hours=2), grant_id="b")
    assert plan.allocations() == [("b", Decimal(1))]


@pytest.mark.parametrize("amount", ["0", "-5"])
def test_bad_burn_amounts(amount: str) -> None:
    with pytest.raises(InvalidAmount):
        plan_burn([], Decimal(amount), T0)


# --------------------------------------------------------------------------- validation


def test_negative_grant_and_bad_expiry_are_refused() -> None:
    with pytest.raises(InvalidAmount, match="must be positive"):
        validate_grant(g("a", -5))
    with pytest.raises(InvalidAmount):
        validate_grant(g("a", 0))
    with pytest.raises(TimeInvalid, match="not after the effective time"):
        validate_grant(g("a", 5, eff=3, exp=2))
    with pytest.raises(TimeInvalid):
        validate_grant(g("a", 5, eff=3, exp=3))
    with pytest.raises(InvalidAmount, match="cost basis"):
        validate_grant(g("a", 5, cost="-1"))
    from ratecard.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown source"):
        validate_grant(g("a", 5, source="gift"))


# --------------------------------------------------------------------------- expiry, rollover


@pytest.mark.parametrize(("balance", "mn", "mx", "rolled"), [
    ("700", "0", "500", "500"),
    ("300", "0", "500", "300"),
    ("300", "0", None, "300"),
    ("40", "50", "500", "0"),
    ("50", "50", "500", "50"),
    ("0", "0", "500", "0"),
])
def test_rollover_amount(balance: str, mn: str, mx: str | None, rolled: str) -> None:
    policy = RolloverPolicy(min=Decimal(mn), max=None if mx is None else Decimal(mx))
    assert rollover_amount(Decimal(balance), policy) == Decimal(rolled)


def test_capped_rollover_then_rolled_credits_expire_a_period_later() -> None:
    pc = PlanCredits(grant=Decimal(1000), rollover=Rollover(max=Decimal(500)))
    jan = Window(T0, datetime(2026, 2, 1, tzinfo=UTC))
    feb = Window(jan.end, datetime(2026, 3, 1, tzinfo=UTC))
    mar_end = datetime(2026, 4, 1, tzinfo=UTC)
    w = Wallet("c1").add(plan_grant("pro", pc, customer="c1", period=jan,
                                     next_period_end=feb.end, currency="USD"))
    w, _ = w.burn(Decimal(300), T0 + timedelta(days=3))
    feb_grant = plan_grant("pro", pc, customer="c1", period=feb, next_period_end=mar_end,
                           currency="USD")
    w = w.advance(feb.start).add(feb_grant, at=feb.start)
    assert w.available(feb.start) == 1500  # 500 rolled (of 700 left) + 1000
    sums = conservation(w.entries)
    assert sums["expired"] == 200 and sums["rolled"] == 500 and sums["difference"] == 0
    rolled = next(x for x in w.grants if x.rolled_from is not None)
    assert rolled.expires_at == feb.end and rolled.rollover is None
    # rolled credits burn first (same priority, same expiry, older than the February grant)
    w, plan = w.burn(Decimal(600), feb.start + timedelta(days=1))
    assert plan.allocations() == [(rolled.id, Decimal(500)), (feb_grant.id, Decimal(100))]
    # at the end of February: the rolled grant is empty, the February grant rolls 500
    w = w.advance(feb.end)
    assert w.available(feb.end) == 500
    assert conservation(w.entries)["difference"] == 0


def test_plan_grant_with_expires_after_and_no_rollover() -> None:
    pc = PlanCredits(grant=Decimal(100), expires_after="7d")
    p = Window(T0, datetime(2026, 2, 1, tzinfo=UTC))
    gr = plan_grant("lite", pc, customer="c1", period=p, next_period_end=p.end, currency="USD")
    assert gr.expires_at == T0 + timedelta(days=7)
    assert gr.key == "plan:lite:2026-01-01T00:00:00Z" and gr.cost_basis == 0


# --------------------------------------------------------------------------- packs


def test_500_dollars_buys_100000_credits_and_a_case_costs_30_cents() -> None:
    pack = CreditPack(price=Decimal(500), credits=Decimal(100_000))
    grants = pack_grants("flex", pack, customer="c1", at=T0, currency="USD", id_prefix="p1")
    assert len(grants) == 1 and grants[0].cost_basis == Decimal("0.005")
    pc = PlanCredits(grant=Decimal(0), burn={"actions": Decimal(20)}, on_exhausted="block")
    credits = credits_for(pc, "actions", Decimal(3))
    assert credits == 60
    w = Wallet("c1").add(grants[0])
    w, plan = w.burn(credits, T0 + timedelta(hours=1))
    value = sum((-e.amount * grants[0].cost_basis for e in plan.entries), Decimal(0))
    assert value == Decimal("0.30")


def test_pack_with_bonus_burns_bonus_first_and_bonus_expires() -> None:
    pack = CreditPack(price=Decimal(100), credits=Decimal(1000), bonus=Decimal(150),
                      bonus_expires_after="30d")
    paid, bonus = pack_grants("p", pack, customer="c1", at=T0, currency="USD", id_prefix="x")
    assert (paid.amount, paid.cost_basis, paid.expires_at) == (1000, Decimal("0.1"), None)
    assert (bonus.amount, bonus.cost_basis, bonus.source) == (150, 0, "bonus")
    assert bonus.expires_at == T0 + timedelta(days=30)
    w = Wallet("c1").add(paid).add(bonus)
    w, plan = w.burn(Decimal(100), T0 + timedelta(days=1))
    assert plan.allocations() == [(bonus.id, Decimal(100))]
    w = w.advance(T0 + timedelta(days=31))
    assert w.available(T0 + timedelta(days=31)) == 1000
    assert conservation(w.entries)["expired"] == 50


def test_two_packs_multiply() -> None:
    pack = CreditPack(price=Decimal(10), credits=Decimal(100), bonus=Decimal(15))
    grants = pack_grants("p", pack, customer="c", at=T0, currency="USD", id_prefix="y",
                         quantity=2)
    assert [x.amount for x in grants] == [200, 30]
    with pytest.raises(InvalidAmount):
        pack_grants("p", pack, customer="c", at=T0, currency="USD", id_prefix="y", quantity=0)


# --------------------------------------------------------------------------- top-ups, notices


def test_topup_buys_up_to_target_with_unit_price() -> None:
    rule = AutoTopUp(threshold=Decimal(100), target=Decimal(1000), unit_price=Decimal("0.01"))
    d = topup_decision(rule, Decimal(50), Decimal(0))
    assert (d.credits, d.price, d.capped) == (950, Decimal("9.50"), False)
    assert not topup_decision(rule, Decimal(100), Decimal(0)).buys


def test_topup_monthly_cap_limits_the_purchase() -> None:
    rule = AutoTopUp(threshold=Decimal(100), target=Decimal(1000), unit_price=Decimal("0.01"),
                     monthly_cap=Decimal(20))
    d = topup_decision(rule, Decimal(0), Decimal("15"))
    assert (d.credits, d.price, d.capped) == (500, Decimal("5.00"), True)
    d = topup_decision(rule, Decimal(0), Decimal("20"))
    assert not d.buys and d.capped


def test_topup_with_packs_counts_bonus_and_respects_cap() -> None:
    pack = CreditPack(price=Decimal(50), credits=Decimal(500), bonus=Decimal(50))
    rule = AutoTopUp(threshold=Decimal(100), target=Decimal(2000), pack="p",
                     monthly_cap=Decimal(120))
    d = topup_decision(rule, Decimal(10), Decimal(0), pack)
    # 1990 needed → 4 packs of 550, but the cap allows 2 ($100)
    assert (d.packs, d.credits, d.price, d.capped) == (2, 1100, 100, True)


def test_notices_on_crossing_low_and_reaching_zero() -> None:
    kinds = [n.kind for n in balance_notices("c", Decimal(120), Decimal(80), Decimal(100), T0)]
    assert kinds == ["low_balance"]
    assert balance_notices("c", Decimal(80), Decimal(70), Decimal(100), T0) == []
    kinds = [n.kind for n in balance_notices("c", Decimal(120), Decimal(0), Decimal(100), T0)]
    assert kinds == ["low_balance", "depleted"]
    assert [n.kind for n in balance_notices("c", Decimal(5), Decimal(0), None, T0)] == [
        "depleted"]


# --------------------------------------------------------------------------- invoice lines


def test_credit_lines_applied_and_overage() -> None:
    pc = PlanCredits(grant=Decimal(1000), burn={"tasks": Decimal(1)},
                     overage_unit_price=Decimal("0.15"))
    lines = credit_lines([BurnSummary("tasks", Decimal(1200), Decimal(1000), Decimal(200),
                                      Decimal(0), Decimal(1200))], currency="USD",
                         plan_credits=pc)
    assert [(ln.kind, ln.quantity, ln.rounded) for ln in lines] == [
        ("credits_applied", 1000, 0), ("credit_overage", 200, Decimal("30.00"))]
    blocked = pc.model_copy(update={"on_exhausted": "block"})
    lines = credit_lines([BurnSummary("tasks", Decimal(1200), Decimal(1000), Decimal(200))],
                         currency="USD", plan_credits=blocked)
    assert [ln.kind for ln in lines] == ["credits_applied"]


# --------------------------------------------------------------------------- the ledger invariant

amounts = st.integers(min_value=1, max_value=400).map(Decimal) | st.decimals(
    min_value=Decimal("0.25"), max_value=Decimal(200), places=2).filter(lambda d: d > 0)

op = st.one_of(
    st.tuples(st.just("grant"), amounts, st.sampled_from(["plan", "purchase", "promotion",
                                                          "bonus"]),
              st.integers(0, 2), st.none() | st.integers(1, 200),
              st.sampled_from(["0", "0.005", "1"]),
              st.none() | st.tuples(st.integers(0, 50), st.none() | st.integers(0, 300)),
              st.integers(0, 48)),
    st.tuples(st.just("burn"), amounts, st.sampled_from(["hard", "partial"])),
    st.tuples(st.just("void"), st.integers(0, 30)),
    st.tuples(st.just("advance"), st.integers(1, 400)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40), st.lists(st.integers(0, 30), min_size=40, max_size=40))
def test_ledger_never_loses_or_creates_a_credit(ops: list[tuple], steps: list[int]) -> None:
    w = Wallet("c1")
    now = T0
    n = 0
    for i, o in enumerate(ops):
        now = now + timedelta(hours=steps[i])
        kind = o[0]
        if kind == "grant":
            _, amount, source, prio, exp_h, cost, roll, delay = o
            eff = now + timedelta(hours=delay)
            exp = None if exp_h is None else eff + timedelta(hours=exp_h)
            policy = None
            if roll is not None and exp is not None:
                mn, mx = roll
                if mx is None or mn <= mx:
                    policy = RolloverPolicy(min=Decimal(mn),
                                            max=None if mx is None else Decimal(mx),
                                            rolled_expires_at=exp + timedelta(hours=100))
            n += 1
            w = w.add(Grant(id=f"g{n}", customer="c1", amount=amount, source=source,
                            effective_at=eff, expires_at=exp, priority=prio,
                            cost_basis=Decimal(cost), rollover=policy), at=now)
        elif kind == "burn":
            _, amount, mode = o
            before = w.advance(now)
            usable = before.available(now)
            order = [s.grant.id for s in burn_order(before.states())
                     if s.balance > 0 and s.grant.usable_at(now)]
            try:
                w, plan = w.burn(amount, now, mode=mode)
            except InsufficientCredits:
                assert mode == "hard" and usable < amount
                continue
            assert plan.covered == min(amount, usable)
            assert plan.covered + plan.shortfall == amount
            touched = [gid for gid, _ in plan.allocations()]
            assert touched == order[:len(touched)]  # burn order is a prefix
            for gid in touched[:-1]:
                assert w.balance_of(gid) == 0  # every grant but the last is drained
        elif kind == "void":
            if w.grants:
                target = w.grants[o[1] % len(w.grants)]
                if target.voided_at is None:
                    w = w.void(target.id, now)
                    assert w.balance_of(target.id) == 0
        else:
            now = now + timedelta(hours=o[1])
            w = w.advance(now)
            for s in w.states():
                if s.grant.expires_at is not None and s.grant.expires_at <= now:
                    assert s.balance == 0
        # invariants after every operation
        sums = conservation(w.entries)
        assert sums["difference"] == 0
        assert sums["issued"] == sums["balance"] + sums["burned"] + sums["expired"] + sums[
            "voided"]
        for s in w.states():
            assert s.balance >= 0
        for x in w.grants:
            if x.rolled_from is not None:
                parent = next(p for p in w.grants if p.id == x.rolled_from)
                assert parent.rollover is not None
                assert x.amount >= parent.rollover.min
                assert parent.rollover.max is None or x.amount <= parent.rollover.max
    w = w.advance(now + timedelta(days=3650))
    assert conservation(w.entries)["difference"] == 0
