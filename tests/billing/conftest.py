"""Billing test setup: a small catalog and a helper over a real state database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from ratecard.billing import invoices as inv
from ratecard.billing.catalogs import apply_catalog
from ratecard.billing.customers import create_customer
from ratecard.billing.subscriptions import create_subscription
from ratecard.billing.usage import EventsUsage
from ratecard.catalog.loader import parse_catalog_text
from ratecard.metering.model import Event
from ratecard.store.state import session_scope

CATALOG = """
currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
  tokens: {event: llm.request, aggregation: sum, property: tokens, group_by: [model]}
plans:
  starter:
    name: Starter
    base_fee: 31
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, included: 10, unit_price: "1.29"}
  pro:
    name: Pro
    base_fee: 62
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, included: 100, unit_price: "0.89"}
  team:
    name: Team
    seats: {unit_price: 10, minimum: 2}
  api:
    name: API
    charges:
      - name: Tokens
        meter: tokens
        model: per_unit
        per: 1000
        prices_by: model
        prices: {small: {unit_price: "0.5"}, large: {unit_price: "3"}}
  committed:
    name: Committed
    minimum: 500
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, unit_price: "1"}
  yearly:
    name: Yearly
    interval: year
    base_fee: 1200
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, unit_price: "0.5"}
  lite:
    name: Lite
    base_fee: 20
    quarterly_discount: "0.10"
    annual_discount: "0.15"
  euro:
    name: Euro
    currency: EUR
    base_fee: 10
"""


def t(text: str) -> datetime:
    """A UTC instant from ``2026-01-15`` or ``2026-01-15T10:00``."""
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Billing:
    """A state database with the test catalog, and shortcuts for tests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.usage = EventsUsage()
        self._n = 0
        self.settings = inv.BillingSettings()
        with self.session() as s:
            apply_catalog(s, parse_catalog_text(CATALOG), CATALOG)

    def session(self) -> AbstractContextManager[Session]:
        return session_scope(self.url)

    def apply(self, text: str) -> Any:
        with self.session() as s:
            return apply_catalog(s, parse_catalog_text(text), text)

    def customer(self, cid: str, **kw: Any) -> str:
        with self.session() as s:
            create_customer(s, cid, **kw)
        return cid

    def subscribe(self, customer: str, plan: str, start: str, **kw: Any) -> int:
        with self.session() as s:
            return create_subscription(s, customer, plan, start=t(start), **kw).id

    def events(self, customer: str, at: str, n: int = 1, type_: str = "ticket.closed",
               **props: Any) -> None:
        if type_ == "ticket.closed":
            props.setdefault("outcome", "resolved")
        for _ in range(n):
            self._n += 1
            self.usage.add(Event(f"e{self._n}", type_, customer, t(at), dict(props)))

    def run(self, at: str, **kw: Any) -> inv.RunReport:
        return inv.run_invoices(self.session, t(at), self.usage,
                                settings=kw.pop("settings", self.settings), **kw)

    def invoices(self, customer: str | None = None) -> list[dict[str, Any]]:
        with self.session() as s:
            return inv.list_invoices(s, customer=customer)

    def invoice(self, ref: str | int) -> dict[str, Any]:
        with self.session() as s:
            return inv.get_invoice(s, ref)


@pytest.fixture
def billing(state_url: str) -> Iterator[Billing]:
    yield Billing(state_url)


@pytest.fixture
def sqlite_billing(tmp_path: Any) -> Iterator[Billing]:
    """The same on SQLite only (for tests that do not touch storage semantics)."""
    from ratecard.store import state

    url = f"sqlite:///{tmp_path / 'state.db'}"
    yield Billing(url)
    state.dispose(url)
