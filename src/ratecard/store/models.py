"""SQLAlchemy 2 declarative base, column types and the billing tables.

Every table of the transactional state derives from :class:`Base`; other domains
(credits, entitlements, ...) define their tables in their own modules on the same
``Base`` and ship their own Alembic branch (see ``store/migrations/README.md``).

Column types that keep values exact on both SQLite and PostgreSQL:

* :class:`UTCDateTime`: aware UTC datetimes in, aware UTC out (SQLite stores naive
  UTC text; PostgreSQL ``timestamptz``). A naive datetime is refused.
* :class:`Amount`: :class:`~decimal.Decimal` stored exactly (PostgreSQL ``NUMERIC``
  without a scale limit; SQLite text, since SQLite's NUMERIC goes through float).
* :data:`JSONDoc`: JSON (``JSONB`` on PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Amount(TypeDecorator[Decimal]):
    """An exact Decimal: NUMERIC on PostgreSQL, text on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise ValueError(f"{value!r} is not a Decimal")
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """The declarative base of every ratecard table."""


# --------------------------------------------------------------------------- catalog


class CatalogRevision(Base):
    """One applied catalog document (the whole catalog, as applied)."""

    __tablename__ = "catalog_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())
    digest: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    source_text: Mapped[str] = mapped_column(Text, default="")


class PlanRow(Base):
    """A plan code: its newest version and whether it still takes new subscriptions."""

    __tablename__ = "plans"

    code: Mapped[str] = mapped_column(String(200), primary_key=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300), default="")
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PlanVersionRow(Base):
    """One immutable version of a plan, with the meters it prices."""

    __tablename__ = "plan_versions"
    __table_args__ = (UniqueConstraint("plan_code", "version", name="uq_plan_versions_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_code: Mapped[str] = mapped_column(ForeignKey("plans.code"))
    version: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    digest: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    revision_id: Mapped[int] = mapped_column(ForeignKey("catalog_revisions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --------------------------------------------------------------------------- customers


class CustomerRow(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    currency: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    email: Mapped[str | None] = mapped_column(String(300), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDoc, default=dict)
    byok: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --------------------------------------------------------------------------- subscriptions


class SubscriptionRow(Base):
    """A customer's subscription; its plan over time is the list of its phases."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the newest boundary billed (an index for the run; the invoices are the truth)
    billed_through: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    phases: Mapped[list[PhaseRow]] = relationship(
        back_populates="subscription", order_by="PhaseRow.starts_at",
        cascade="all, delete-orphan",
    )


class PhaseRow(Base):
    """A stretch of a subscription on one plan version with one seat count."""

    __tablename__ = "subscription_phases"
    __table_args__ = (Index("ix_phases_plan", "plan_code", "plan_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    plan_code: Mapped[str] = mapped_column(ForeignKey("plans.code"))
    plan_version: Mapped[int] = mapped_column(Integer)
    seats: Mapped[int] = mapped_column(Integer, default=1)
    term: Mapped[str] = mapped_column(String(16))
    anchor: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(40), default="start")

    subscription: Mapped[SubscriptionRow] = relationship(back_populates="phases")


# --------------------------------------------------------------------------- invoices


class InvoiceRow(Base):
    """The invoice of one subscription at one billing boundary (``period_end``): never twice.

    ``[period_start, period_end)`` is the period that ended (its usage is billed in
    arrears); the in-advance fees on it cover the period that starts at ``period_end``.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("subscription_id", "period_end", name="uq_invoices_sub_period"),
        UniqueConstraint("series", "number", name="uq_invoices_number"),
        Index("ix_invoices_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(8))
    total: Mapped[Decimal] = mapped_column(Amount())
    series: Mapped[str] = mapped_column(String(32))
    number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalize_after: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rating_digest: Mapped[str] = mapped_column(String(64), default="")
    notes: Mapped[list[Any]] = mapped_column(JSONDoc, default=list)

    lines: Mapped[list[InvoiceLineRow]] = relationship(
        back_populates="invoice", order_by="InvoiceLineRow.position",
        cascade="all, delete-orphan",
    )


class InvoiceLineRow(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Amount())
    unit_price: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    amount: Mapped[Decimal] = mapped_column(Amount())
    precise: Mapped[Decimal] = mapped_column(Amount())
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    plan_code: Mapped[str | None] = mapped_column(String(200), nullable=True)
    plan_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meter: Mapped[str | None] = mapped_column(String(200), nullable=True)
    group_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    stream: Mapped[str | None] = mapped_column(String(32), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)

    invoice: Mapped[InvoiceRow] = relationship(back_populates="lines")


class NumberSeries(Base):
    """The next number of a series (row-locked while finalizing: numbers have no gaps)."""

    __tablename__ = "number_series"

    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer, default=1)


class CreditNoteRow(Base):
    """A correction of a finalized invoice; the invoice itself never changes."""

    __tablename__ = "credit_notes"
    __table_args__ = (UniqueConstraint("series", "number", name="uq_credit_notes_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    series: Mapped[str] = mapped_column(String(32))
    number: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    total: Mapped[Decimal] = mapped_column(Amount())
    reason: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lines: Mapped[list[Any]] = mapped_column(JSONDoc, default=list)
