"""SQL of credits: wallets (and their lock), grants, the append-only ledger, burns,
purchases and notices. Nothing here decides anything; :mod:`ratecard.credits.service`
does, with the rules of :mod:`ratecard.credits.rules`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ratecard.clock import Window, utc_now
from ratecard.credits.model import Grant, GrantState, LedgerEntry, Notice, RolloverPolicy
from ratecard.errors import NotFound
from ratecard.money import ZERO
from ratecard.store.credits_models import (
    BurnRow,
    GrantRow,
    LedgerRow,
    NoticeRow,
    PurchaseRow,
    WalletRow,
)
from ratecard.store.models import CustomerRow

# --------------------------------------------------------------------------- wallets


def customer_row(session: Session, customer: str) -> CustomerRow:
    row = session.scalars(select(CustomerRow).where(CustomerRow.external_id == customer)).first()
    if row is None:
        raise NotFound(
            f"no customer {customer!r}; create it with `ratecard customers create {customer}`"
        )
    return row


def wallet_row(session: Session, customer: str) -> WalletRow | None:
    return session.scalars(select(WalletRow).where(WalletRow.customer == customer)).first()


def create_wallet(session: Session, cust: CustomerRow) -> WalletRow:
    row = WalletRow(customer_id=cust.id, customer=cust.external_id, currency=cust.currency,
                    lock_version=0, created_at=utc_now())
    session.add(row)
    session.flush()
    return row


def lock_wallet(session: Session, wallet: WalletRow) -> WalletRow:
    """Serialise every change of one wallet.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the wallet row (a second burn waits
    until the first commits, then reads the balance it left). SQLite: the write
    transaction (``BEGIN IMMEDIATE``) already serialises writers; the version bump
    below makes the lock explicit on both.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(select(WalletRow.id).where(WalletRow.id == wallet.id).with_for_update())
    session.execute(update(WalletRow).where(WalletRow.id == wallet.id)
                    .values(lock_version=WalletRow.lock_version + 1)
                    .execution_options(synchronize_session=False))
    session.refresh(wallet)
    return wallet


# --------------------------------------------------------------------------- grants


def to_grant(row: GrantRow) -> Grant:
    policy = None
    if row.rollover:
        policy = RolloverPolicy(min=row.rollover_min or ZERO, max=row.rollover_max,
                                rolled_expires_at=row.rolled_expires_at)
    return Grant(
        id=row.id, customer=row.customer, amount=row.amount, source=row.source,
        effective_at=row.effective_at, expires_at=row.expires_at, priority=row.priority,
        cost_basis=row.cost_basis, currency=row.currency, rollover=policy,
        rolled_from=row.rolled_from, voided_at=row.voided_at, key=row.key, pack=row.pack,
        plan=row.plan, note=row.note, created_at=row.created_at,
    )


def insert_grant(session: Session, wallet: WalletRow, g: Grant) -> GrantRow:
    r = g.rollover
    row = GrantRow(
        id=g.id, wallet_id=wallet.id, customer=wallet.customer, amount=g.amount,
        remaining=ZERO, open=False, source=g.source, priority=g.priority,
        effective_at=g.effective_at, expires_at=g.expires_at, cost_basis=g.cost_basis,
        currency=g.currency, rollover=r is not None,
        rollover_min=r.min if r is not None else None,
        rollover_max=r.max if r is not None else None,
        rolled_expires_at=r.rolled_expires_at if r is not None else None,
        rolled_from=g.rolled_from, voided_at=g.voided_at, key=g.key, pack=g.pack, plan=g.plan,
        note=g.note, created_at=g.created_at or utc_now(),
    )
    session.add(row)
    session.flush()
    return row


def grant_rows(session: Session, wallet_id: int, *, open_only: bool = False) -> list[GrantRow]:
    stmt = select(GrantRow).where(GrantRow.wallet_id == wallet_id)
    if open_only:
        stmt = stmt.where(GrantRow.open.is_(True))
    return list(session.scalars(stmt.order_by(GrantRow.created_at, GrantRow.id)))


def grant_row(session: Session, wallet_id: int, grant_id: str) -> GrantRow:
    row = session.get(GrantRow, grant_id)
    if row is None or row.wallet_id != wallet_id:
        raise NotFound(f"no grant {grant_id!r} in this wallet; list them with "
                       "`ratecard credits balance --customer ID`")
    return row


def states(rows: Iterable[GrantRow]) -> list[GrantState]:
    return [GrantState(to_grant(r), r.remaining) for r in rows]


def existing_keys(session: Session, wallet_id: int, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    return set(session.scalars(select(GrantRow.key).where(
        GrantRow.wallet_id == wallet_id, GrantRow.key.in_(list(keys)))))


def grant_by_key(session: Session, wallet_id: int, key: str) -> GrantRow | None:
    return session.scalars(select(GrantRow).where(GrantRow.wallet_id == wallet_id,
                                                  GrantRow.key == key)).first()


def due_rows(session: Session, wallet_id: int, until: datetime) -> list[GrantRow]:
    """Open grants whose expiry is at or before ``until``."""
    return list(session.scalars(
        select(GrantRow).where(GrantRow.wallet_id == wallet_id, GrantRow.open.is_(True),
                               GrantRow.expires_at.is_not(None), GrantRow.expires_at <= until)
        .order_by(GrantRow.expires_at, GrantRow.id)))


def mark_void(row: GrantRow, at: datetime, reason: str) -> None:
    row.voided_at = at
    row.void_reason = reason or None
    row.open = False


# --------------------------------------------------------------------------- ledger


def append(
    session: Session,
    wallet: WalletRow,
    entries: Sequence[LedgerEntry],
    grants: dict[str, GrantRow],
    *,
    burn_id: int | None = None,
    burn: BurnRow | None = None,
    flush: bool = True,
) -> list[LedgerRow]:
    """Append entries and update each grant's cached ``remaining``/``open`` with them."""
    now = utc_now()
    rows = []
    for e in entries:
        g = grants[e.grant_id]
        rows.append(LedgerRow(wallet_id=wallet.id, grant_id=e.grant_id, customer=wallet.customer,
                              kind=e.kind, amount=e.amount, at=e.at, recorded_at=now,
                              reference=e.reference, burn_id=burn_id, note=e.note,
                              burn=burn))
        g.remaining = g.remaining + e.amount
        g.open = g.remaining > 0 and g.voided_at is None
    session.add_all(rows)
    if flush:
        session.flush()
    return rows


def to_entry(row: LedgerRow) -> LedgerEntry:
    return LedgerEntry(grant_id=row.grant_id, kind=row.kind, amount=row.amount, at=row.at,
                       customer=row.customer, reference=row.reference, note=row.note,
                       seq=row.seq)


def ledger_rows(
    session: Session, wallet_id: int, *, limit: int | None = None, since_seq: int | None = None,
    grant_id: str | None = None,
) -> list[LedgerRow]:
    stmt = select(LedgerRow).where(LedgerRow.wallet_id == wallet_id)
    if since_seq is not None:
        stmt = stmt.where(LedgerRow.seq > since_seq)
    if grant_id is not None:
        stmt = stmt.where(LedgerRow.grant_id == grant_id)
    if limit is not None:
        rows = list(session.scalars(stmt.order_by(LedgerRow.seq.desc()).limit(limit)))
        return rows[::-1]
    return list(session.scalars(stmt.order_by(LedgerRow.seq)))


def ledger_sums(session: Session, wallet_id: int) -> dict[str, Decimal]:
    """Per grant, the sum of its entries (amounts summed in Python: exact on SQLite too)."""
    out: dict[str, Decimal] = {}
    for gid, amount in session.execute(select(LedgerRow.grant_id, LedgerRow.amount)
                                       .where(LedgerRow.wallet_id == wallet_id)):
        out[gid] = out.get(gid, ZERO) + amount
    return out


# --------------------------------------------------------------------------- burns


def burn_by_reference(session: Session, wallet_id: int, reference: str) -> BurnRow | None:
    return session.scalars(select(BurnRow).where(BurnRow.wallet_id == wallet_id,
                                                 BurnRow.reference == reference)).first()


def burns_by_references(
    session: Session, wallet_id: int, references: Sequence[str]
) -> dict[str, BurnRow]:
    out: dict[str, BurnRow] = {}
    refs = sorted(set(references))
    for i in range(0, len(refs), 500):
        for row in session.scalars(select(BurnRow).where(
                BurnRow.wallet_id == wallet_id, BurnRow.reference.in_(refs[i:i + 500]))):
            if row.reference is not None:
                out[row.reference] = row
    return out


def insert_burn(session: Session, row: BurnRow, *, flush: bool = True) -> BurnRow:
    session.add(row)
    if flush:
        session.flush()
    return row


def burns_in(session: Session, wallet_id: int, window: Window) -> list[BurnRow]:
    return list(session.scalars(
        select(BurnRow).where(BurnRow.wallet_id == wallet_id, BurnRow.at >= window.start,
                              BurnRow.at < window.end).order_by(BurnRow.at, BurnRow.id)))


def entries_of_burn(session: Session, burn_id: int) -> list[LedgerRow]:
    return list(session.scalars(select(LedgerRow).where(LedgerRow.burn_id == burn_id)
                                .order_by(LedgerRow.seq)))


# --------------------------------------------------------------------------- purchases, notices


def purchase_by_reference(session: Session, wallet_id: int, reference: str) -> PurchaseRow | None:
    return session.scalars(select(PurchaseRow).where(PurchaseRow.wallet_id == wallet_id,
                                                     PurchaseRow.reference == reference)).first()


def auto_spend(session: Session, wallet_id: int, window: Window) -> Decimal:
    prices = session.scalars(select(PurchaseRow.price).where(
        PurchaseRow.wallet_id == wallet_id, PurchaseRow.auto.is_(True),
        PurchaseRow.at >= window.start, PurchaseRow.at < window.end))
    return sum(prices, ZERO)


def count_purchases(session: Session, wallet_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(PurchaseRow)
                              .where(PurchaseRow.wallet_id == wallet_id)) or 0)


def insert_notices(session: Session, wallet: WalletRow, notices: Iterable[Notice]) -> None:
    for n in notices:
        session.add(NoticeRow(wallet_id=wallet.id, customer=wallet.customer, kind=n.kind,
                              balance=n.balance, threshold=n.threshold, at=n.at))


def notice_rows(session: Session, wallet_id: int, *, undelivered: bool = False) -> list[NoticeRow]:
    stmt = select(NoticeRow).where(NoticeRow.wallet_id == wallet_id)
    if undelivered:
        stmt = stmt.where(NoticeRow.delivered_at.is_(None))
    return list(session.scalars(stmt.order_by(NoticeRow.id)))
