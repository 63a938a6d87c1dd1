"""credits: wallets, grants, append-only ledger, burns, purchases, notices, overrides, counters

Revision ID: credits_0001
Revises: None
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ratecard.store.models import Amount, JSONDoc, UTCDateTime

revision: str = "credits_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("credits",)
depends_on: str | Sequence[str] | None = "billing_0001"

_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION credit_ledger_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'credit_ledger is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER credit_ledger_no_change BEFORE UPDATE OR DELETE ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();
"""


def upgrade() -> None:
    op.create_table(
        "credit_wallets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("low_balance_threshold", Amount(), nullable=True),
        sa.Column("topup_threshold", Amount(), nullable=True),
        sa.Column("topup_target", Amount(), nullable=True),
        sa.Column("topup_pack", sa.String(length=200), nullable=True),
        sa.Column("topup_unit_price", Amount(), nullable=True),
        sa.Column("topup_monthly_cap", Amount(), nullable=True),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.Column("synced_through", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id"),
        sa.UniqueConstraint("customer"),
    )
    op.create_table(
        "credit_grants",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("wallet_id", sa.Integer(), sa.ForeignKey("credit_wallets.id"),
                  nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("remaining", Amount(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("cost_basis", Amount(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("rollover", sa.Boolean(), nullable=False),
        sa.Column("rollover_min", Amount(), nullable=True),
        sa.Column("rollover_max", Amount(), nullable=True),
        sa.Column("rolled_expires_at", UTCDateTime(), nullable=True),
        sa.Column("rolled_from", sa.String(length=300), nullable=True),
        sa.Column("voided_at", UTCDateTime(), nullable=True),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.Column("key", sa.String(length=300), nullable=True),
        sa.Column("pack", sa.String(length=200), nullable=True),
        sa.Column("plan", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("wallet_id", "key", name="uq_credit_grants_key"),
    )
    op.create_index("ix_credit_grants_open", "credit_grants", ["wallet_id", "open"])
    op.create_table(
        "credit_burns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), sa.ForeignKey("credit_wallets.id"),
                  nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=300), nullable=True),
        sa.Column("meter", sa.String(length=200), nullable=True),
        sa.Column("quantity", Amount(), nullable=True),
        sa.Column("requested", Amount(), nullable=False),
        sa.Column("covered", Amount(), nullable=False),
        sa.Column("shortfall", Amount(), nullable=False),
        sa.Column("value", Amount(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("plan", sa.String(length=200), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("wallet_id", "reference", name="uq_credit_burns_reference"),
    )
    op.create_index("ix_credit_burns_at", "credit_burns", ["wallet_id", "at"])
    op.create_table(
        "credit_ledger",
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("wallet_id", sa.Integer(), sa.ForeignKey("credit_wallets.id"),
                  nullable=False),
        sa.Column("grant_id", sa.String(length=300), sa.ForeignKey("credit_grants.id"),
                  nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("reference", sa.String(length=300), nullable=True),
        sa.Column("burn_id", sa.Integer(), sa.ForeignKey("credit_burns.id"), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_credit_ledger_wallet", "credit_ledger", ["wallet_id", "seq"])
    op.create_index("ix_credit_ledger_grant", "credit_ledger", ["grant_id"])
    op.create_table(
        "credit_purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), sa.ForeignKey("credit_wallets.id"),
                  nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=300), nullable=False),
        sa.Column("pack", sa.String(length=200), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("credits", Amount(), nullable=False),
        sa.Column("bonus", Amount(), nullable=False),
        sa.Column("price", Amount(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("auto", sa.Boolean(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("grants", JSONDoc, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("wallet_id", "reference", name="uq_credit_purchases_reference"),
    )
    op.create_index("ix_credit_purchases_at", "credit_purchases", ["wallet_id", "at"])
    op.create_table(
        "credit_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), sa.ForeignKey("credit_wallets.id"),
                  nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("balance", Amount(), nullable=False),
        sa.Column("threshold", Amount(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credit_notices_wallet", "credit_notices", ["wallet_id", "id"])
    op.create_table(
        "entitlement_overrides",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("value", JSONDoc, nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_entitlement_overrides_lookup", "entitlement_overrides",
                    ["customer", "feature"])
    op.create_table(
        "usage_counters",
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("meter", sa.String(length=200), nullable=False),
        sa.Column("lvl", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("nanos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("customer", "meter", "lvl", "bucket"),
        sqlite_with_rowid=False,
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
    elif bind.dialect.name == "sqlite":
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER credit_ledger_no_{what.lower()} BEFORE {what} ON credit_ledger "
                f"BEGIN SELECT RAISE(ABORT, 'credit_ledger is append-only: {what} refused'); END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS credit_ledger_no_change ON credit_ledger")
        op.execute("DROP FUNCTION IF EXISTS credit_ledger_append_only()")
    for table in ("usage_counters", "entitlement_overrides", "credit_notices",
                  "credit_purchases", "credit_ledger", "credit_burns", "credit_grants",
                  "credit_wallets"):
        op.drop_table(table)
