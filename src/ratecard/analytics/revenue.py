"""Revenue by stream and month, MRR and ARR, per currency.

Pure functions over plain records (no storage), plus :func:`revenue_report`, a thin
read over billing's repositories. Amounts in different currencies are never added:
every result is keyed by currency first.

* Revenue by stream: the invoice lines of every invoice that is not void, bucketed by
  the calendar month (UTC) of the line's invoice period start and the line's
  ``stream`` (``subscription``, ``usage``, ``license``, ``marketplace``, ``services``;
  lines without one count as ``other``). A credit note is netted against the
  credited invoice's month, split across that invoice's streams in proportion to
  their amounts (:func:`ratecard.money.allocate`, so no minor unit is lost).
* MRR at an instant: for every subscription that is ``active`` or ``canceling`` then
  (trials pay nothing), its plan's recurring fees (base fee plus billable seats) per
  plan interval, divided by the months in the interval (a year ÷ 12, a quarter ÷ 3),
  less the prepay discount of the phase's term. ARR = 12 × MRR.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ratecard.catalog.schema import Plan
from ratecard.clock import INTERVAL_MONTHS
from ratecard.money import ZERO, allocate, quantize

STREAMS = ("subscription", "usage", "license", "marketplace", "services")
PAYING = ("active", "canceling")


@dataclass(frozen=True)
class RevenueLine:
    invoice: int
    currency: str
    month: str  # "YYYY-MM"
    stream: str
    amount: Decimal


@dataclass(frozen=True)
class CreditNote:
    invoice: int
    currency: str
    total: Decimal


def month_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


Revenue = dict[str, dict[str, dict[str, Decimal]]]  # currency -> month -> stream -> amount


def revenue_by_stream(lines: Iterable[RevenueLine],
                      credit_notes: Iterable[CreditNote] = ()) -> Revenue:
    """``{currency: {month: {stream: amount}}}`` with credit notes netted (void excluded
    by the caller: pass only lines of invoices that are not void)."""
    out: Revenue = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: ZERO)))
    per_invoice: dict[int, list[RevenueLine]] = defaultdict(list)
    for ln in lines:
        stream = ln.stream or "other"
        out[ln.currency][ln.month][stream] += ln.amount
        per_invoice[ln.invoice].append(ln)
    for note in credit_notes:
        inv_lines = per_invoice.get(note.invoice)
        if not inv_lines:
            continue
        streams: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for ln in inv_lines:
            streams[ln.stream or "other"] += ln.amount
        names = sorted(streams)
        weights = [max(streams[s], ZERO) for s in names]
        shares = allocate(note.total, weights, note.currency)
        month = inv_lines[0].month
        for s, share in zip(names, shares, strict=True):
            out[note.currency][month][s] -= share
    return {c: {m: dict(s) for m, s in sorted(months.items())} for c, months in out.items()}


def monthly_fee(plan: Plan, seats: int, term: str | None = None) -> Decimal:
    """The plan's recurring in-advance fees per month, after the term's prepay discount."""
    fee = plan.base_fee
    if plan.seats is not None:
        count = max(seats, plan.seats.minimum)
        fee += max(count - plan.seats.included, 0) * plan.seats.unit_price
    monthly = fee / INTERVAL_MONTHS[plan.interval]
    discount = ZERO
    if term is not None and term != plan.interval:
        if term == "year":
            discount = plan.annual_discount or ZERO
        elif term == "quarter":
            discount = plan.quarterly_discount or ZERO
    return monthly * (1 - discount)


def mrr(subscriptions: Iterable[Any], plan_of: Callable[[str, int], Plan],
        at: datetime) -> dict[str, Decimal]:
    """``{currency: MRR}`` at ``at`` over paying subscriptions, rounded per currency.

    ``subscriptions`` are :class:`ratecard.billing.model.Subscription`-like (``status``,
    ``phase_at``, ``currency``); ``plan_of(code, version)`` returns the plan as sold.
    """
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for sub in subscriptions:
        if sub.status(at) not in PAYING:
            continue
        phase = sub.phase_at(at)
        if phase is None:
            continue
        plan = plan_of(phase.plan_code, phase.plan_version)
        totals[sub.currency] += monthly_fee(plan, phase.seats, getattr(phase, "term", None))
    return {c: quantize(v, c) for c, v in sorted(totals.items())}


def arr(mrr_by_currency: Mapping[str, Decimal]) -> dict[str, Decimal]:
    return {c: v * 12 for c, v in mrr_by_currency.items()}


@dataclass(frozen=True)
class RevenueReport:
    at: datetime
    mrr: dict[str, Decimal]
    arr: dict[str, Decimal]
    by_stream: Revenue


def revenue_report(session: Any, at: datetime) -> RevenueReport:
    """Read invoices, credit notes, subscriptions and plan versions; compute the report."""
    from sqlalchemy import select

    from ratecard.billing.catalogs import plan_version
    from ratecard.billing.subscriptions import list_subscriptions
    from ratecard.store.models import CreditNoteRow, InvoiceLineRow, InvoiceRow

    rows = session.execute(
        select(InvoiceRow.id, InvoiceRow.currency, InvoiceLineRow.period_start,
               InvoiceRow.period_start, InvoiceLineRow.stream, InvoiceLineRow.amount)
        .join(InvoiceLineRow, InvoiceLineRow.invoice_id == InvoiceRow.id)
        .where(InvoiceRow.status != "void"))
    lines = [RevenueLine(inv, cur, month_of(inv_start), stream or "other", amount)
             for inv, cur, _line_start, inv_start, stream, amount in rows]
    notes = [CreditNote(n.invoice_id, n.currency, n.total)
             for n in session.scalars(select(CreditNoteRow))]
    cache: dict[tuple[str, int], Plan] = {}

    def plan_of(code: str, version: int) -> Plan:
        if (code, version) not in cache:
            cache[(code, version)] = plan_version(session, code, version).plan
        return cache[(code, version)]

    m = mrr(list_subscriptions(session), plan_of, at)
    return RevenueReport(at=at, mrr=m, arr=arr(m), by_stream=revenue_by_stream(lines, notes))
