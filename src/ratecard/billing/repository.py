"""All SQL of billing: rows to values, queries, locks and number series."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload

from ratecard.billing.model import Customer, Phase, Subscription
from ratecard.errors import InvoiceFinalized, NotFound
from ratecard.store.models import (
    CreditNoteRow,
    CustomerRow,
    InvoiceLineRow,
    InvoiceRow,
    NumberSeries,
    PhaseRow,
    SubscriptionRow,
)

# --------------------------------------------------------------------------- customers


def to_customer(row: CustomerRow) -> Customer:
    return Customer(
        id=row.id, external_id=row.external_id, name=row.name, currency=row.currency,
        timezone=row.timezone, email=row.email, metadata=dict(row.metadata_ or {}),
        byok=row.byok, created_at=row.created_at,
    )


def customer_row(session: Session, external_id: str) -> CustomerRow:
    row = session.scalars(
        select(CustomerRow).where(CustomerRow.external_id == external_id)
    ).first()
    if row is None:
        raise NotFound(
            f"no customer {external_id!r}; list them with `ratecard customers list` or "
            f"create it with `ratecard customers create {external_id}`"
        )
    return row


def customer_rows(session: Session) -> Sequence[CustomerRow]:
    return session.scalars(select(CustomerRow).order_by(CustomerRow.external_id)).all()


# --------------------------------------------------------------------------- subscriptions


def to_subscription(row: SubscriptionRow, customer: CustomerRow) -> Subscription:
    return Subscription(
        id=row.id,
        customer=customer.external_id,
        timezone=customer.timezone,
        currency=customer.currency,
        started_at=row.started_at,
        trial_end=row.trial_end,
        ends_at=row.ends_at,
        canceled_at=row.canceled_at,
        phases=tuple(
            Phase(starts_at=p.starts_at, plan_code=p.plan_code, plan_version=p.plan_version,
                  seats=p.seats, term=p.term, anchor=p.anchor, reason=p.reason)
            for p in sorted(row.phases, key=lambda p: (p.starts_at, p.id or 0))
        ),
        created_at=row.created_at,
    )


def subscription_row(session: Session, sub_id: int, *, lock: bool = False) -> SubscriptionRow:
    """A subscription row; ``lock`` takes a row lock (``FOR UPDATE``) on PostgreSQL."""
    stmt = select(SubscriptionRow).where(SubscriptionRow.id == sub_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"no subscription {sub_id}; list them with `ratecard subscriptions list`")
    return row


def load_subscription(session: Session, sub_id: int, *, lock: bool = False) -> Subscription:
    row = subscription_row(session, sub_id, lock=lock)
    if lock:
        session.refresh(row)
    cust = session.get(CustomerRow, row.customer_id)
    assert cust is not None
    return to_subscription(row, cust)


def subscriptions_of(session: Session, customer_id: int | None = None) -> list[Subscription]:
    stmt = (select(SubscriptionRow, CustomerRow)
            .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
            .options(selectinload(SubscriptionRow.phases))
            .order_by(SubscriptionRow.id))
    if customer_id is not None:
        stmt = stmt.where(SubscriptionRow.customer_id == customer_id)
    return [to_subscription(s, c) for s, c in session.execute(stmt).all()]


def subscriptions_by_ids(session: Session, ids: Iterable[int]) -> dict[int, Subscription]:
    ids = list(ids)
    out: dict[int, Subscription] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        stmt = (select(SubscriptionRow, CustomerRow)
                .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
                .options(selectinload(SubscriptionRow.phases))
                .where(SubscriptionRow.id.in_(chunk)))
        for s, c in session.execute(stmt).all():
            out[s.id] = to_subscription(s, c)
    return out


def subscription_values(
    session: Session, ids: Sequence[int]
) -> dict[int, tuple[Subscription, int, datetime | None]]:
    """Subscriptions by id as values, with their customer id and ``billed_through``.

    Two plain queries (no ORM objects): the fast path of invoice runs.
    """
    sub_t, cust_t, ph_t = SubscriptionRow.__table__, CustomerRow.__table__, PhaseRow.__table__
    phases: dict[int, list[Phase]] = {}
    for row in session.execute(
        select(ph_t.c.subscription_id, ph_t.c.starts_at, ph_t.c.plan_code,
               ph_t.c.plan_version, ph_t.c.seats, ph_t.c.term, ph_t.c.anchor, ph_t.c.reason)
        .where(ph_t.c.subscription_id.in_(ids))
        .order_by(ph_t.c.subscription_id, ph_t.c.starts_at, ph_t.c.id)
    ):
        phases.setdefault(row[0], []).append(Phase(
            starts_at=row[1], plan_code=row[2], plan_version=row[3], seats=row[4],
            term=row[5], anchor=row[6], reason=row[7]))
    out: dict[int, tuple[Subscription, int, datetime | None]] = {}
    for row in session.execute(
        select(sub_t.c.id, sub_t.c.customer_id, sub_t.c.started_at, sub_t.c.trial_end,
               sub_t.c.ends_at, sub_t.c.canceled_at, sub_t.c.created_at,
               sub_t.c.billed_through, cust_t.c.external_id, cust_t.c.timezone,
               cust_t.c.currency)
        .join(cust_t, cust_t.c.id == sub_t.c.customer_id)
        .where(sub_t.c.id.in_(ids))
    ):
        sub = Subscription(
            id=row[0], customer=row[8], timezone=row[9], currency=row[10],
            started_at=row[2], trial_end=row[3], ends_at=row[4], canceled_at=row[5],
            phases=tuple(phases.get(row[0], ())), created_at=row[6],
        )
        out[row[0]] = (sub, row[1], row[7])
    return out


def replace_phases(row: SubscriptionRow, phases: Sequence[Phase]) -> None:
    """Make the row's phases exactly ``phases`` (unchanged ones keep their rows)."""
    existing = {(p.starts_at, p.plan_code, p.plan_version, p.seats, p.term, p.anchor): p
                for p in row.phases}
    keep: list[PhaseRow] = []
    for ph in phases:
        key = (ph.starts_at, ph.plan_code, ph.plan_version, ph.seats, ph.term, ph.anchor)
        r = existing.pop(key, None)
        if r is None:
            r = PhaseRow(starts_at=ph.starts_at, plan_code=ph.plan_code,
                         plan_version=ph.plan_version, seats=ph.seats, term=ph.term,
                         anchor=ph.anchor, reason=ph.reason)
        keep.append(r)
    row.phases = keep


# --------------------------------------------------------------------------- invoices


def invoice_rows_of(session: Session, sub_id: int) -> list[InvoiceRow]:
    return list(session.scalars(
        select(InvoiceRow).where(InvoiceRow.subscription_id == sub_id)
        .options(selectinload(InvoiceRow.lines)).order_by(InvoiceRow.period_end)
    ))


def last_closed_boundary(session: Session, sub_id: int) -> datetime | None:
    """The latest boundary whose invoice is no longer a draft."""
    return session.scalar(
        select(func.max(InvoiceRow.period_end)).where(
            InvoiceRow.subscription_id == sub_id, InvoiceRow.status != "draft"
        )
    )


def parse_number(ref: str) -> tuple[str, int] | None:
    if "-" in ref:
        series, _, num = ref.rpartition("-")
        if num.isdigit():
            return series, int(num)
    return None


def invoice_row(session: Session, ref: str | int, *, lock: bool = False) -> InvoiceRow:
    """An invoice by id (``12``) or number (``INV-000012``)."""
    text = str(ref).strip()
    stmt = select(InvoiceRow).options(selectinload(InvoiceRow.lines))
    parsed = parse_number(text)
    if text.isdigit():
        stmt = stmt.where(InvoiceRow.id == int(text))
    elif parsed is not None:
        stmt = stmt.where(InvoiceRow.series == parsed[0], InvoiceRow.number == parsed[1])
    else:
        raise NotFound(f"{text!r} is not an invoice id or number (like 12 or INV-000012)")
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"no invoice {text}; list them with `ratecard invoices list`")
    return row


def credit_notes_of(session: Session, invoice_id: int) -> list[CreditNoteRow]:
    return list(session.scalars(
        select(CreditNoteRow).where(CreditNoteRow.invoice_id == invoice_id)
        .order_by(CreditNoteRow.number)
    ))


def take_numbers(session: Session, series: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers of ``series``; returns the first.

    The series row is locked by the update until the transaction ends, and the
    reservation commits or rolls back with the documents that use it: no gaps.
    """
    dialect = session.get_bind().dialect.name
    ins: Any = pg_insert(NumberSeries) if dialect == "postgresql" else sqlite_insert(NumberSeries)
    session.execute(ins.values(series=series, next_number=1).on_conflict_do_nothing(
        index_elements=["series"]))
    table = NumberSeries.__table__
    after = session.execute(
        update(table).where(table.c.series == series)
        .values(next_number=table.c.next_number + count).returning(table.c.next_number)
    ).scalar_one()
    return int(after) - count


def format_number(series: str, number: int | None) -> str | None:
    return None if number is None else f"{series}-{number:06d}"


# --------------------------------------------------------------------------- immutability

_MUTABLE_AFTER_FINAL = {"status", "paid_at", "voided_at", "void_reason", "notes"}


def _frozen_invoice(session: Session, invoice_id: int | None) -> InvoiceRow | None:
    if invoice_id is None:
        return None
    inv = session.identity_map.get(session.identity_key(InvoiceRow, (invoice_id,)))
    if inv is None:
        return None
    state = inspect(inv)
    status_hist = state.attrs.status.history
    original = status_hist.deleted[0] if status_hist.deleted else inv.status
    return inv if original != "draft" else None


def _refuse(inv: InvoiceRow) -> None:
    number = format_number(inv.series, inv.number) or str(inv.id)
    raise InvoiceFinalized(
        f"invoice {number} is {inv.status} and cannot change; correct it with a credit note: "
        f"`ratecard invoices credit {number} --amount AMOUNT --reason TEXT`"
    )


@event.listens_for(Session, "before_flush")
def _guard_final_invoices(session: Session, _ctx: Any, _instances: Any) -> None:
    """No flush may edit a finalized invoice or its lines (only its status may move on)."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, InvoiceRow):
            state = inspect(obj)
            hist = state.attrs.status.history
            was = hist.deleted[0] if hist.deleted else obj.status
            if was == "draft":
                continue
            if obj in session.deleted:
                _refuse(obj)
            for attr in state.mapper.column_attrs:
                if attr.key in _MUTABLE_AFTER_FINAL:
                    continue
                if state.attrs[attr.key].history.has_changes():
                    _refuse(obj)
            if state.attrs.lines.history.has_changes():
                _refuse(obj)
        elif isinstance(obj, InvoiceLineRow):
            inv = _frozen_invoice(session, obj.invoice_id)
            if inv is not None:
                _refuse(inv)
    for obj in session.new:
        if isinstance(obj, InvoiceLineRow):
            inv = _frozen_invoice(session, obj.invoice_id)
            if inv is None and obj.invoice is not None and obj.invoice.id is not None:
                inv = _frozen_invoice(session, obj.invoice.id)
            if inv is not None:
                _refuse(inv)
