"""Credit values: grants, ledger entries, burn plans, packs, top-up rules (pure, frozen).

A customer's wallet holds **grants**. Each grant is a block of credits with a
source (``plan``, ``purchase``, ``promotion``, ``bonus``), a priority, an effective
time and an optional expiry (half-open: usable in ``[effective_at, expires_at)``),
a cost basis (money paid per credit, 0 for free credits) and, for recurring plan
grants, a rollover policy ``{min, max}``.

Every movement of credits is one **ledger entry** on one grant: ``grant`` (+),
``burn`` (-), ``expire`` (-), ``void`` (-), ``rollover_out`` (-) on the old grant and
``rollover_in`` (+) on the grant that carries the rolled credits. The ledger is
append-only; a grant's balance is the sum of its entries and a wallet's balance the
sum over its usable grants. Credits are neither created nor lost:
``issued = balance + burned + expired + voided`` where ``issued`` counts ``grant``
entries (rollovers are transfers between grants of the same wallet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from ratecard.money import ZERO

GrantSource = Literal["plan", "purchase", "promotion", "bonus"]
SOURCES: tuple[str, ...] = ("plan", "purchase", "promotion", "bonus")

EntryKind = Literal["grant", "burn", "expire", "void", "rollover_out", "rollover_in"]
ENTRY_KINDS: tuple[str, ...] = ("grant", "burn", "expire", "void", "rollover_out", "rollover_in")
# Kinds that take credits out of the wallet for good (rollover_out is a transfer).
OUTFLOW_KINDS: tuple[str, ...] = ("burn", "expire", "void")

BurnMode = Literal["hard", "partial"]

DEFAULT_PRIORITY = 10


@dataclass(frozen=True)
class RolloverPolicy:
    """What happens to a recurring grant's leftover when it expires.

    ``min``: below this leftover nothing rolls over; ``max``: at most this many
    credits roll over (``None``: all of it). Rolled credits form a new grant that is
    usable from the old grant's expiry until ``rolled_expires_at`` (the end of the
    next period for plan grants) and does not roll over again.
    """

    min: Decimal = ZERO
    max: Decimal | None = None
    rolled_expires_at: datetime | None = None


@dataclass(frozen=True)
class Grant:
    """A block of credits in a wallet."""

    id: str
    customer: str
    amount: Decimal
    source: str
    effective_at: datetime
    expires_at: datetime | None = None
    priority: int = DEFAULT_PRIORITY
    cost_basis: Decimal = ZERO
    currency: str = "USD"
    rollover: RolloverPolicy | None = None
    rolled_from: str | None = None
    voided_at: datetime | None = None
    key: str | None = None
    pack: str | None = None
    plan: str | None = None
    note: str = ""
    created_at: datetime | None = None

    @property
    def paid(self) -> bool:
        return self.cost_basis > 0

    def usable_at(self, at: datetime) -> bool:
        """Effective, not expired and not voided at ``at`` (half-open)."""
        if self.voided_at is not None and self.voided_at <= at:
            return False
        if at < self.effective_at:
            return False
        return self.expires_at is None or at < self.expires_at


@dataclass(frozen=True)
class GrantState:
    """A grant and its current balance (the sum of its ledger entries)."""

    grant: Grant
    balance: Decimal


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of credits on one grant. ``amount`` is signed."""

    grant_id: str
    kind: str
    amount: Decimal
    at: datetime
    customer: str = ""
    reference: str | None = None
    note: str = ""
    seq: int | None = None

    def value(self, cost_basis: Decimal) -> Decimal:
        """The money this movement represents at the grant's cost basis (full precision)."""
        return self.amount * cost_basis


@dataclass(frozen=True)
class BurnPlan:
    """How a burn of ``requested`` credits is spread across grants."""

    requested: Decimal
    entries: tuple[LedgerEntry, ...]
    shortfall: Decimal

    @property
    def covered(self) -> Decimal:
        return self.requested - self.shortfall

    def allocations(self) -> list[tuple[str, Decimal]]:
        return [(e.grant_id, -e.amount) for e in self.entries]


@dataclass(frozen=True)
class ExpiryResult:
    """What a grant's expiry produced: entries on the old grant, and a rolled grant if any."""

    entries: tuple[LedgerEntry, ...]
    rolled: Grant | None = None
    rolled_entry: LedgerEntry | None = None


@dataclass(frozen=True)
class AutoTopUp:
    """Below ``threshold`` credits, buy up to ``target`` credits.

    The purchase uses ``pack`` (whole packs) when set, else ``unit_price`` per
    credit. ``monthly_cap`` limits the money spent on top-ups per calendar month
    (UTC); ``None`` means no cap.
    """

    threshold: Decimal
    target: Decimal
    pack: str | None = None
    unit_price: Decimal | None = None
    monthly_cap: Decimal | None = None


@dataclass(frozen=True)
class TopUpDecision:
    credits: Decimal
    price: Decimal
    packs: int = 0
    capped: bool = False
    reason: str = ""

    @property
    def buys(self) -> bool:
        return self.credits > 0


@dataclass(frozen=True)
class Notice:
    """A balance event recorded for notification (``low_balance`` or ``depleted``)."""

    kind: Literal["low_balance", "depleted"]
    customer: str
    balance: Decimal
    threshold: Decimal | None
    at: datetime


@dataclass(frozen=True)
class CreditLine:
    """An invoice line produced from credits (see :mod:`ratecard.credits.rules`).

    ``kind`` is ``credits_applied`` (credits that covered usage; ``amount`` is 0
    since the usage is paid by credits, ``value`` is their cost basis) or
    ``credit_overage`` (credits beyond the balance billed at the plan's
    ``overage_unit_price``: ``amount = quantity × unit_price``) or
    ``prepaid_applied`` (a prepaid balance paying an invoice: negative ``amount``).
    """

    kind: Literal["credits_applied", "credit_overage", "prepaid_applied"]
    label: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    rounded: Decimal
    meter: str | None = None
    value: Decimal = ZERO
    details: dict[str, object] = field(default_factory=dict)
