"""Shared pieces of the billing stories: a state database, a DuckDB usage store, events.

Imported by the ``test_billing_*`` stories beside it (they put this folder on
``sys.path``, since tests import with ``--import-mode=importlib``).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ratecard.billing import invoices as inv
from ratecard.billing.catalogs import apply_catalog
from ratecard.billing.customers import create_customer
from ratecard.billing.subscriptions import create_subscription
from ratecard.billing.usage import StoreUsage
from ratecard.catalog.loader import parse_catalog_text
from ratecard.catalog.schema import Catalog
from ratecard.metering.model import Event
from ratecard.money import D
from ratecard.store import state
from ratecard.store.state import session_scope
from ratecard.store.usage import open_usage_store


def t(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Story:
    """One business story: state on SQLite or PostgreSQL, usage in a DuckDB file."""

    def __init__(self, state_url: str, tmp_path: Path) -> None:
        self.url = state_url
        self.store = open_usage_store(f"duckdb:///{tmp_path / 'usage.duckdb'}")
        self.source = StoreUsage(self.store)
        self.settings = inv.BillingSettings()
        self._n = 0

    def close(self) -> None:
        self.store.close()
        state.dispose(self.url)

    def session(self) -> Any:
        return session_scope(self.url)

    def apply(self, text: str) -> Any:
        """Apply a catalog and keep the store's rollups for its meters (as ingest does)."""
        catalog = parse_catalog_text(text)
        self.store.sync_meters(catalog.meters)
        with self.session() as s:
            return apply_catalog(s, catalog, text)

    def customer(self, cid: str, **kw: Any) -> str:
        with self.session() as s:
            create_customer(s, cid, **kw)
        return cid

    def subscribe(self, customer: str, plan: str, start: str | datetime, **kw: Any) -> int:
        when = start if isinstance(start, datetime) else t(start)
        with self.session() as s:
            return create_subscription(s, customer, plan, start=when, **kw).id

    def send(self, customer: str, type_: str, at: str | datetime, n: int = 1,
             **props: Any) -> list[str]:
        when = at if isinstance(at, datetime) else t(at)
        ids = []
        events = []
        for _ in range(n):
            self._n += 1
            ids.append(f"ev-{self._n}")
            events.append(Event(ids[-1], type_, customer, when, dict(props)))
        result = self.store.append(events)
        assert result.accepted == n, result
        return ids

    def run(self, at: str) -> inv.RunReport:
        report = inv.run_invoices(self.session, t(at), self.source, settings=self.settings)
        assert report.errors == [], report.errors
        return report

    def invoices(self, customer: str | None = None) -> list[dict[str, Any]]:
        with self.session() as s:
            return inv.list_invoices(s, customer=customer)


def assert_exact(invoice: dict[str, Any]) -> None:
    """Every line rounded once from its precise amount; the total is the sum of lines."""
    total = sum((D(ln["amount"]) for ln in invoice["lines"]), Decimal(0))
    assert D(invoice["total"]) == total, invoice["number"]
    for ln in invoice["lines"]:
        exp = D(ln["amount"]).as_tuple().exponent
        q = Decimal(1).scaleb(exp)
        assert D(ln["amount"]) == D(ln["precise_amount"]).quantize(q, rounding="ROUND_HALF_UP")


def line_total(invoice: dict[str, Any], kind: str) -> Decimal:
    return sum((D(ln["amount"]) for ln in invoice["lines"] if ln["kind"] == kind), Decimal(0))


# ---------------------------------------------------------------------------- events


def _group_values(catalog: Catalog, prop: str) -> list[str]:
    """Values a group_by property can take with a price in every plan that prices by it."""
    values: set[str] | None = None
    for plan in catalog.plans.values():
        for c in plan.charges:
            if c.prices_by == prop and c.prices and c.default is None:
                keys = set(c.prices)
                values = keys if values is None else values & keys
    if values:
        return sorted(values)
    models = sorted(catalog.costs.models)
    if prop == "model" and models:
        return models
    return ["a", "b"]


def events_for(catalog: Catalog, customer: str, start: datetime, days: int, per_day: int,
               rng: random.Random) -> list[Event]:
    """Events that feed every meter of ``catalog`` (properties each meter reads)."""
    by_type: dict[str, list[Any]] = {}
    for m in catalog.meters.values():
        by_type.setdefault(m.event, []).append(m)
    out: list[Event] = []
    n = 0
    for day in range(days):
        for type_, meters in sorted(by_type.items()):
            for _ in range(per_day):
                props: dict[str, Any] = {}
                for m in meters:
                    for g in m.group_by:
                        props.setdefault(g, rng.choice(_group_values(catalog, g)))
                    for key, want in m.filter.items():
                        choices = want if isinstance(want, list) else [want]
                        props.setdefault(key, rng.choice(choices))
                    if m.weights is not None:
                        props.setdefault(m.weights.property,
                                         rng.choice(sorted(m.weights.values)))
                    if m.property and m.aggregation == "unique_count":
                        props.setdefault(m.property, f"u{rng.randint(1, 40)}")
                    elif m.property:
                        props.setdefault(m.property, rng.randint(1, 5000))
                # meters on one event type with different filters: vary the filtered value
                for m in meters:
                    for key, want in m.filter.items():
                        if rng.random() < 0.3:
                            choices = want if isinstance(want, list) else [want]
                            props[key] = rng.choice(choices)
                n += 1
                at = start + timedelta(days=day, seconds=rng.randint(0, 86_399))
                out.append(Event(f"{customer}-{n}", type_, customer, at, props))
    return out
