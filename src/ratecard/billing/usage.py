"""Where invoice runs read usage: many customers, one window, one set of meters at a time.

:class:`UsageSource` is what billing needs; :class:`EventsUsage` reads a list of
events through the in-memory meters (tests, small runs); :class:`StoreUsage`
adapts the usage store (DuckDB, ClickHouse) of :mod:`ratecard.store.usage`.
Both answer with :class:`ratecard.metering.model.MeterUsage` per meter, the same
values the pricing engine takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window
from ratecard.metering.model import Event, MeterUsage, UsageSnapshot


class UsageSource(Protocol):
    def usage(
        self,
        customers: Sequence[str],
        meters: Mapping[str, Meter],
        window: Window,
        values: frozenset[str] = frozenset(),
    ) -> dict[str, UsageSnapshot]:
        """Each customer's usage of ``meters`` over ``window`` (absent: no usage).

        ``values`` names the meters whose per-event values are needed (``percentage``
        charges price each event).
        """
        ...


class EventsUsage:
    """Usage computed in memory from a list of events (the reference semantics)."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self.events: list[Event] = list(events)

    def add(self, *events: Event) -> None:
        self.events.extend(events)

    def usage(
        self,
        customers: Sequence[str],
        meters: Mapping[str, Meter],
        window: Window,
        values: frozenset[str] = frozenset(),
    ) -> dict[str, UsageSnapshot]:
        from ratecard.metering.meters import aggregate

        wanted = set(customers)
        by_customer: dict[str, dict[str, list[Event]]] = {}
        for ev in self.events:
            if ev.customer in wanted and ev.timestamp in window:
                by_customer.setdefault(ev.customer, {}).setdefault(ev.type, []).append(ev)
        out: dict[str, UsageSnapshot] = {}
        for c, by_type in by_customer.items():
            out[c] = {name: aggregate(name, m, by_type.get(m.event, []))
                      for name, m in meters.items()}
        return out


class StoreUsage:
    """Adapter over the usage store (``open_usage_store(url)``)."""

    def __init__(self, store: Any, catalog: Catalog | None = None) -> None:
        self.store = store
        self.catalog = catalog

    def usage(
        self,
        customers: Sequence[str],
        meters: Mapping[str, Meter],
        window: Window,
        values: frozenset[str] = frozenset(),
    ) -> dict[str, UsageSnapshot]:
        out: dict[str, dict[str, MeterUsage]] = {}
        for name, meter in meters.items():
            got = self.store.aggregate(meter, window=window, customers=list(customers),
                                       key=name, values=name in values)
            for customer, mu in got.items():
                out.setdefault(str(customer), {})[name] = mu
        return dict(out)


def meters_key(meters: Mapping[str, Meter]) -> str:
    """A stable key for a set of meter definitions (to batch customers that share it)."""
    import hashlib
    import json

    data = {k: m.model_dump(mode="json", exclude_defaults=True) for k, m in sorted(meters.items())}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def open_usage_source(url: str, catalog: Catalog | None = None) -> UsageSource:
    """The usage store at ``url`` as a :class:`UsageSource`."""
    try:
        from ratecard.store.usage import open_usage_store  # type: ignore[import-not-found]
    except ImportError:
        from ratecard.errors import Unavailable

        raise Unavailable(
            "the usage store is not available in this installation; invoices need usage"
        ) from None
    return StoreUsage(open_usage_store(url), catalog)
