"""The usage event and the aggregated usage that rating consumes (pure values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

GroupKey = tuple[str, ...]


@dataclass(frozen=True)
class Event:
    """One usage event. ``event_id`` is the idempotency key; ``timestamp`` is aware UTC."""

    event_id: str
    type: str
    customer: str
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MeterUsage:
    """A meter's quantity for one customer and window.

    ``quantity`` is the aggregate over every event; ``groups`` splits it by the
    values of ``group_by`` (each key is a tuple aligned with ``group_by``; a
    missing property is the empty string). ``values`` holds each event's value in
    time order, for price models priced per event (``percentage``); ``cost`` is
    the cost of goods of this usage when known (for ``cost_plus``), with
    ``group_costs`` per group.
    """

    meter: str
    quantity: Decimal
    group_by: tuple[str, ...] = ()
    groups: Mapping[GroupKey, Decimal] = field(default_factory=dict)
    values: tuple[Decimal, ...] | None = None
    cost: Decimal | None = None
    group_costs: Mapping[GroupKey, Decimal] | None = None


UsageSnapshot = Mapping[str, MeterUsage]
