"""Billing values: customers, subscriptions and their phases, invoice lines (pure, frozen)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ratecard.clock import Window, iso

Term = Literal["month", "quarter", "year"]
InvoiceStatus = Literal["draft", "finalized", "paid", "void"]


@dataclass(frozen=True)
class Customer:
    id: int
    external_id: str
    name: str
    currency: str
    timezone: str
    email: str | None
    metadata: Mapping[str, Any]
    byok: bool
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.external_id,
            "name": self.name,
            "currency": self.currency,
            "timezone": self.timezone,
            "email": self.email,
            "metadata": dict(self.metadata),
            "byok": self.byok,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Phase:
    """From ``starts_at`` (until the next phase or the subscription's end): one plan version.

    ``term`` is how often the in-advance fees are billed (the plan's interval, or a
    longer prepaid term with its discount); ``anchor`` is the instant the billing
    periods of this phase are counted from.
    """

    starts_at: datetime
    plan_code: str
    plan_version: int
    seats: int
    term: str
    anchor: datetime
    reason: str = "start"

    def as_dict(self) -> dict[str, Any]:
        return {
            "starts_at": iso(self.starts_at),
            "plan": self.plan_code,
            "version": self.plan_version,
            "seats": self.seats,
            "term": self.term,
            "anchor": iso(self.anchor),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Subscription:
    id: int
    customer: str
    timezone: str
    currency: str
    started_at: datetime
    trial_end: datetime | None
    ends_at: datetime | None
    canceled_at: datetime | None
    phases: tuple[Phase, ...]
    created_at: datetime

    @property
    def paid_start(self) -> datetime:
        """When paid service starts: the trial's end, else the start."""
        return self.trial_end if self.trial_end is not None else self.started_at

    def phase_at(self, at: datetime) -> Phase | None:
        """The phase in force at ``at`` (``None`` before the start or from the end on)."""
        if at < self.started_at or (self.ends_at is not None and at >= self.ends_at):
            return None
        current = None
        for p in self.phases:
            if p.starts_at <= at:
                current = p
        return current

    def current_phase(self, at: datetime) -> Phase:
        """The phase at ``at``, or the last one that started (the first before the start)."""
        current = self.phases[0]
        for p in self.phases:
            if p.starts_at <= at:
                current = p
        return current

    def status(self, at: datetime) -> str:
        if at < self.started_at:
            return "scheduled"
        if self.ends_at is not None and at >= self.ends_at:
            return "ended"
        if self.trial_end is not None and at < self.trial_end:
            return "trialing"
        if self.canceled_at is not None:
            return "canceling"
        return "active"

    def as_dict(self, at: datetime) -> dict[str, Any]:
        phase = self.current_phase(at)
        return {
            "id": self.id,
            "customer": self.customer,
            "status": self.status(at),
            "plan": phase.plan_code,
            "version": phase.plan_version,
            "seats": phase.seats,
            "term": phase.term,
            "started_at": iso(self.started_at),
            "trial_end": iso(self.trial_end) if self.trial_end else None,
            "ends_at": iso(self.ends_at) if self.ends_at else None,
            "canceled_at": iso(self.canceled_at) if self.canceled_at else None,
            "currency": self.currency,
            "timezone": self.timezone,
            "phases": [p.as_dict() for p in self.phases],
        }


@dataclass(frozen=True)
class DraftLine:
    """One invoice line: ``amount`` is ``precise`` rounded once to the currency."""

    kind: str
    description: str
    quantity: Decimal
    unit_price: Decimal | None
    precise: Decimal
    amount: Decimal
    period: Window
    plan_code: str | None = None
    plan_version: int | None = None
    meter: str | None = None
    group: str | None = None
    stream: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        """What makes two ratings of a line the same (for re-rating drafts)."""
        return (self.kind, self.description, self.quantity, self.unit_price, self.precise,
                self.amount, self.period.start, self.period.end, self.plan_code,
                self.plan_version, self.meter, self.group)
