"""The fast path rates exactly as billing's ``assemble`` does, and parallel rating
gives the same result as one process, over many billing shapes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ratecard.billing.catalogs import apply_catalog
from ratecard.billing.customers import create_customer
from ratecard.billing.invoices import fetch_usage
from ratecard.billing.subscriptions import (
    cancel_subscription,
    change_subscription,
    create_subscription,
)
from ratecard.billing.usage import EventsUsage
from ratecard.catalog.loader import parse_catalog_text
from ratecard.clock import Window
from ratecard.metering.model import Event
from ratecard.simulate import rules
from ratecard.simulate.model import Backtest, Candidate
from ratecard.simulate.service import load_inputs, rate_parallel
from ratecard.store import state
from ratecard.store.state import session_factory, session_scope

from .conftest import t

SHAPES = """\
currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
  tokens: {event: llm.request, aggregation: sum, property: input_tokens, group_by: [model]}
  actions: {event: ai.action, aggregation: count}
costs:
  meters: {resolutions: "0.12", actions: "0.003"}
  models: {small: {input: "0.2", output: "0.8"}, large: {input: "3", output: "12"}}
plans:
  starter:
    base_fee: 31
    charges:
      - {meter: resolutions, model: per_unit, included: 10, unit_price: "1.29"}
  pro:
    base_fee: 62
    charges:
      - {meter: resolutions, model: graduated, tiers: [{up_to: 100, unit_price: 0},
         {up_to: 1000, unit_price: "0.89"}, {up_to: null, unit_price: "0.59"}]}
  team:
    seats: {unit_price: 10, minimum: 2}
    credits: {grant: 100, burn: {actions: 1}, on_exhausted: overage,
              overage_unit_price: "0.02"}
  api:
    minimum: 50
    charges:
      - {meter: tokens, model: per_unit, per: 1000, prices_by: model,
         prices: {small: {unit_price: "0.5"}, large: {unit_price: "3"}}}
  yearly:
    interval: year
    base_fee: 1200
    charges:
      - {meter: resolutions, model: per_unit, unit_price: "0.5"}
  lite:
    base_fee: 20
    quarterly_discount: "0.10"
    annual_discount: "0.15"
    charges:
      - {meter: actions, model: package, size: 100, price: 3}
"""

CANDIDATE = SHAPES.replace("base_fee: 31", "base_fee: 49").replace(
    'unit_price: "1.29"', 'unit_price: "0.99"').replace("minimum: 50", "minimum: 80").replace(
    "unit_price: 10, minimum: 2", "unit_price: 12, minimum: 3").replace(
    "base_fee: 1200", "base_fee: 1000").replace("size: 100, price: 3", "size: 50, price: 2")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Subscriptions of every shape (trials, seats, prepaid terms, mid-period changes,
    cancellations) and random usage over three months."""
    tmp: Path = tmp_path_factory.mktemp("equivalence")
    url = f"sqlite:///{tmp / 'state.db'}"
    rng = random.Random(20260101)
    usage = EventsUsage()
    with session_scope(url) as s:
        apply_catalog(s, parse_catalog_text(SHAPES), SHAPES)
        n = 0
        for plan in ("starter", "pro", "team", "api", "yearly", "lite"):
            for k in range(6):
                cid = f"{plan}-{k}"
                create_customer(s, cid, timezone=rng.choice(["UTC", "Pacific/Auckland",
                                                              "America/New_York"]))
                kw: dict[str, Any] = {}
                if plan == "team":
                    kw["seats"] = rng.choice([2, 3, 5])
                if plan == "lite" and k % 2:
                    kw["term"] = rng.choice(["quarter", "year"])
                if k == 1:
                    kw["trial_days"] = 14
                start = t(f"2026-01-{rng.randint(1, 28):02d}")
                sub = create_subscription(s, cid, plan, start=start, **kw)
                if k == 2 and plan in ("starter", "lite"):
                    change_subscription(s, sub.id, plan="pro", when="now",
                                        at=t("2026-03-17T08:00"))
                if k == 3:
                    cancel_subscription(s, sub.id, when="now", at=t("2026-03-20T12:00"))
                for day in range(1, 100, 3):
                    at = t("2026-01-01") + (t("2026-01-02") - t("2026-01-01")) * day
                    for _ in range(rng.randint(0, 4)):
                        n += 1
                        kind = rng.choice(["ticket.closed", "llm.request", "ai.action"])
                        props: dict[str, Any] = {"outcome": "resolved"}
                        if kind == "llm.request":
                            props = {"model": rng.choice(["small", "large"]),
                                     "input_tokens": rng.randint(100, 90_000)}
                        elif kind == "ai.action":
                            props = {}
                        for _ in range(rng.choice([1, 1, 5, 40])):
                            n += 1
                            usage.add(Event(f"e{n}", kind, cid, at, props))
    yield {"url": url, "usage": usage, "tmp": tmp}
    state.dispose(url)


def _run(world: dict[str, Any], window: Window, **kw: Any) -> tuple[rules.Prepared, Backtest,
                                                                      Backtest]:
    path = world["tmp"] / "candidate.yaml"
    path.write_text(CANDIDATE)
    cand = Candidate("candidate", parse_catalog_text(CANDIDATE))
    session = session_factory(world["url"])()
    try:
        inputs, base = load_inputs(session, window)
    finally:
        session.rollback()
        session.close()
    prep = rules.prepare(inputs, [cand], window, base=base)
    usage = fetch_usage(world["usage"], prep.requests + prep.cost_requests)
    fast = rules.run(prep, usage)
    slow = rules.run(prep, usage, reference=True)
    return prep, fast, slow


def _table(bt: Backtest) -> list[tuple[Any, ...]]:
    return [(r.customer, r.old, r.new, r.cost, r.invoices,
             tuple(sorted((k, a.old, a.new) for k, a in r.slices.items())))
            for rep in bt.candidates for r in rep.results]


@pytest.mark.parametrize(("start", "end"), [
    ("2026-02-01", "2026-05-01"), ("2026-01-01", "2026-02-01"), ("2026-03-10", "2026-04-05"),
])
def test_fast_path_equals_billing_assemble(world: dict[str, Any], start: str,
                                           end: str) -> None:
    _, fast, slow = _run(world, Window(t(start), t(end)))
    assert _table(fast) == _table(slow)
    assert len(_table(fast)) >= 20
    assert any(r.delta != 0 for r in fast.candidates[0].results)
    assert fast.candidates[0].errors == slow.candidates[0].errors
    if start == "2026-02-01":        # the world covers every kind of line
        slices = {k for r in fast.candidates[0].results for k in r.slices}
        assert {"(fees)", "(minimum)", "(credits)", "resolutions", "tokens",
                "actions"} <= slices


def test_parallel_rating_equals_one_process(world: dict[str, Any]) -> None:
    prep, fast, _ = _run(world, Window(t("2026-02-01"), t("2026-05-01")))
    usage = fetch_usage(world["usage"], prep.requests + prep.cost_requests)
    rated = rate_parallel(prep, usage, workers=2, min_parallel=0)
    assert _table(rules.compare(prep, rated)) == _table(fast)
