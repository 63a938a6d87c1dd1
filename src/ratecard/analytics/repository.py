"""Reading what margins need from the transactional state: revenue, plans over time, BYOK.

* **Revenue** is what was invoiced: every line of every invoice that is not void,
  spread over the line's service period (a yearly fee counts one twelfth-ish in a
  month: its share of the period's seconds that falls in the window), minus credit
  notes (a note on one line reduces that line; a note on the whole invoice is spread
  over its lines in proportion to their amounts).
* **Plan spans**: which plan each customer was on when (one subscription at a time).
* **BYOK customers**: the customer flag set by ``ratecard customers create --byok``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ratecard.analytics.model import RevenueFact
from ratecard.clock import Window
from ratecard.money import ZERO, D
from ratecard.store.duckdb_costs import PlanSpan
from ratecard.store.models import (
    CreditNoteRow,
    CustomerRow,
    InvoiceLineRow,
    InvoiceRow,
    PhaseRow,
    SubscriptionRow,
)

_US = timedelta(microseconds=1)


def _share(start: datetime, end: datetime, window: Window) -> Decimal:
    """The part of ``[start, end)`` inside ``window`` (a zero-length period counts whole
    when it starts inside)."""
    if end <= start:
        return Decimal(1) if start in window else ZERO
    lo, hi = max(start, window.start), min(end, window.end)
    if hi <= lo:
        return ZERO
    whole = (end - start) // _US
    part = (hi - lo) // _US
    return Decimal(part) / Decimal(whole)


def model_of(group_key: str | None) -> str | None:
    """The ``model`` of a dimension-priced line's group key (``model=gpt-4o,region=eu``)."""
    if not group_key:
        return None
    for part in group_key.split(","):
        k, _, v = part.partition("=")
        if k.strip() == "model":
            return v.strip()
    return None


def revenue_facts(session: Session, window: Window) -> tuple[list[RevenueFact], set[str]]:
    """Invoiced revenue falling in ``window``, and the currencies it is in."""
    stmt = (select(InvoiceRow, CustomerRow.external_id)
            .join(CustomerRow, CustomerRow.id == InvoiceRow.customer_id)
            .where(InvoiceRow.status != "void")
            .where(InvoiceRow.period_start < window.end)
            .options(selectinload(InvoiceRow.lines)))
    facts: list[RevenueFact] = []
    currencies: set[str] = set()
    invoices: dict[int, tuple[InvoiceRow, str]] = {}
    for inv, customer in session.execute(stmt).all():
        invoices[inv.id] = (inv, customer)
    notes: dict[int, list[CreditNoteRow]] = defaultdict(list)
    if invoices:
        for note in session.scalars(select(CreditNoteRow).where(
                CreditNoteRow.invoice_id.in_(list(invoices)))):
            notes[note.invoice_id].append(note)
    for inv, customer in invoices.values():
        lines: list[InvoiceLineRow] = list(inv.lines)
        credit = _credits(lines, notes.get(inv.id, []))
        for ln in lines:
            share = _share(ln.period_start, ln.period_end, window)
            if share == 0:
                continue
            amount = (ln.amount - credit.get(ln.position, ZERO)) * share
            if amount == 0:
                continue
            currencies.add(inv.currency)
            facts.append(RevenueFact(customer=customer, amount=amount, plan=ln.plan_code,
                                     meter=ln.meter, model=model_of(ln.group_key)))
    return facts, currencies


def _credits(lines: list[InvoiceLineRow], notes: list[CreditNoteRow]) -> dict[int, Decimal]:
    """Credit per line position: line notes on their line, whole-invoice notes pro rata."""
    out: dict[int, Decimal] = defaultdict(lambda: ZERO)
    total = sum((ln.amount for ln in lines if ln.amount > 0), ZERO)
    for note in notes:
        for item in note.lines or []:
            value = D(str(item.get("amount", "0")))
            pos = item.get("line")
            if pos is not None:
                out[int(pos)] += value
            elif total > 0:
                for ln in lines:
                    if ln.amount > 0:
                        out[ln.position] += value * ln.amount / total
    return out


def plan_spans(session: Session) -> list[PlanSpan]:
    """Each customer's plan over time, from its subscriptions' phases."""
    stmt = (select(SubscriptionRow, CustomerRow.external_id)
            .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
            .options(selectinload(SubscriptionRow.phases)))
    spans: list[PlanSpan] = []
    for sub, customer in session.execute(stmt).all():
        phases: list[PhaseRow] = sorted(sub.phases, key=lambda p: p.starts_at)
        for i, ph in enumerate(phases):
            end = phases[i + 1].starts_at if i + 1 < len(phases) else sub.ends_at
            if end is not None and end <= ph.starts_at:
                continue
            spans.append(PlanSpan(customer, ph.plan_code, ph.starts_at, end))
    return spans


def byok_customers(session: Session) -> set[str]:
    return set(session.scalars(select(CustomerRow.external_id).where(CustomerRow.byok)))
