"""Subscriptions: creation rules, trials, anchors, terms, changes, grandfathering, migration."""

from __future__ import annotations

from typing import Any

import pytest

from ratecard.billing.subscriptions import (
    change_subscription,
    create_subscription,
    get_subscription,
    migrate_plan,
)
from ratecard.errors import Conflict, InvalidInput, NotFound

from .conftest import CATALOG, Billing, t


def kinds(invoice: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(ln["kind"], ln["plan"] or "", ln["amount"]) for ln in invoice["lines"]]


def test_bad_input_gets_clear_errors(billing: Billing) -> None:
    billing.customer("acme")
    billing.customer("eu", currency="EUR")
    with billing.session() as s:
        with pytest.raises(NotFound, match="no plan 'gold'; plans: api, committed"):
            create_subscription(s, "acme", "gold")
        with pytest.raises(NotFound, match="no customer 'nobody'"):
            create_subscription(s, "nobody", "starter")
        with pytest.raises(InvalidInput, match="pays in EUR but plan 'starter' v1 is priced"):
            create_subscription(s, "eu", "starter")
        with pytest.raises(InvalidInput, match="term 'month' is not a whole number of years"):
            create_subscription(s, "acme", "yearly", term="month")
        with pytest.raises(InvalidInput, match="at least 2 seats"):
            create_subscription(s, "acme", "team", seats=1)
        create_subscription(s, "eu", "euro", start=t("2026-01-01"))
        create_subscription(s, "acme", "starter", start=t("2026-01-01"))
        with pytest.raises(Conflict, match="already has subscription"):
            create_subscription(s, "acme", "pro", start=t("2026-02-01"))
        with pytest.raises(NotFound):
            get_subscription(s, 999)


def test_trial_defers_paid_service_and_usage_in_the_trial_is_free(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "starter", "2026-01-01", trial_days=14)
    with billing.session() as s:
        sub = get_subscription(s, sid)
        assert sub.trial_end == t("2026-01-15") and sub.status(t("2026-01-10")) == "trialing"
    billing.events("acme", "2026-01-05", n=50)  # in the trial
    billing.events("acme", "2026-01-20", n=12)
    billing.run("2026-02-16")
    rows = billing.invoices()
    assert [r["period_end"][:10] for r in rows] == ["2026-01-15", "2026-02-15"]
    assert kinds(rows[1]) == [("base_fee", "starter", "31.00"), ("usage", "starter", "2.58")]


def test_anchor_gives_a_partial_first_period(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "starter", "2026-01-15", anchor=t("2026-02-01"))
    billing.run("2026-02-01")
    first, second = billing.invoices()
    assert kinds(first) == [("base_fee", "starter", "17.00")]  # 17 of 31 days
    assert "17 of 31 days" in first["lines"][0]["description"]
    assert second["period_end"] == "2026-02-01T00:00:00Z"


def test_prepaid_year_term_takes_the_annual_discount(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "lite", "2026-01-01", term="year")
    billing.run("2026-03-01")
    rows = billing.invoices()
    assert kinds(rows[0]) == [("base_fee", "lite", "240.00"), ("discount", "lite", "-36.00")]
    assert rows[0]["total"] == "204.00"
    # no fee again until next January, and Lite has no usage charges: nothing in between
    assert [r["period_end"][:10] for r in rows] == ["2026-01-01"]
    billing.run("2027-01-01")
    assert [r["total"] for r in billing.invoices()] == ["204.00", "204.00"]


def test_grandfathered_subscription_keeps_v1_until_migrated(billing: Billing) -> None:
    billing.customer("old")
    billing.customer("new")
    old = billing.subscribe("old", "pro", "2026-01-01")
    billing.apply(CATALOG.replace("base_fee: 62", "base_fee: 93"))
    new = billing.subscribe("new", "pro", "2026-01-01")
    with billing.session() as s:
        assert get_subscription(s, old).phases[0].plan_version == 1
        assert get_subscription(s, new).phases[0].plan_version == 2
        preview = migrate_plan(s, "pro", 2, when="renewal", at=t("2026-01-10"), preview=True)
        assert [(i.subscription, i.from_version, i.effective_at) for i in preview] == [
            (old, 1, t("2026-02-01"))]
        assert get_subscription(s, old).phases[-1].plan_version == 1  # preview changed nothing
    billing.run("2026-01-20")
    assert [r["total"] for r in billing.invoices("old")] == ["62.00"]
    assert [r["total"] for r in billing.invoices("new")] == ["93.00"]
    with billing.session() as s:
        done = migrate_plan(s, "pro", 2, when="renewal", at=t("2026-01-20"))
        assert [i.error for i in done] == [None]
    billing.run("2026-02-01")
    assert billing.invoices("old")[1]["lines"][0]["amount"] == "93.00"  # v2 from renewal
    assert billing.invoices("old")[1]["lines"][0]["plan_version"] == 2


def test_migration_reports_each_subscription_that_cannot_move(billing: Billing) -> None:
    billing.customer("a")
    billing.customer("b")
    billing.subscribe("a", "starter", "2026-01-01")
    billing.subscribe("b", "starter", "2026-01-01")
    billing.apply(CATALOG.replace("    name: Starter\n    base_fee: 31",
                                  "    name: Starter\n    currency: EUR\n    base_fee: 31"))
    with billing.session() as s:
        items = migrate_plan(s, "starter", 2, when="now", at=t("2026-01-05"))
    assert len(items) == 2 and all("priced in EUR" in (i.error or "") for i in items)


def test_seat_change_now_prorates_seats(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "team", "2026-04-01", seats=3)
    with billing.session() as s:
        r = change_subscription(s, sid, seats=6, at=t("2026-04-16"))
    assert r.direction == "upgrade"
    billing.run("2026-05-01")
    first, second = billing.invoices()
    assert kinds(first) == [("seats", "team", "30.00")]
    prorations = [ln["amount"] for ln in second["lines"] if ln["kind"] == "proration"]
    assert prorations == ["-15.00", "30.00"]  # 15 of 30 April days, 3 then 6 seats
    assert [ln["amount"] for ln in second["lines"] if ln["kind"] == "seats"] == ["60.00"]


def test_change_during_trial_replaces_the_plan_without_proration(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "starter", "2026-01-01", trial_days=10)
    with billing.session() as s:
        change_subscription(s, sid, plan="pro", at=t("2026-01-05"))
    billing.run("2026-01-12")
    (first,) = billing.invoices()
    assert kinds(first) == [("base_fee", "pro", "62.00")]


def test_change_to_the_same_thing_is_refused(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "starter", "2026-01-01")
    with billing.session() as s, pytest.raises(InvalidInput, match="nothing to change"):
        change_subscription(s, sid, plan="starter", at=t("2026-01-05"))


def test_changes_cannot_rewrite_a_finalized_period(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "starter", "2026-01-01")
    billing.run("2026-02-05")
    with billing.session() as s, pytest.raises(Conflict, match="credit note"):
        change_subscription(s, sid, plan="pro", at=t("2026-01-20"))


def test_interval_change_restarts_the_anchor(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "starter", "2026-01-01")
    with billing.session() as s:
        r = change_subscription(s, sid, plan="yearly", when="now", at=t("2026-01-11"))
    assert r.to_phase.anchor == t("2026-01-11")
    billing.run("2026-02-11")
    rows = billing.invoices()
    assert [r["period_end"][:10] for r in rows] == ["2026-01-01", "2026-01-11", "2026-02-11"]
    at_change = kinds(rows[1])
    assert ("base_fee", "yearly", "1200.00") in at_change
    assert ("proration", "starter", "-21.00") in at_change  # 21 of 31 days unused
    assert all(k != "base_fee" for k, _, _ in kinds(rows[2]))
