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
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

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
    L, inv = InvoiceLineRow, InvoiceRow
    stmt = (select(L.invoice_id, L.position, L.amount, L.period_start, L.period_end,
                   L.plan_code, L.meter, L.group_key, inv.currency, CustomerRow.external_id)
            .join(inv, inv.id == L.invoice_id)
            .join(CustomerRow, CustomerRow.id == inv.customer_id)
            .where(inv.status != "void")
            .where(L.period_start < window.end)
            .where(or_(L.period_end > window.start,
                       and_(L.period_end <= L.period_start, L.period_start >= window.start))))
    rows = session.execute(stmt).all()
    ids = sorted({r[0] for r in rows})
    notes: dict[int, list[CreditNoteRow]] = defaultdict(list)
    for i in range(0, len(ids), 500):
        for note in session.scalars(select(CreditNoteRow).where(
                CreditNoteRow.invoice_id.in_(ids[i:i + 500]))):
            notes[note.invoice_id].append(note)
    credits: dict[int, dict[int, Decimal]] = {}
    for invoice_id, inv_notes in notes.items():
        amounts = dict(session.execute(
            select(L.position, L.amount).where(L.invoice_id == invoice_id)).all())
        credits[invoice_id] = _credits(amounts, inv_notes)
    facts: list[RevenueFact] = []
    currencies: set[str] = set()
    for invoice_id, position, amount, start, end, plan, meter, group, currency, customer in rows:
        share = _share(start, end, window)
        if share == 0:
            continue
        value = (amount - credits.get(invoice_id, {}).get(position, ZERO)) * share
        if value == 0:
            continue
        currencies.add(currency)
        facts.append(RevenueFact(customer=customer, amount=value, plan=plan, meter=meter,
                                 model=model_of(group)))
    return facts, currencies


def _credits(amounts: dict[int, Decimal], notes: list[CreditNoteRow]) -> dict[int, Decimal]:
    """Credit per line position: line notes on their line, whole-invoice notes pro rata."""
    out: dict[int, Decimal] = defaultdict(lambda: ZERO)
    total = sum((a for a in amounts.values() if a > 0), ZERO)
    for note in notes:
        for item in note.lines or []:
            value = D(str(item.get("amount", "0")))
            pos = item.get("line")
            if pos is not None:
                out[int(pos)] += value
            elif total > 0:
                for position, a in amounts.items():
                    if a > 0:
                        out[position] += value * a / total
    return out


def plan_spans(session: Session) -> list[PlanSpan]:
    """Each customer's plan over time, from its subscriptions' phases."""
    stmt = (select(PhaseRow.subscription_id, PhaseRow.starts_at, PhaseRow.plan_code,
                   SubscriptionRow.ends_at, CustomerRow.external_id)
            .join(SubscriptionRow, SubscriptionRow.id == PhaseRow.subscription_id)
            .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
            .order_by(PhaseRow.subscription_id, PhaseRow.starts_at))
    by_sub: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(stmt).all():
        by_sub[row[0]].append(row)
    spans: list[PlanSpan] = []
    for phases in by_sub.values():
        for i, (_, start, plan, ends_at, customer) in enumerate(phases):
            end = phases[i + 1][1] if i + 1 < len(phases) else ends_at
            if end is not None and end <= start:
                continue
            spans.append(PlanSpan(customer, plan, start, end))
    return spans


def byok_customers(session: Session) -> set[str]:
    return set(session.scalars(select(CustomerRow.external_id).where(CustomerRow.byok)))
