"""Factories for credit and entitlement service tests: a catalog applied, customers, plans.

``env`` (over ``state_url``: SQLite, then PostgreSQL) gives an :class:`Env` whose
methods each run in their own committed transaction, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy.orm import Session

from ratecard.catalog.loader import parse_catalog_text
from ratecard.catalog.schema import Catalog
from ratecard.store import state

T = TypeVar("T")

CATALOG = """
currency: USD
meters:
  prompts: {event: coding.prompt, aggregation: count}
  tokens: {event: coding.prompt, aggregation: sum, property: tokens}
  ai_credits:
    event: ai.action
    aggregation: count
    weights: {property: kind, values: {chat: 1, edit: 3, agent: 20}}
  actions: {event: agent.action, aggregation: count}
  premium:
    event: chat.request
    aggregation: count
    weights: {property: model, values: {mini: "0.25", sonnet: 1, opus: 10}}
plans:
  lite:
    base_fee: 20
    entitlements:
      sso: false
      models: [flash, plus]
      integrations: 3
      prompts:
        meter: prompts
        limits: [{limit: 120, window: 5h}, {limit: 1200, window: 7d}]
  team:
    base_fee: 39
    credits:
      grant: 3000
      per: month
      rollover: {max: 1500}
      burn: {ai_credits: 1}
      on_exhausted: overage
      overage_unit_price: "0.01"
    entitlements: {sso: true}
  individual:
    base_fee: 19
    credits: {grant: 500, per: month, burn: {ai_credits: 1}, on_exhausted: block}
  flex:
    base_fee: 0
    credits: {grant: 0, burn: {actions: 20}, on_exhausted: block}
  copilot:
    base_fee: 10
    entitlements:
      premium_requests:
        meter: premium
        limit: 300
        window: month
        hard: false
        overage_unit_price: "0.04"
credits:
  packs:
    flex: {price: 500, credits: 100000}
    growth: {price: 500, credits: 500, bonus: 75, bonus_expires_after: 90d}
    small: {price: 10, credits: 1000}
"""


class Env:
    """A migrated state database with the test catalog applied."""

    def __init__(self, url: str, catalog_text: str = CATALOG) -> None:
        self.url = url
        self.catalog: Catalog = parse_catalog_text(catalog_text)
        from ratecard.billing.catalogs import apply_catalog

        with self.session() as s:
            apply_catalog(s, self.catalog, catalog_text)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with state.session_scope(self.url) as s:
            yield s

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.session() as s:
            return fn(s, *args, **kwargs)

    def apply(self, catalog_text: str) -> None:
        from ratecard.billing.catalogs import apply_catalog

        self.catalog = parse_catalog_text(catalog_text)
        with self.session() as s:
            apply_catalog(s, self.catalog, catalog_text)

    def customer(self, cid: str, *, currency: str = "USD", timezone: str = "UTC") -> None:
        from ratecard.billing.customers import create_customer

        with self.session() as s:
            create_customer(s, cid, currency=currency, timezone=timezone)

    def subscribe(self, cid: str, plan: str, start: datetime, **kw: Any) -> int:
        from ratecard.billing.subscriptions import create_subscription

        with self.session() as s:
            return create_subscription(s, cid, plan, start=start, **kw).id


@pytest.fixture
def env(state_url: str) -> Env:
    return Env(state_url)


@pytest.fixture
def sqlite_env(tmp_path: Any) -> Iterator[Env]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    yield Env(url)
    state.dispose(url)
