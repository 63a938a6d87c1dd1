"""Meters in memory: the one definition of how events become a quantity.

:func:`aggregate` turns events into a :class:`MeterUsage` for one meter;
:func:`usage_snapshot` does it for every meter of a catalog. The usage store
(:mod:`ratecard.store.duckdb_store`) computes the same results in SQL, and a shared
test holds both to exact agreement. The rules:

* Events of another ``type``, or failing the meter's ``filter``, are skipped.
* ``count`` counts events; with ``weights`` each event adds the weight of its
  property value (a missing or unknown value raises :class:`EventInvalid`).
* ``sum`` adds the property's value (times the weight when ``weights`` is set);
  ``max`` takes the largest value; ``latest`` the value of the newest event (ties in
  time go to the larger ``event_id``); ``unique_count`` counts distinct values
  (compared as text, see :func:`ratecard.metering.values.key_text`).
* Events whose property is absent or ``null`` are skipped by ``sum``, ``max``,
  ``latest`` and ``unique_count``; a present value that is not an exact number
  raises :class:`EventInvalid` naming the event and property.
* ``groups`` splits the quantity by the values of ``group_by`` (a missing property
  is the empty string); ``values`` lists, for ``sum`` meters, each event's value
  (times its weight) in ``(timestamp, event_id)`` order.
* No events gives quantity 0 and no groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window
from ratecard.errors import EventInvalid
from ratecard.metering.model import Event, GroupKey, MeterUsage
from ratecard.metering.values import NotANumber, filter_matches, key_text, number

ZERO = Decimal(0)


def meter_weight(meter: Meter, event: Event) -> Decimal:
    """The weight an event counts for (1 without ``weights``)."""
    if meter.weights is None:
        return Decimal(1)
    prop = meter.weights.property
    raw = event.properties.get(prop)
    key = key_text(raw)
    if key is None or key not in meter.weights.values:
        known = ", ".join(sorted(meter.weights.values))
        what = "is missing" if key is None else f"is {key!r}"
        raise EventInvalid(
            f"event {event.event_id!r}: property {prop!r} {what}, which has no weight; "
            f"use one of {known} (or void the event)"
        )
    return meter.weights.values[key]


def meter_value(meter: Meter, event: Event) -> Decimal | None:
    """The numeric value a sum/max/latest meter reads from an event (``None``: skipped)."""
    assert meter.property is not None
    try:
        return number(event.properties.get(meter.property))
    except NotANumber as e:
        raise EventInvalid(
            f"event {event.event_id!r}: property {meter.property!r}: {e}; "
            "fix the sender (or void the event)"
        ) from None


def group_key(event: Event, group_by: Sequence[str]) -> GroupKey:
    return tuple(key_text(event.properties.get(p)) or "" for p in group_by)


def matches(meter: Meter, event: Event) -> bool:
    return event.type == meter.event and filter_matches(meter.filter, event.properties)


@dataclass
class _Acc:
    """Running state of one meter for one group (or the whole)."""

    total: Decimal = ZERO
    seen: bool = False
    latest: tuple[datetime, str] | None = None
    distinct: set[str] = field(default_factory=set)

    def add(self, aggregation: str, value: Decimal, at: datetime, eid: str) -> None:
        if aggregation in ("count", "sum"):
            self.total += value
        elif aggregation == "max":
            self.total = value if not self.seen else max(self.total, value)
        elif aggregation == "latest":
            stamp = (at, eid)
            if self.latest is None or stamp > self.latest:
                self.latest = stamp
                self.total = value
        self.seen = True

    def quantity(self, aggregation: str) -> Decimal:
        if aggregation == "unique_count":
            return Decimal(len(self.distinct))
        return self.total


def aggregate(
    key: str,
    meter: Meter,
    events: Iterable[Event],
    *,
    group_by: Sequence[str] | None = None,
) -> MeterUsage:
    """Aggregate ``events`` by ``meter`` (see the module docstring for the rules)."""
    gb = tuple(meter.group_by if group_by is None else group_by)
    agg = meter.aggregation
    whole = _Acc()
    groups: dict[GroupKey, _Acc] = {}
    per_event: list[tuple[datetime, str, Decimal]] = []
    for ev in events:
        if not matches(meter, ev):
            continue
        gk = group_key(ev, gb)
        if agg == "unique_count":
            assert meter.property is not None
            text = key_text(ev.properties.get(meter.property))
            if text is None:
                continue
            whole.distinct.add(text)
            whole.seen = True
            acc = groups.setdefault(gk, _Acc())
            acc.distinct.add(text)
            acc.seen = True
            continue
        if agg == "count":
            value = meter_weight(meter, ev)
        else:
            v = meter_value(meter, ev)
            if v is None:
                continue
            value = v * meter_weight(meter, ev) if agg == "sum" else v
            if agg == "sum":
                per_event.append((ev.timestamp, ev.event_id, value))
        whole.add(agg, value, ev.timestamp, ev.event_id)
        groups.setdefault(gk, _Acc()).add(agg, value, ev.timestamp, ev.event_id)
    values: tuple[Decimal, ...] | None = None
    if agg == "sum":
        per_event.sort(key=lambda t: (t[0], t[1]))
        values = tuple(v for _, _, v in per_event)
    return MeterUsage(
        meter=key,
        quantity=whole.quantity(agg),
        group_by=gb,
        groups={k: a.quantity(agg) for k, a in groups.items()} if gb else {},
        values=values,
    )


def select_events(
    events: Iterable[Event],
    *,
    customer: str | None = None,
    window: Window | None = None,
) -> Iterable[Event]:
    for ev in events:
        if customer is not None and ev.customer != customer:
            continue
        if window is not None and ev.timestamp not in window:
            continue
        yield ev


def usage_snapshot(
    catalog: Catalog,
    events: Iterable[Event],
    *,
    customer: str | None = None,
    window: Window | None = None,
    group_by: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, MeterUsage]:
    """Every meter of ``catalog`` aggregated over ``events`` (of one customer and window)."""
    selected = list(select_events(events, customer=customer, window=window))
    by_type: dict[str, list[Event]] = {}
    for ev in selected:
        by_type.setdefault(ev.type, []).append(ev)
    out: dict[str, MeterUsage] = {}
    for name, meter in catalog.meters.items():
        gb = (group_by or {}).get(name)
        out[name] = aggregate(name, meter, by_type.get(meter.event, []), group_by=gb)
    return out


def meter_needs(catalog: Catalog | None) -> dict[str, list[tuple[str, Meter]]]:
    """Meters by the event type they read (what ingest checks each event against)."""
    out: dict[str, list[tuple[str, Meter]]] = {}
    if catalog is None:
        return out
    for name, meter in catalog.meters.items():
        out.setdefault(meter.event, []).append((name, meter))
    return out


def property_problem(name: str, meter: Meter, props: Mapping[str, Any]) -> str | None:
    """Why ``props`` has the wrong kind of value for ``meter`` (``None`` when fine).

    Only events that pass the meter's filter are checked. A numeric property must be
    an exact number when present; a weights property must hold a known value; a
    ``group_by`` or ``unique_count`` property must be a scalar when present.
    """
    if not filter_matches(meter.filter, props):
        return None
    if meter.aggregation in ("sum", "max", "latest"):
        assert meter.property is not None
        try:
            number(props.get(meter.property))
        except NotANumber as e:
            return f"property {meter.property!r} (read by {meter.aggregation} meter {name!r}): {e}"
    if meter.weights is not None:
        wp = meter.weights.property
        k = key_text(props.get(wp))
        if k is None or k not in meter.weights.values:
            known = ", ".join(sorted(meter.weights.values))
            what = "is missing" if k is None else f"is {k!r}"
            return f"property {wp!r} {what}; meter {name!r} weighs only {known}"
    scalar_props = list(meter.group_by)
    if meter.aggregation == "unique_count" and meter.property:
        scalar_props.append(meter.property)
    for p in scalar_props:
        v = props.get(p)
        if isinstance(v, dict | list):
            return (f"property {p!r} (used by meter {name!r}) is a "
                    f"{'object' if isinstance(v, dict) else 'list'}; send a string or a number")
    return None
