"""Invoices out: printable HTML (escaped) and a PDF."""

from __future__ import annotations

from ratecard.billing.render import invoice_html, invoice_pdf

from .conftest import Billing


def test_html_and_pdf_show_every_line_and_the_total(sqlite_billing: Billing) -> None:
    b = sqlite_billing
    b.customer("acme", name="Acme <Wú & Co>", email="ap@acme.example")
    b.subscribe("acme", "starter", "2026-01-01")
    b.events("acme", "2026-01-10", n=1234)
    b.run("2026-02-03")
    inv = b.invoice("INV-000002")
    html = invoice_html(inv)
    assert "Invoice INV-000002" in html
    assert "Acme &lt;Wú &amp; Co&gt;" in html and "<Wú" not in html
    for ln in inv["lines"]:
        assert ln["description"].split(" (")[0] in html
    assert "USD 1,609.96" in html  # 31 + (1234 - 10) × 1.29
    pdf = invoice_pdf(inv)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 1000
    assert b"/Title" in pdf


def test_draft_html_says_when_it_finalizes(sqlite_billing: Billing) -> None:
    b = sqlite_billing
    b.customer("acme")
    b.subscribe("acme", "starter", "2026-01-01")
    b.run("2026-02-01T06:00")
    html = invoice_html(b.invoice(2))
    assert "Draft invoice #2" in html and "re-rated until 2026-02-02 00:00" in html
