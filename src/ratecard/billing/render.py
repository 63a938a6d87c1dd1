"""Invoices out: a printable HTML page (Jinja2) and a PDF (fpdf2)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from ratecard.money import D

_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)


def _money(text: str | None) -> str:
    if text is None:
        return ""
    value = D(text)
    return f"{value:,}"


def _qty(text: str) -> str:
    value = D(text)
    return f"{value.normalize():,f}" if value == value.to_integral_value() else text


def _unit(text: str | None) -> str:
    if text is None:
        return ""
    value = D(text)
    shown = value.quantize(Decimal("0.000001")).normalize() if value.as_tuple().exponent < -6 \
        else value
    return f"{shown:,f}"


def _context(inv: dict[str, Any]) -> dict[str, Any]:
    number = inv["number"]
    heading = f"Invoice {number}" if number else f"Draft invoice #{inv['id']}"
    start, end = inv["period_start"][:10], inv["period_end"][:10]
    period = f"{start} – {end}" if start != end else f"opening, {start}"
    lines = [
        {"position": ln["position"], "description": ln["description"],
         "quantity": _qty(ln["quantity"]), "unit_price": _unit(ln["unit_price"]),
         "amount": _money(ln["amount"]), "negative": D(ln["amount"]) < 0}
        for ln in inv["lines"]
    ]
    return {"inv": inv, "title": heading, "heading": heading, "period": period,
            "issue_date": end, "lines": lines, "total": _money(inv["total"])}


def invoice_html(inv: dict[str, Any]) -> str:
    """The invoice (as :func:`ratecard.billing.invoices.invoice_view` gives it) as HTML."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("ratecard.billing", "templates"),
                      autoescape=select_autoescape(["html"]))
    return env.get_template("invoice.html").render(**_context(inv))


def invoice_pdf(inv: dict[str, Any]) -> bytes:
    """The invoice as a one-or-more page A4 PDF."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    ctx = _context(inv)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(18, 18, 18)
    font = next((f for f in _FONTS if f.exists()), None)
    if font is not None:
        pdf.add_font("Body", "", str(font))
        bold = font.with_name("DejaVuSans-Bold.ttf")
        pdf.add_font("Body", "B", str(bold if bold.exists() else font))
        family = "Body"

        def text(s: str) -> str:
            return s
    else:  # core fonts: latin-1 only
        family = "Helvetica"

        def text(s: str) -> str:
            return s.replace("–", "-").replace("−", "-").encode(
                "latin-1", "replace").decode("latin-1")
    pdf.set_title(ctx["title"])
    pdf.set_creator("ratecard")
    pdf.add_page()
    width = pdf.w - 36
    pdf.set_font(family, "B", 18)
    pdf.cell(0, 10, text(ctx["heading"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(family, "", 10)
    for label, value in (("Status", inv["status"]), ("Invoice date", ctx["issue_date"]),
                         ("Period", ctx["period"]), ("Currency", inv["currency"]),
                         ("Bill to", inv.get("customer_name") or inv["customer"]),
                         ("Customer id", inv["customer"]),
                         ("Subscription", f"#{inv['subscription']}")):
        pdf.cell(32, 6, text(label))
        pdf.cell(0, 6, text(str(value)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    cols = (8, width - 8 - 22 - 28 - 30, 22, 28, 30)
    pdf.set_font(family, "B", 9)
    for w, h, align in zip(cols, ("#", "Description", "Quantity", "Unit price", "Amount"),
                           ("L", "L", "R", "R", "R"), strict=True):
        pdf.cell(w, 7, h, border="B", align=align)
    pdf.ln(7)
    pdf.set_font(family, "", 9)
    for ln in ctx["lines"]:
        desc = text(ln["description"])
        h = _lines_height(pdf, cols[1], desc)
        if pdf.get_y() + h > pdf.page_break_trigger:
            pdf.add_page()
        x, y = pdf.l_margin, pdf.get_y()
        pdf.cell(cols[0], 5, str(ln["position"]))
        pdf.multi_cell(cols[1], 5, desc, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.cell(cols[2], 5, text(ln["quantity"]), align="R")
        pdf.cell(cols[3], 5, text(ln["unit_price"]), align="R")
        pdf.cell(cols[4], 5, text(ln["amount"]), align="R")
        pdf.set_xy(x, y + h + 1)
    pdf.set_font(family, "B", 11)
    pdf.cell(width - cols[4], 9, "Total", border="T")
    pdf.cell(cols[4], 9, text(f"{inv['currency']} {ctx['total']}"), border="T", align="R")
    pdf.ln(9)
    pdf.set_font(family, "", 9)
    for cn in inv.get("credit_notes", []):
        reason = f": {cn['reason']}" if cn["reason"] else ""
        pdf.cell(width - cols[4], 6, text(f"Credit note {cn['number']}{reason}"))
        pdf.cell(cols[4], 6, text(f"-{_money(cn['total'])}"), align="R")
        pdf.ln(6)
    pdf.ln(4)
    pdf.multi_cell(0, 4.5, text(
        "Fees for a period ahead are billed in advance; usage is billed in arrears for the "
        "period shown on its line. Each line is rounded once to the currency's minor unit; "
        "the total is the sum of the lines."))
    return bytes(pdf.output())


def _lines_height(pdf: Any, width: float, s: str) -> float:
    rows = pdf.multi_cell(width, 5, s, dry_run=True, output="LINES")
    return 5.0 * max(1, len(rows))
