"""A workspace with a catalog, customers, a month of stored usage and its invoices."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ratecard.billing import invoices as inv
from ratecard.billing.catalogs import apply_catalog
from ratecard.billing.customers import create_customer
from ratecard.billing.subscriptions import create_subscription
from ratecard.billing.usage import StoreUsage
from ratecard.catalog import load_catalog
from ratecard.metering.model import Event
from ratecard.store import state
from ratecard.store.state import session_scope
from ratecard.store.usage import open_usage_store
from ratecard.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MARCH_1 = datetime(2026, 3, 1, tzinfo=UTC)


class Business:
    """One workspace: apply a catalog, subscribe customers, store events, bill."""

    def __init__(self, root: Path, catalog: Path) -> None:
        self.ws = Workspace.open(root, create=True)
        self.catalog = load_catalog(catalog)
        self.events: list[Event] = []
        with session_scope(self.ws) as s:
            apply_catalog(s, self.catalog, catalog.read_text(encoding="utf-8"))

    def customer(self, cid: str, plan: str, **kw: Any) -> None:
        with session_scope(self.ws) as s:
            create_customer(s, cid, **kw)
            create_subscription(s, cid, plan, start=MARCH_1)

    def add(self, customer: str, type_: str, n: int, at: datetime | None = None,
            **props: Any) -> None:
        for _ in range(n):
            self.events.append(Event(f"e{len(self.events) + 1}", type_, customer,
                                     at or datetime(2026, 3, 2, tzinfo=UTC), dict(props)))

    def bill(self, at: datetime = datetime(2026, 4, 2, tzinfo=UTC), *,
             costed: bool = False) -> None:
        """Store the events and run invoices (``costed``: cost_plus from the store's costing)."""
        store = open_usage_store(self.ws.usage_url)
        try:
            store.append(self.events)
            source: Any = StoreUsage(store, self.catalog)
            if costed:
                from ratecard.costs.metered import CostedUsage
                from ratecard.costs.service import effective_book

                source = CostedUsage(source, store, effective_book(self.ws, self.catalog.costs))
            inv.run_invoices(lambda: session_scope(self.ws), at, source)
        finally:
            store.close()


@pytest.fixture
def business(tmp_path: Path) -> Iterator[Callable[[str], Business]]:
    made: list[Business] = []

    def make(example: str) -> Business:
        b = Business(tmp_path / f"ws{len(made)}", EXAMPLES / example)
        made.append(b)
        return b

    yield make
    for b in made:
        state.dispose(b.ws.database_url)
