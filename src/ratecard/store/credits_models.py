"""Tables of credits and entitlements (Alembic branch ``credits``).

* ``credit_wallets``: one per customer; the row a burn locks (``SELECT ... FOR
  UPDATE`` on PostgreSQL, SQLite's write transaction), the low-balance threshold and
  the auto top-up rule.
* ``credit_grants``: blocks of credits. ``remaining`` and ``open`` are a cache of
  the ledger, written in the same transaction as each entry (the ledger is the
  truth; ``ratecard credits balance --verify`` recomputes and compares).
* ``credit_ledger``: append-only movements (a trigger refuses UPDATE and DELETE).
* ``credit_burns``: one row per burn request (what was asked, covered, short).
* ``credit_purchases``: pack and top-up purchases (the monthly top-up cap reads them).
* ``credit_notices``: low-balance and depleted events for notification.
* ``entitlement_overrides``: per-customer entitlements with start and end.
* ``usage_counters``: usage per customer and meter in buckets of 1, 5, 30, 180 and
  1440 minutes (``lvl``; ``bucket`` = the bucket's first minute since the Unix epoch,
  UTC), kept current at ingestion; a check sums a few of them, never the events.
  Quantities are exact with 9 decimals: whole ``units`` plus ``nanos``
  (billionths), both integers so that SUM stays exact on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ratecard.store.models import Amount, Base, JSONDoc, UTCDateTime


class WalletRow(Base):
    __tablename__ = "credit_wallets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    customer: Mapped[str] = mapped_column(String(200), unique=True)
    currency: Mapped[str] = mapped_column(String(8))
    low_balance_threshold: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    topup_threshold: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    topup_target: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    topup_pack: Mapped[str | None] = mapped_column(String(200), nullable=True)
    topup_unit_price: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    topup_monthly_cap: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    # plan grants are created for every period that starts up to this instant
    synced_through: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GrantRow(Base):
    __tablename__ = "credit_grants"
    __table_args__ = (
        UniqueConstraint("wallet_id", "key", name="uq_credit_grants_key"),
        Index("ix_credit_grants_open", "wallet_id", "open"),
    )

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("credit_wallets.id"))
    customer: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Amount())
    remaining: Mapped[Decimal] = mapped_column(Amount())
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cost_basis: Mapped[Decimal] = mapped_column(Amount())
    currency: Mapped[str] = mapped_column(String(8))
    rollover: Mapped[bool] = mapped_column(Boolean, default=False)
    rollover_min: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    rollover_max: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    rolled_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rolled_from: Mapped[str | None] = mapped_column(String(300), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    pack: Mapped[str | None] = mapped_column(String(200), nullable=True)
    plan: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BurnRow(Base):
    __tablename__ = "credit_burns"
    __table_args__ = (
        UniqueConstraint("wallet_id", "reference", name="uq_credit_burns_reference"),
        Index("ix_credit_burns_at", "wallet_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("credit_wallets.id"))
    customer: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(300), nullable=True)
    meter: Mapped[str | None] = mapped_column(String(200), nullable=True)
    quantity: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    requested: Mapped[Decimal] = mapped_column(Amount())
    covered: Mapped[Decimal] = mapped_column(Amount())
    shortfall: Mapped[Decimal] = mapped_column(Amount())
    value: Mapped[Decimal] = mapped_column(Amount())
    mode: Mapped[str] = mapped_column(String(8))
    plan: Mapped[str | None] = mapped_column(String(200), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text, default="")


class LedgerRow(Base):
    __tablename__ = "credit_ledger"
    __table_args__ = (
        Index("ix_credit_ledger_wallet", "wallet_id", "seq"),
        Index("ix_credit_ledger_grant", "grant_id"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("credit_wallets.id"))
    grant_id: Mapped[str] = mapped_column(ForeignKey("credit_grants.id"))
    customer: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Amount())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reference: Mapped[str | None] = mapped_column(String(300), nullable=True)
    burn_id: Mapped[int | None] = mapped_column(ForeignKey("credit_burns.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")

    burn: Mapped[BurnRow | None] = relationship()


class PurchaseRow(Base):
    __tablename__ = "credit_purchases"
    __table_args__ = (
        UniqueConstraint("wallet_id", "reference", name="uq_credit_purchases_reference"),
        Index("ix_credit_purchases_at", "wallet_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("credit_wallets.id"))
    customer: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(300))
    pack: Mapped[str | None] = mapped_column(String(200), nullable=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    credits: Mapped[Decimal] = mapped_column(Amount())
    bonus: Mapped[Decimal] = mapped_column(Amount())
    price: Mapped[Decimal] = mapped_column(Amount())
    currency: Mapped[str] = mapped_column(String(8))
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    grants: Mapped[list[Any]] = mapped_column(JSONDoc, default=list)


class NoticeRow(Base):
    __tablename__ = "credit_notices"
    __table_args__ = (Index("ix_credit_notices_wallet", "wallet_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("credit_wallets.id"))
    customer: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    balance: Mapped[Decimal] = mapped_column(Amount())
    threshold: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OverrideRow(Base):
    __tablename__ = "entitlement_overrides"
    __table_args__ = (Index("ix_entitlement_overrides_lookup", "customer", "feature"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    customer: Mapped[str] = mapped_column(String(200))
    feature: Mapped[str] = mapped_column(String(200))
    value: Mapped[Any] = mapped_column(JSONDoc)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CounterRow(Base):
    __tablename__ = "usage_counters"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012  (clustered on the key)

    customer: Mapped[str] = mapped_column(String(200), primary_key=True)
    meter: Mapped[str] = mapped_column(String(200), primary_key=True)
    lvl: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger, default=0)
    nanos: Mapped[int] = mapped_column(BigInteger, default=0)
