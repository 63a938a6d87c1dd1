"""Billing stories through whole periods, with usage in the DuckDB store.

Each story runs on SQLite and on PostgreSQL; amounts are worked by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from billing_support import Story, assert_exact, line_total, t

from ratecard.billing.subscriptions import change_subscription, migrate_plan
from ratecard.money import D

SUPPORT = (Path(__file__).resolve().parents[2] / "examples" / "support_agent.yaml").read_text()


@pytest.fixture
def story(state_url: str, tmp_path: Path) -> Iterator[Story]:
    s = Story(state_url, tmp_path)
    yield s
    s.close()


def lines(invoice: dict) -> list[tuple[str, str, str]]:
    return [(ln["kind"], ln["plan"] or "", ln["amount"]) for ln in invoice["lines"]]


def test_upgrade_in_the_middle_of_a_period(story: Story) -> None:
    """Starter ($199, 200 included, $1.29) to Pro ($599, 1,000 included, $0.89) on Jan 15."""
    story.apply(SUPPORT)
    story.customer("helpdesk")
    sid = story.subscribe("helpdesk", "starter", "2026-01-01")
    story.send("helpdesk", "ticket.closed", "2026-01-08", n=260, outcome="resolved")
    story.send("helpdesk", "ticket.closed", "2026-01-09", n=40, outcome="escalated")
    story.run("2026-01-10")
    with story.session() as s:
        change_subscription(s, sid, plan="pro", at=t("2026-01-15T14:30"))
    story.send("helpdesk", "ticket.closed", "2026-01-20", n=700, outcome="resolved")
    story.send("helpdesk", "ticket.closed", "2026-02-10", n=1100, outcome="resolved")
    story.run("2026-03-02T12:00")
    jan1, feb1, mar1 = story.invoices("helpdesk")
    assert lines(jan1) == [("base_fee", "starter", "199.00")]
    # Feb 1: Pro for February in advance; 17 of 31 January days prorated (the 15th counts
    # as a Pro day): Starter credit -199 × 17/31 = -109.13, Pro charge 599 × 17/31 = 328.48;
    # Starter rates Jan 1-15 usage (260 - 200 included) × 1.29 = 77.40, Pro Jan 15-31
    # (700 within 1,000 included) = 0.
    assert lines(feb1) == [
        ("base_fee", "pro", "599.00"),
        ("proration", "starter", "-109.13"),
        ("proration", "pro", "328.48"),
        ("usage", "starter", "77.40"),
        ("usage", "pro", "0.00"),
    ]
    assert feb1["total"] == "895.75"
    # Mar 1: February usage on Pro: (1,100 - 1,000) × 0.89 = 89.00
    assert lines(mar1) == [("base_fee", "pro", "599.00"), ("usage", "pro", "89.00")]
    for i in (jan1, feb1, mar1):
        assert_exact(i)
        assert i["status"] == "finalized"


def test_a_late_event_and_a_voided_event_change_a_draft(story: Story) -> None:
    story.apply(SUPPORT)
    story.customer("acme")
    story.subscribe("acme", "starter", "2026-01-01")
    story.send("acme", "ticket.closed", "2026-01-12", n=210, outcome="resolved")
    story.run("2026-02-01T00:30")
    draft = story.invoices("acme")[1]
    assert draft["status"] == "draft" and line_total(draft, "usage") == D("12.90")
    late = story.send("acme", "ticket.closed", "2026-01-31T23:59", n=5, outcome="resolved")
    report = story.run("2026-02-01T09:00")
    assert report.rerated == 1
    draft = story.invoices("acme")[1]
    assert line_total(draft, "usage") == D("19.35")  # 15 over × 1.29
    story.store.void(late[0], "sent twice by the client")
    story.run("2026-02-01T20:00")
    draft = story.invoices("acme")[1]
    assert line_total(draft, "usage") == D("18.06") and draft["status"] == "draft"
    assert [n["new_total"] for n in draft["notes"]] == ["218.35", "217.06"]
    story.run("2026-02-02T00:00")  # the grace period (24 h) is over
    final = story.invoices("acme")[1]
    assert final["status"] == "finalized" and final["total"] == "217.06"
    story.send("acme", "ticket.closed", "2026-01-30", n=50, outcome="resolved")
    story.run("2026-02-03")
    assert story.invoices("acme")[1]["total"] == "217.06"  # final stays final


def test_grandfathered_on_v1_while_new_customers_get_v2_then_migrated_at_renewal(
    story: Story,
) -> None:
    story.apply(SUPPORT)
    story.customer("early")
    story.subscribe("early", "pro", "2026-01-01")
    v2 = SUPPORT.replace("base_fee: 599", "base_fee: 649").replace(
        "included: 1000, unit_price: \"0.89\"", "included: 800, unit_price: \"0.99\"")
    result = story.apply(v2)
    assert [(p.code, p.new_version) for p in result.plans if p.kind == "changed"] == [("pro", 2)]
    story.customer("late")
    story.subscribe("late", "pro", "2026-01-01")
    for cid in ("early", "late"):
        story.send(cid, "ticket.closed", "2026-01-20", n=900, outcome="resolved")
    story.run("2026-02-02")
    early, late = story.invoices("early"), story.invoices("late")
    assert lines(early[1]) == [("base_fee", "pro", "599.00"), ("usage", "pro", "0.00")]
    # late subscribed after v2 was applied: 900 - 800 included = 100 × 0.99
    assert lines(late[1]) == [("base_fee", "pro", "649.00"), ("usage", "pro", "99.00")]
    assert {ln["plan_version"] for ln in early[1]["lines"]} == {1}
    with story.session() as s:
        moved = migrate_plan(s, "pro", 2, when="renewal", at=t("2026-02-15"))
    assert [(m.customer, m.effective_at) for m in moved] == [
        ("early", datetime(2026, 3, 1, tzinfo=UTC))]
    story.send("early", "ticket.closed", "2026-02-20", n=900, outcome="resolved")
    story.send("early", "ticket.closed", "2026-03-20", n=900, outcome="resolved")
    story.run("2026-04-02")
    early = story.invoices("early")
    # Mar 1: v2's fee in advance, February's usage still on v1 (900 within 1,000)
    assert lines(early[2]) == [("base_fee", "pro", "649.00"), ("usage", "pro", "0.00")]
    assert [ln["plan_version"] for ln in early[2]["lines"]] == [2, 1]
    # Apr 1: March on v2: (900 - 800) × 0.99
    assert lines(early[3]) == [("base_fee", "pro", "649.00"), ("usage", "pro", "99.00")]


def test_a_customer_far_from_utc_across_a_daylight_saving_change(story: Story) -> None:
    """Auckland: UTC+13 until 2026-04-05, then UTC+12. Periods follow local midnight."""
    story.apply(SUPPORT)
    story.customer("kiwi", timezone="Pacific/Auckland")
    story.subscribe("kiwi", "starter", datetime(2026, 2, 28, 11, tzinfo=UTC))  # Mar 1 local
    # 2026-03-31T11:30Z is already April 1 in Auckland: April's usage
    story.send("kiwi", "ticket.closed", "2026-03-31T10:30", n=201, outcome="resolved")
    story.send("kiwi", "ticket.closed", "2026-03-31T11:30", n=203, outcome="resolved")
    story.run("2026-05-02")
    rows = story.invoices("kiwi")
    assert [(r["period_start"], r["period_end"]) for r in rows] == [
        ("2026-02-28T11:00:00Z", "2026-02-28T11:00:00Z"),
        ("2026-02-28T11:00:00Z", "2026-03-31T11:00:00Z"),  # March: 31 local days
        ("2026-03-31T11:00:00Z", "2026-04-30T12:00:00Z"),  # April: 30 days, 1 hour longer
    ]
    assert line_total(rows[1], "usage") == D("1.29")  # 201 - 200 included
    assert line_total(rows[2], "usage") == D("3.87")  # 203 - 200 included
    assert "(2026-03-01 – 2026-04-01)" in rows[1]["lines"][1]["description"]  # local, [start, end)


YEARLY = """
currency: USD
meters:
  runs: {event: workflow.run, aggregation: count}
plans:
  platform:
    name: Platform (annual)
    interval: year
    base_fee: 12000
    charges:
      - {name: Workflow runs, meter: runs, model: per_unit, included: 100, unit_price: "0.05"}
"""


def test_a_year_plan_billed_in_advance_with_monthly_usage(story: Story) -> None:
    story.apply(YEARLY)
    story.customer("bigco")
    story.subscribe("bigco", "platform", "2026-01-01")
    for month in range(1, 13):
        story.send("bigco", "workflow.run", f"2026-{month:02d}-15", n=100 + month * 10)
    story.run("2027-01-03")
    rows = story.invoices("bigco")
    assert len(rows) == 13
    fees = [(r["period_end"][:10], line_total(r, "base_fee")) for r in rows
            if line_total(r, "base_fee")]
    assert fees == [("2026-01-01", D("12000.00")), ("2027-01-01", D("12000.00"))]
    usage = [line_total(r, "usage") for r in rows[1:]]
    # month m: (100 + 10 m) - 100 included = 10 m runs × 0.05, included resets monthly
    assert usage == [D("0.50") * m for m in range(1, 13)]
    for r in rows:
        assert_exact(r)


COPILOT = (Path(__file__).resolve().parents[2] / "examples" / "copilot_seats.yaml").read_text()


def test_credit_overage_comes_from_the_wallet_with_its_rollover(story: Story) -> None:
    """Team: 3,000 credits a month, up to 1,500 roll over, overage at $0.01 a credit."""
    from ratecard.credits import service as credits

    story.apply(COPILOT)
    story.customer("studio")
    story.subscribe("studio", "team", "2026-01-01", seats=5)
    with story.session() as s:
        credits.burn_usage(s, "studio", {"ai_credits": D(1000)}, at=t("2026-01-20"),
                           reference="jan")
        credits.burn_usage(s, "studio", {"ai_credits": D(5000)}, at=t("2026-02-20"),
                           reference="feb")
    story.run("2026-03-02")
    _, jan, feb = story.invoices("studio")
    assert [ln["kind"] for ln in jan["lines"] if ln["details"].get("source")] == [
        "credits_applied"]
    overage = [ln for ln in feb["lines"] if ln["kind"] == "credit_overage"]
    # February's balance: 3,000 granted + 1,500 rolled over (capped) = 4,500; 500 short
    assert [(ln["quantity"], ln["amount"]) for ln in overage] == [("500", "5.00")]
    assert not [ln for ln in feb["lines"] if ln["kind"] == "credits"]  # no estimate
    assert_exact(feb)
