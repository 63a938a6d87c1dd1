"""Backtest setup: a real state database (SQLite) with support-agent customers on a
pay-per-resolution plan, their events in memory, and helpers to run the service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ratecard.billing.catalogs import apply_catalog
from ratecard.billing.customers import create_customer
from ratecard.billing.subscriptions import create_subscription
from ratecard.billing.usage import EventsUsage
from ratecard.catalog.loader import parse_catalog_text
from ratecard.clock import Window
from ratecard.metering.model import Event
from ratecard.simulate.model import Backtest, Candidate
from ratecard.simulate.service import backtest, load_candidate
from ratecard.store.state import session_factory, session_scope

CURRENT = """\
currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
costs:
  meters: {resolutions: "0.12"}
plans:
  payg:
    name: Pay per resolution
    archetype: agent
    self_serve: true
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, unit_price: "0.99"}
  flat:
    name: Flat
    archetype: agent
    base_fee: 100
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, included: 100,
         unit_price: "1"}
"""

# The candidate: a platform fee with included resolutions instead of pure pay-per-use.
BASE_FEE = """\
currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
costs:
  meters: {resolutions: "0.12"}
plans:
  payg:
    name: Base + included
    archetype: agent
    self_serve: true
    base_fee: 199
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, included: 300,
         unit_price: "0.79"}
  flat:
    name: Flat
    archetype: agent
    base_fee: 100
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, included: 100,
         unit_price: "1"}
"""

# Resolutions each customer had in February 2026.
FEBRUARY = {"a": 50, "b": 200, "c": 350, "d": 1000, "e": 0}


def t(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


FEB = Window(t("2026-02-01"), t("2026-03-01"))


class Shop:
    """A workspace-like state database and an in-memory usage source."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.usage = EventsUsage()
        self._n = 0
        with session_scope(url) as s:
            apply_catalog(s, parse_catalog_text(CURRENT), CURRENT)

    def customer(self, cid: str, plan: str = "payg", start: str = "2026-01-01",
                 **kw: Any) -> None:
        with session_scope(self.url) as s:
            create_customer(s, cid)
            create_subscription(s, cid, plan, start=t(start), **kw)

    def resolutions(self, customer: str, n: int, at: str = "2026-02-10",
                    outcome: str = "resolved") -> None:
        for _ in range(n):
            self._n += 1
            self.usage.add(Event(f"e{self._n}", "ticket.closed", customer, t(at),
                                 {"outcome": outcome}))

    def candidate(self, text: str, name: str = "candidate.yaml", **kw: Any) -> Candidate:
        path = self.tmp / name
        path.write_text(text)
        return load_candidate(path, **kw)

    def backtest(self, candidates: list[Candidate], window: Window = FEB,
                 plans: list[str] | None = None) -> Backtest:
        session = session_factory(self.url)()
        try:
            return backtest(session, self.usage, candidates, window, plans=plans)
        finally:
            session.rollback()
            session.close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    from ratecard.store import state

    url = f"sqlite:///{tmp_path / 'state.db'}"
    s = Shop(url, tmp_path)
    yield s
    state.dispose(url)


@pytest.fixture
def february(shop: Shop) -> Shop:
    """Five pay-per-resolution customers with February's resolutions (and some noise)."""
    for cid, n in FEBRUARY.items():
        shop.customer(cid)
        shop.resolutions(cid, n)
        shop.resolutions(cid, 3, outcome="escalated")     # not resolutions: never billed
    shop.resolutions("a", 7, at="2026-01-20")              # January: outside the period
    return shop
