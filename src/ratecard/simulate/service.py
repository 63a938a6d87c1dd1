"""Backtests over a workspace: subscriptions and plan versions from the state database,
usage from the usage store, rating by :mod:`ratecard.simulate.rules`. Read only.

The session is never flushed nor committed (the caller rolls it back), and the usage
store is opened read-only by the CLI: a simulation changes no stored state.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ratecard.billing import repository as repo
from ratecard.billing import rules as billing_rules
from ratecard.billing.catalogs import current_catalog, list_plans, rating_catalog
from ratecard.billing.invoices import fetch_usage
from ratecard.billing.model import Subscription
from ratecard.billing.subscriptions import PlanCache
from ratecard.billing.usage import StoreUsage, UsageSource
from ratecard.catalog import load_catalog
from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window, iso
from ratecard.costs.model import PriceBook
from ratecard.costs.rules import resolve_rate
from ratecard.errors import InvalidInput, NotFound
from ratecard.metering.model import UsageSnapshot
from ratecard.money import ZERO
from ratecard.simulate import rules, whatif
from ratecard.simulate.migration import MigrationPlan, plan_migration, renewal_at
from ratecard.simulate.model import Backtest, Candidate


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """``OLD=NEW`` pairs (a current plan code and the candidate plan replacing it)."""
    out: dict[str, str] = {}
    for p in pairs:
        old, sep, new = p.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InvalidInput(f"--map {p!r}: write CURRENT=CANDIDATE, e.g. payg=starter")
        out[old.strip()] = new.strip()
    return out


def load_candidate(path: str | Path, *, mapping: Mapping[str, str] | None = None,
                   plans: Sequence[str] | None = None, name: str | None = None) -> Candidate:
    """A candidate catalog file; a file that does not validate lists its problems."""
    catalog = load_catalog(path)
    mapping = dict(mapping or {})
    missing = sorted({new for new in mapping.values() if new not in catalog.plans})
    if missing:
        known = ", ".join(sorted(catalog.plans)) or "none"
        raise NotFound(f"{path}: no candidate plan {', '.join(map(repr, missing))}; its plans: "
                       f"{known}")
    return Candidate(name=name or str(path), catalog=catalog, mapping=mapping,
                     plans=frozenset(plans) if plans else None)


def load_inputs(session: Session, window: Window, plans: Sequence[str] | None = None,
                ) -> tuple[list[rules.SubInput], Catalog | None]:
    """Subscriptions in force during ``window`` (on ``plans`` when given) with their
    plan versions, and the current catalog (for costs)."""
    known = {p.code for p in list_plans(session)}
    unknown = sorted(set(plans or ()) - known)
    if unknown:
        raise NotFound(f"no plan {', '.join(map(repr, unknown))} in the workspace; plans: "
                       f"{', '.join(sorted(known)) or 'none (apply a catalog first)'}")
    base = current_catalog(session)
    cache = PlanCache(session)
    catalogs: dict[rules.PlanKey, Catalog] = {}
    out: list[rules.SubInput] = []
    for sub in repo.subscriptions_of(session):
        if sub.started_at >= window.end or (sub.ends_at is not None
                                             and sub.ends_at <= window.start):
            continue
        if plans and not _on_plans(sub, set(plans), window):
            continue
        plan_map = cache.plans_for(sub)
        for key in plan_map:
            if key not in catalogs:
                catalogs[key] = rating_catalog(cache.version(*key), base)
        out.append(rules.SubInput(sub, plan_map, {k: catalogs[k] for k in plan_map}))
    return out, base


def _on_plans(sub: Subscription, plans: set[str], window: Window) -> bool:
    """Whether a phase on one of ``plans`` is in force at some time in ``window``."""
    return any(sp.phase.plan_code in plans and sp.start < window.end
               and (sp.end is None or sp.end > window.start)
               for sp in billing_rules.spans(sub))


def backtest(
    session: Session,
    source: UsageSource,
    candidates: Sequence[Candidate],
    window: Window,
    *,
    plans: Sequence[str] | None = None,
    workers: int | None = None,
) -> Backtest:
    """Rate the window's usage under the current plan versions and each candidate
    (``workers`` processes for large runs; default one per CPU)."""
    inputs, base = load_inputs(session, window, plans)
    if not inputs:
        scope = f" on {', '.join(plans)}" if plans else ""
        raise InvalidInput(f"no subscription{scope} is billed between {iso(window.start)} and "
                           f"{iso(window.end)}; pick another period")
    prep = rules.prepare(inputs, candidates, window, base=base)
    usage = fetch_usage(source, prep.requests + prep.cost_requests)
    rules.check_usage(prep, usage)
    return rules.compare(prep, rate_parallel(prep, usage, workers=workers))


# Rating is CPU-bound and pure: large backtests rate chunks of subscriptions in forked
# worker processes, which inherit the prepared scenarios and the usage read once.
_SHARED: tuple[rules.Prepared, Mapping[rules.UsageKey, UsageSnapshot]] | None = None
MIN_PARALLEL = 400


def _rate_chunk(indices: list[int]) -> rules.Rated:
    assert _SHARED is not None
    prep, usage = _SHARED
    return rules.rate_subs(prep, usage, indices)


def rate_parallel(prep: rules.Prepared, usage: Mapping[rules.UsageKey, UsageSnapshot], *,
                  workers: int | None = None, min_parallel: int = MIN_PARALLEL
                  ) -> rules.Rated:
    """:func:`rules.rate_subs` over every subscription, in ``workers`` processes (default:
    one per CPU) when there are at least ``min_parallel`` subscriptions and the platform
    can fork; the result is the same as rating them in one process."""
    n = len(prep.inputs)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or n < min_parallel or "fork" not in mp.get_all_start_methods():
        return rules.rate_subs(prep, usage, range(n))
    global _SHARED
    _SHARED = (prep, usage)
    try:
        step = workers * 4
        chunks = [list(range(k, n, step)) for k in range(step)]
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_rate_chunk, chunks)
    finally:
        _SHARED = None
    merged = rules.Rated()
    for part in parts:
        merged.merge(part)
    return merged


def migration_plans(session: Session, bt: Backtest, at: datetime, *,
                    cap: Decimal | None = None) -> list[MigrationPlan]:
    """A migration plan per candidate, with each subscription's next renewal after ``at``."""
    ids = {r.subscription_id for rep in bt.candidates for r in rep.results}
    subs = repo.subscriptions_by_ids(session, ids)
    renewals = {sid: renewal_at(sub, at) for sid, sub in subs.items()}
    kw = {"cap": cap} if cap is not None else {}
    return [plan_migration(rep, renewals, **kw) for rep in bt.candidates]


# --------------------------------------------------------------------------- what-ifs

TOKEN_PROPERTIES = {"input": "input_tokens", "cache_read": "cache_read_tokens",
                    "cache_write": "cache_write_tokens", "output": "output_tokens"}


def book_rates(book: PriceBook, at: datetime) -> whatif.Rates:
    """Per-token prices of each model in force at ``at`` (standard or batch), with the
    price book's defaults (cache reads at the input price, batch at half price)."""
    cache: dict[tuple[str, bool], Mapping[str, Decimal]] = {}

    def rates(model: str, batch: bool) -> Mapping[str, Decimal]:
        hit = cache.get((model, batch))
        if hit is None:
            price = book.lookup(model, at)
            hit = {k: resolve_rate(price, 0, batch, k).price for k in whatif.KINDS}
            cache[(model, batch)] = hit
        return hit

    return rates


def token_mixes(store: Any, window: Window, plan_of: Mapping[str, str]) -> list[whatif.Mix]:
    """Tokens per plan and model of the ``llm.request`` events in ``window`` (the
    canonical buckets ``input_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
    ``output_tokens``)."""
    sums: dict[tuple[str, str], dict[str, Decimal]] = {}
    requests: dict[tuple[str, str], Decimal] = {}
    for kind, prop in TOKEN_PROPERTIES.items():
        meter = Meter(event="llm.request", aggregation="sum", property=prop, group_by=["model"])
        for customer, mu in store.aggregate(meter, window=window, key=f"whatif_{kind}").items():
            plan = plan_of.get(str(customer), "(no subscription)")
            for (model,), qty in mu.groups.items():
                if qty:
                    sums.setdefault((plan, model), {})[kind] = \
                        sums.get((plan, model), {}).get(kind, ZERO) + qty
    count = Meter(event="llm.request", aggregation="count", group_by=["model"])
    for customer, mu in store.aggregate(count, window=window, key="whatif_requests").items():
        plan = plan_of.get(str(customer), "(no subscription)")
        for (model,), qty in mu.groups.items():
            requests[(plan, model)] = requests.get((plan, model), ZERO) + qty
    return [whatif.Mix(plan, model, tokens, requests.get((plan, model), ZERO))
            for (plan, model), tokens in sorted(sums.items())]


def what_if(session: Session, store: Any, book: PriceBook, window: Window,
            levers: whatif.Levers, *, plans: Sequence[str] | None = None) -> whatif.WhatIf:
    """Margin per plan over ``window`` now and with ``levers``, projected at 12, 24 and
    36 months: revenue as the current plans bill it, costs from the stored usage."""
    inputs, base = load_inputs(session, window, plans)
    if not inputs:
        raise InvalidInput(f"no subscription is billed between {iso(window.start)} and "
                           f"{iso(window.end)}; pick another period")
    prep = rules.prepare(inputs, [], window, base=base, require_candidates=False)
    source = StoreUsage(store)
    usage = fetch_usage(source, prep.requests)
    rated = rules.rate_subs(prep, usage, range(len(inputs)))
    plan_of: dict[str, str] = {}
    revenue: dict[str, Decimal] = {}
    for i, inp in enumerate(inputs):
        code = inp.sub.current_phase(window.end).plan_code
        plan_of[inp.sub.customer] = code
        if i in rated.baseline:
            revenue[code] = revenue.get(code, ZERO) + rated.baseline[i][0]
    other: dict[str, Decimal] = {}
    if base is not None:
        for name, unit in base.costs.meters.items():
            meter = base.meters.get(name)
            if meter is None:
                continue
            for customer, mu in store.aggregate(meter, window=window, key=name).items():
                owner = plan_of.get(str(customer))
                if owner is not None:
                    other[owner] = other.get(owner, ZERO) + mu.quantity * unit
    mixes = [m for m in token_mixes(store, window, plan_of) if m.plan in revenue]
    if not mixes and not other:
        raise InvalidInput(f"no usage between {iso(window.start)} and {iso(window.end)}; "
                           "pick a period with recorded events")
    return whatif.project(revenue, mixes, book_rates(book, window.end), levers,
                          other_cost=other)
