"""Invoice runs on SQLite and PostgreSQL: creation, idempotency, re-rating, finalization."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from ratecard.billing import invoices as inv
from ratecard.billing.subscriptions import cancel_subscription, change_subscription
from ratecard.errors import Conflict, InvalidInput, InvoiceFinalized, NotFound
from ratecard.money import D
from ratecard.store.models import InvoiceLineRow, InvoiceRow

from .conftest import Billing, t


def amounts(invoice: dict[str, Any]) -> list[tuple[str, str]]:
    return [(ln["kind"], ln["amount"]) for ln in invoice["lines"]]


def assert_exact(invoice: dict[str, Any]) -> None:
    total = sum((D(ln["amount"]) for ln in invoice["lines"]), Decimal(0))
    assert D(invoice["total"]) == total
    for ln in invoice["lines"]:
        assert D(ln["amount"]) == D(ln["precise_amount"]).quantize(Decimal("0.01"),
                                                                     rounding="ROUND_HALF_UP")


def test_first_invoice_bills_the_fee_in_advance_then_usage_in_arrears(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "starter", "2026-01-01")
    billing.events("acme", "2026-01-10", n=25)
    billing.events("acme", "2026-02-01", n=3)  # next period
    report = billing.run("2026-02-01T00:00")
    assert report.created == 2 and not report.errors
    first, second = billing.invoices()
    assert first["period_start"] == first["period_end"] == "2026-01-01T00:00:00Z"
    assert amounts(first) == [("base_fee", "31.00")]
    assert (second["period_start"], second["period_end"]) == ("2026-01-01T00:00:00Z",
                                                                "2026-02-01T00:00:00Z")
    # February's fee in advance, January's 25 resolutions (10 included) in arrears
    assert amounts(second) == [("base_fee", "31.00"), ("usage", "19.35")]
    assert second["total"] == "50.35"
    assert (first["status"], second["status"]) == ("finalized", "draft")
    assert (first["number"], second["number"]) == ("INV-000001", None)
    for i in (first, second):
        assert_exact(i)


def test_a_run_is_idempotent(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "starter", "2026-01-01")
    billing.events("acme", "2026-01-10", n=12)
    billing.run("2026-03-05")
    before = billing.invoices()
    again = billing.run("2026-03-05")
    assert again.created == 0 and again.rerated == 0 and again.finalized == 0
    assert billing.invoices() == before
    with billing.session() as s:
        assert s.scalar(select(func.count()).select_from(InvoiceRow)) == 3


def test_late_event_re_rates_a_draft_until_the_grace_period_ends(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "starter", "2026-01-01")
    billing.events("acme", "2026-01-10", n=10)
    billing.run("2026-02-01T01:00")
    jan = billing.invoices()[1]
    assert jan["status"] == "draft" and jan["total"] == "31.00"
    billing.events("acme", "2026-01-31T23:00", n=2)  # arrives late
    report = billing.run("2026-02-01T12:00")
    assert report.rerated == 1
    jan = billing.invoice(jan["id"])
    assert jan["total"] == "33.58" and jan["status"] == "draft"
    assert jan["notes"][-1]["old_total"] == "31.00"
    report = billing.run("2026-02-02T00:00")  # grace (24 h) over: finalized
    assert report.finalized == 1
    jan = billing.invoice(jan["id"])
    assert jan["status"] == "finalized" and jan["number"] == "INV-000002"
    billing.events("acme", "2026-01-31T23:30", n=5)  # too late now: the invoice stays
    billing.run("2026-02-03T00:00")
    assert billing.invoice(jan["id"])["total"] == "33.58"


def test_numbers_have_no_gaps_across_subscriptions(billing: Billing) -> None:
    for i in range(5):
        billing.customer(f"c{i}")
        billing.subscribe(f"c{i}", "starter", f"2026-01-0{i + 1}")
    billing.run("2026-04-10", chunk=2)
    rows = [i for i in billing.invoices() if i["number"]]
    numbers = sorted(int(i["number"].split("-")[1]) for i in rows)
    assert numbers == list(range(1, len(rows) + 1))
    assert len(rows) == 5 * 4  # opening + Feb, Mar, Apr boundaries each


def test_finalized_invoice_cannot_change(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "starter", "2026-01-01")
    billing.run("2026-01-03")
    with pytest.raises(InvoiceFinalized, match="credit note"), billing.session() as s:
        row = s.scalars(select(InvoiceRow)).one()
        row.lines[0].amount = Decimal("1.00")
        s.flush()
    with pytest.raises(InvoiceFinalized, match="ratecard invoices credit INV-000001"), \
            billing.session() as s:
        row = s.scalars(select(InvoiceRow)).one()
        row.total = Decimal("0")
        s.flush()
    with pytest.raises(InvoiceFinalized), billing.session() as s:
        row = s.scalars(select(InvoiceRow)).one()
        s.add(InvoiceLineRow(invoice_id=row.id, position=9, kind="x", description="x",
                             quantity=Decimal(1), amount=Decimal(1), precise=Decimal(1),
                             period_start=row.period_start, period_end=row.period_end,
                             details={}))
        s.flush()
    assert billing.invoice("INV-000001")["total"] == "31.00"


def test_credit_notes_correct_without_editing(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "starter", "2026-01-01")
    billing.run("2026-01-03")
    with billing.session() as s:
        with pytest.raises(InvalidInput, match="more than"):
            inv.create_credit_note(s, "INV-000001", amount=Decimal("40"))
        n1 = inv.create_credit_note(s, "INV-000001", amount=Decimal("10.50"), reason="sla")
        n2 = inv.create_credit_note(s, "INV-000001", line=1)
        assert (n1.number, n2.number) == (1, 2)
        assert n2.total == Decimal("20.50")
        with pytest.raises(InvalidInput, match="nothing to credit"):
            inv.create_credit_note(s, "INV-000001")
    shown = billing.invoice("INV-000001")
    assert shown["total"] == "31.00" and shown["credited"] == "31.00"
    assert [c["number"] for c in shown["credit_notes"]] == ["CN-000001", "CN-000002"]


def test_void_paid_and_drafts(billing: Billing) -> None:
    billing.customer("acme")
    billing.subscribe("acme", "starter", "2026-01-01")
    billing.run("2026-02-01T05:00")
    with billing.session() as s:
        with pytest.raises(Conflict, match="draft"):
            inv.create_credit_note(s, 2)
        inv.mark_paid(s, "INV-000001")
        with pytest.raises(Conflict, match="paid"):
            inv.void_invoice(s, "INV-000001")
        inv.void_invoice(s, 2, "billed by mistake")
        with pytest.raises(Conflict, match="already void"):
            inv.void_invoice(s, 2)
        with pytest.raises(NotFound):
            inv.get_invoice(s, "INV-000099")
    assert billing.invoice(2)["status"] == "void"
    report = billing.run("2026-02-05")  # the void boundary is not billed again
    assert report.created == 0
    assert [i["status"] for i in billing.invoices()] == ["paid", "void"]


def test_one_failing_subscription_is_reported_and_the_run_goes_on(billing: Billing) -> None:
    billing.customer("good")
    billing.customer("bad")
    billing.subscribe("good", "api", "2026-01-01")
    billing.subscribe("bad", "api", "2026-01-01")
    billing.events("good", "2026-01-05", type_="llm.request", tokens=2000, model="small")
    billing.events("bad", "2026-01-05", type_="llm.request", tokens=1000, model="unknown")
    report = billing.run("2026-02-03")
    assert [e.customer for e in report.errors] == ["bad"]
    assert "unknown" in report.errors[0].message
    good = billing.invoices("good")
    assert len(good) == 1 and good[0]["total"] == "1.00"
    assert billing.invoices("bad") == []


def test_a_crash_mid_run_is_completed_by_a_re_run(billing: Billing) -> None:
    for i in range(6):
        billing.customer(f"c{i}")
        billing.subscribe(f"c{i}", "starter", "2026-01-01")
    calls = {"n": 0}

    def crashing() -> Any:
        calls["n"] += 1
        if calls["n"] == 4:  # planning session, two chunks, then the crash
            raise RuntimeError("power cut")
        return billing.session()

    with pytest.raises(RuntimeError):
        inv.run_invoices(crashing, t("2026-02-03"), billing.usage, chunk=2)
    assert len(billing.invoices()) == 8  # two chunks of two subscriptions, two invoices each
    report = billing.run("2026-02-03", chunk=2)
    assert report.created == 4
    rows = billing.invoices()
    assert len(rows) == 12
    assert len({(i["subscription"], i["period_end"]) for i in rows}) == 12
    numbers = sorted(int(i["number"].split("-")[1]) for i in rows)
    assert numbers == list(range(1, 13))


def test_upgrade_mid_period_prorates_by_day(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "starter", "2026-01-01")
    billing.events("acme", "2026-01-05", n=20)
    billing.events("acme", "2026-01-20", n=150)
    with billing.session() as s:
        r = change_subscription(s, sid, plan="pro", at=t("2026-01-15T09:00"))
    assert r.direction == "upgrade" and r.effective_at == t("2026-01-15T09:00")
    billing.run("2026-02-01")
    feb = billing.invoices()[1]
    lines = {(ln["kind"], ln["plan"]): ln for ln in feb["lines"]}
    # 17 of 31 days: -31 × 17/31 = -17.00 credit, 62 × 17/31 = 34.00 charge
    assert lines[("proration", "starter")]["amount"] == "-17.00"
    assert lines[("proration", "pro")]["amount"] == "34.00"
    assert lines[("base_fee", "pro")]["amount"] == "62.00"
    usage = [ln for ln in feb["lines"] if ln["kind"] == "usage"]
    assert [(u["plan"], u["quantity"], u["amount"]) for u in usage] == [
        ("starter", "20", "12.90"), ("pro", "150", "44.50")]
    assert feb["total"] == "136.40"
    assert_exact(feb)


def test_downgrade_waits_for_renewal_and_cancel_now_credits(billing: Billing) -> None:
    billing.customer("acme")
    sid = billing.subscribe("acme", "pro", "2026-01-01")
    with billing.session() as s:
        r = change_subscription(s, sid, plan="starter", at=t("2026-01-10"))
    assert r.direction == "downgrade" and r.effective_at == t("2026-02-01")
    with billing.session() as s:
        cancel_subscription(s, sid, when="now", at=t("2026-02-11"))
    billing.run("2026-03-01")
    rows = billing.invoices()
    assert [i["period_end"][:10] for i in rows] == ["2026-01-01", "2026-02-01", "2026-02-11"]
    assert amounts(rows[1])[0] == ("base_fee", "31.00")  # starter from Feb
    closing = rows[2]
    credit = [ln for ln in closing["lines"] if ln["kind"] == "proration"]
    # 18 of 28 February days unused: -31 × 18/28 = -19.93
    assert [c["amount"] for c in credit] == ["-19.93"]
    with billing.session() as s, pytest.raises(Conflict, match="cancelled"):
        change_subscription(s, sid, plan="pro", at=t("2026-02-12"))


def test_grace_hours_setting_is_read_from_the_workspace(tmp_path: Any) -> None:
    from ratecard.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", create=True)
    (tmp_path / "ws" / "ratecard.toml").write_text("[billing]\ngrace_hours = 2\n")
    ws = Workspace.open(tmp_path / "ws")
    assert inv.BillingSettings.from_workspace(ws).grace == timedelta(hours=2)
    (tmp_path / "ws" / "ratecard.toml").write_text("[billing]\ngrace_hours = 'soon'\n")
    with pytest.raises(InvalidInput, match="grace_hours"):
        inv.BillingSettings.from_workspace(Workspace.open(tmp_path / "ws"))
