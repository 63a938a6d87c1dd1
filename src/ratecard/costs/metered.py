"""The model cost of metered usage, for ``cost_plus`` charges (resale and BYOK fees).

A ``cost_plus`` charge needs the cost of the usage it prices. For a meter over
``llm.request`` events this module computes it exactly, in the usage store, with the
price book in force at each event's time (:func:`ratecard.store.duckdb_costs.cost_events`),
and the part of the cost each meter stands for:

==========================  ==========================================
meter                       cost it carries
==========================  ==========================================
sum of ``input_tokens``     the uncached input tokens' cost
sum of ``cache_read_tokens``  cache reads
sum of ``cache_write_tokens``  5-minute cache writes
sum of ``cache_write_1h_tokens``  1-hour cache writes
sum of ``output_tokens``    output, reasoning included
sum of ``reasoning_tokens``  reasoning only
``count`` (requests)        the whole request: every kind and per-request prices
==========================  ==========================================

A BYOK customer's cost is the cost it *would have had* (its provider bills it; the
fee is a share of it). Meters with a ``filter``, a ``group_by`` other than
``[model]`` or nothing, or another aggregation keep the cost the catalog alone gives
(:func:`ratecard.pricing.with_catalog_costs`), and so does a customer with unpriced
requests in the window: a cost that silently leaves requests out is never used.

:class:`CostedUsage` wraps a billing usage source so invoice runs get these costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ratecard.catalog.schema import Meter
from ratecard.clock import Window
from ratecard.costs.model import PriceBook
from ratecard.metering.model import GroupKey, MeterUsage, UsageSnapshot
from ratecard.money import ZERO
from ratecard.store.duckdb_cost_rollup import rollup_path
from ratecard.store.duckdb_costs import EVENT_TYPE, CostRow, cost_events

ALL_KINDS = ("input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning",
             "request")
PROPERTY_KINDS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("input",),
    "cache_read_tokens": ("cache_read",),
    "cache_write_tokens": ("cache_write",),
    "cache_write_1h_tokens": ("cache_write_1h",),
    "output_tokens": ("output", "reasoning"),
    "reasoning_tokens": ("reasoning",),
}


def meter_kinds(meter: Meter) -> tuple[str, ...] | None:
    """The token kinds whose cost ``meter`` carries (``None``: not costable here)."""
    if meter.event != EVENT_TYPE or meter.filter or meter.weights is not None:
        return None
    if list(meter.group_by) not in ([], ["model"]):
        return None
    if meter.aggregation == "count":
        return ALL_KINDS
    if meter.aggregation == "sum":
        return PROPERTY_KINDS.get(meter.property or "")
    return None


def meter_cost(rows: Iterable[CostRow], meter: Meter
               ) -> tuple[Decimal, dict[GroupKey, Decimal] | None] | None:
    """The cost ``meter`` carries for one customer's rows (by model when it groups so)."""
    kinds = meter_kinds(meter)
    if kinds is None:
        return None
    total = ZERO
    groups: dict[GroupKey, Decimal] = {}
    for r in rows:
        part = sum(((r.kinds or {}).get(k, ZERO) for k in kinds), ZERO)
        total += part
        if meter.group_by:
            key = (r.model or "",)
            groups[key] = groups.get(key, ZERO) + part
    return total, (groups if meter.group_by else None)


class CostedUsage:
    """A billing usage source whose ``llm.request`` meters carry their exact model cost."""

    def __init__(self, source: Any, store: Any, book: PriceBook) -> None:
        self.source = source
        self.store = store
        self.book = book

    def usage(self, customers: Sequence[str], meters: Mapping[str, Meter], window: Window,
              *args: Any, **kwargs: Any) -> dict[str, UsageSnapshot]:
        """The wrapped source's usage (its extra arguments passed on), costs filled in."""
        snaps: dict[str, UsageSnapshot] = self.source.usage(customers, meters, window, *args,
                                                            **kwargs)
        costable = {name: m for name, m in meters.items() if meter_kinds(m) is not None}
        if not costable or not snaps:
            return snaps
        cur = self.store.con.cursor()
        try:
            costs = cost_events(cur, self.book, window, customers=sorted(snaps),
                                grain=("customer", "model"), by_kind=True,
                                rollup=rollup_path(str(getattr(self.store, "url", ""))))
        finally:
            cur.close()
        by_customer: dict[str, list[CostRow]] = {}
        for row in costs.rows:
            by_customer.setdefault(row.customer, []).append(row)
        out: dict[str, UsageSnapshot] = {}
        for customer, snap in snaps.items():
            if customer in costs.unpriced_customers:
                out[customer] = snap
                continue
            filled: dict[str, MeterUsage] = dict(snap)
            for name, meter in costable.items():
                u = filled.get(name)
                if u is None or u.cost is not None:
                    continue
                got = meter_cost(by_customer.get(customer, []), meter)
                if got is None:
                    continue
                cost, groups = got
                if groups is not None:
                    groups = {g: groups.get(g, ZERO) for g in u.groups} | groups
                filled[name] = replace(u, cost=cost, group_costs=groups)
            out[customer] = filled
        return out
