"""Entitlement values: what a customer may do, and the answer to "may they?" (pure, frozen).

Three kinds (DESIGN.md, "Entitlements"):

* ``boolean``: a feature is on or off (``sso: false``);
* ``config``: a value or a list (``channels: [chat, email]``, ``integrations: 3``);
* ``metered``: a meter with one or more limits, each over a window; every window
  must allow the usage. Windows are **calendar** (``day``, ``week``, ``month``:
  reset at the period start in the customer's timezone; weeks start on Monday) or
  **rolling** (``5h``, ``7d``: the usage of the last N hours).

Usage is counted by the minute (UTC minute buckets kept current at ingestion). A
check at time ``t`` counts the minute that contains ``t`` and, for a rolling
window of length ``d``, the minutes before it down to (excluding) ``minute(t) - d``;
so a usage recorded in minute ``m`` stops counting at ``m + d`` exactly, and a
rolling window's ``resets_at`` is the oldest counted minute plus ``d``. A calendar
window counts from its period start to the current minute and resets at the next
period start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

EntitlementKind = Literal["boolean", "config", "metered", "credits"]
CALENDAR_UNITS: tuple[str, ...] = ("day", "week", "month")
BUCKET = timedelta(minutes=1)


@dataclass(frozen=True)
class WindowSpec:
    """A window a limit is counted over: ``calendar`` (``day``/``week``/``month``) or
    ``rolling`` (a length such as 5 hours)."""

    text: str
    kind: Literal["calendar", "rolling"]
    unit: str | None = None
    length: timedelta | None = None


@dataclass(frozen=True)
class LimitSpec:
    limit: Decimal
    window: WindowSpec


@dataclass(frozen=True)
class Entitlement:
    """One feature's entitlement for one customer at one time.

    ``source`` says where it came from: ``plan:<code>`` or ``override:<id>``.
    """

    feature: str
    kind: EntitlementKind
    value: Any = None
    meter: str | None = None
    limits: tuple[LimitSpec, ...] = ()
    hard: bool = True
    overage_unit_price: Decimal | None = None
    source: str = ""


@dataclass(frozen=True)
class Override:
    """A per-customer replacement of one feature's entitlement, active in
    ``[starts_at, ends_at)`` (``ends_at`` None: open ended)."""

    id: str
    customer: str
    feature: str
    value: Any
    starts_at: datetime
    ends_at: datetime | None = None
    note: str = ""
    created_at: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


@dataclass(frozen=True)
class WindowResult:
    """One limit evaluated: its window, the usage counted, and when it resets.

    ``start``/``end`` bound the usage counted (half-open, minute resolution);
    ``retry_at`` (when denied) is the first time the request would be allowed
    (None when it never will be in this window: the request alone is over the limit).
    """

    window: str
    limit: Decimal
    used: Decimal
    remaining: Decimal
    start: datetime
    end: datetime
    resets_at: datetime | None
    allowed: bool
    overage: Decimal = Decimal(0)
    retry_at: datetime | None = None


@dataclass(frozen=True)
class CheckResult:
    """The answer to "may this customer do this (``quantity`` more)?".

    ``limit``, ``used``, ``remaining`` and ``resets_at`` come from the binding
    window (the one that denies, else the one with the least room); ``windows``
    lists every limit. Nothing is consumed by a check.
    """

    allowed: bool
    limit: Decimal | None
    used: Decimal | None
    remaining: Decimal | None
    resets_at: datetime | None
    reason: str
    feature: str = ""
    customer: str = ""
    kind: str = ""
    value: Any = None
    quantity: Decimal | None = None
    hard: bool = True
    overage: Decimal = Decimal(0)
    retry_at: datetime | None = None
    source: str = ""
    windows: tuple[WindowResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (decimals as strings, times as RFC 3339 ``Z``)."""
        from ratecard.clock import iso
        from ratecard.money import to_str

        def num(v: Decimal | None) -> str | None:
            return None if v is None else to_str(v)

        def ts(v: datetime | None) -> str | None:
            return None if v is None else iso(v)

        value = self.value
        if isinstance(value, Decimal):
            value = to_str(value)
        return {
            "allowed": self.allowed,
            "limit": num(self.limit),
            "used": num(self.used),
            "remaining": num(self.remaining),
            "resets_at": ts(self.resets_at),
            "reason": self.reason,
            "customer": self.customer,
            "feature": self.feature,
            "kind": self.kind,
            "value": value,
            "quantity": num(self.quantity),
            "hard": self.hard,
            "overage": num(self.overage),
            "retry_at": ts(self.retry_at),
            "source": self.source,
            "windows": [
                {"window": w.window, "limit": num(w.limit), "used": num(w.used),
                 "remaining": num(w.remaining), "start": ts(w.start), "end": ts(w.end),
                 "resets_at": ts(w.resets_at), "allowed": w.allowed, "overage": num(w.overage),
                 "retry_at": ts(w.retry_at)}
                for w in self.windows
            ],
        }
