"""Margins and unit economics of a workspace over a window.

Gathers the facts and hands them to the pure rules (:mod:`ratecard.analytics.rules`):

* revenue: the invoices (:mod:`ratecard.analytics.repository`);
* model cost: every ``llm.request`` event costed in the usage store at its timestamp,
  BYOK customers at zero (:func:`ratecard.store.duckdb_costs.cost_events`);
* meter unit costs: the catalog's ``costs.meters`` × each meter's quantity;
* activity: tasks, resolved outcomes and active members from the meters named for
  them (``--tasks``, ``--resolutions``, ``--members``; by default the catalog meters
  called ``tasks``, ``resolutions`` and ``active_users``/``active_members``/``members``;
  without a tasks meter a task is one model request).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ratecard.analytics.model import ActivityFact, CostFact, MarginReport
from ratecard.analytics.rules import check_dimension, margin_report, plan_targets
from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window
from ratecard.costs.model import PriceBook
from ratecard.costs.service import effective_book
from ratecard.errors import InvalidInput, NotFound
from ratecard.money import ZERO
from ratecard.store.duckdb_cost_rollup import rollup_path
from ratecard.store.duckdb_costs import GRAIN, PlanSpan, UsageCosts, cost_events
from ratecard.workspace import Workspace

MEMBER_METERS = ("active_users", "active_members", "members")


@dataclass(frozen=True)
class Sources:
    """What a report was computed from (for the report's notes and for tests)."""

    catalog: Catalog | None
    book: PriceBook
    usage: UsageCosts


def _plan_at(spans: Sequence[PlanSpan], window: Window) -> dict[str, str]:
    """Each customer's plan for the window: the one it was on the longest in it."""
    best: dict[str, tuple[timedelta, str]] = {}
    for s in spans:
        lo = max(s.start, window.start) if s.start else window.start
        hi = min(s.end, window.end) if s.end else window.end
        if hi <= lo:
            continue
        if s.customer not in best or hi - lo > best[s.customer][0]:
            best[s.customer] = (hi - lo, s.plan)
    return {c: p for c, (_, p) in best.items()}


def open_store(ws: Workspace) -> Any | None:
    """The workspace's usage store, read only (``None`` when it has no usage yet)."""
    from ratecard.store.usage import open_usage_store

    try:
        return open_usage_store(ws.usage_url, read_only=True)
    except NotFound:
        return None


def usage_costs(store: Any, book: PriceBook, window: Window, *, byok: Sequence[str] = (),
                spans: Sequence[PlanSpan] = (), grain: Sequence[str] = GRAIN,
                rollup: bool = True) -> UsageCosts:
    """Cost the ``llm.request`` events of ``store`` in ``window`` (DuckDB stores).

    Whole days come from the day rollup kept beside a file store (``rollup=False``
    reads every event).
    """
    con = getattr(store, "con", None)
    if con is None or not hasattr(con, "cursor"):
        raise InvalidInput("costing usage needs the DuckDB usage store (duckdb:/// URL)")
    path = rollup_path(str(getattr(store, "url", ""))) if rollup else None
    cur = con.cursor()
    try:
        return cost_events(cur, book, window, byok=byok, spans=spans, grain=grain,
                           rollup=path)
    finally:
        cur.close()


def _quantities(store: Any, meter: Meter, window: Window) -> dict[str, Decimal]:
    return {c: u.quantity for c, u in store.aggregate(meter, window=window).items()
            if u.quantity}


def _pick_meter(catalog: Catalog | None, given: str | None, defaults: Sequence[str],
                what: str) -> str | None:
    if given is not None:
        if catalog is None or given not in catalog.meters:
            known = ", ".join(sorted(catalog.meters)) if catalog else "none (no catalog)"
            raise InvalidInput(f"--{what}: no meter {given!r} in the catalog; meters: {known}")
        return given
    if catalog is None:
        return None
    return next((m for m in defaults if m in catalog.meters), None)


def margins(
    ws: Workspace,
    window: Window,
    by: str = "customer",
    *,
    catalog: Catalog | None = None,
    book: PriceBook | None = None,
    tasks: str | None = None,
    resolutions: str | None = None,
    members: str | None = None,
    store: Any | None = None,
) -> MarginReport:
    """The margin report of ``ws`` over ``window`` grouped ``by`` one dimension.

    ``store`` is an open usage store to read (a server passes the one it holds);
    without it the workspace's store is opened read only for the report.
    """
    check_dimension(by)
    from ratecard.analytics.repository import byok_customers, plan_spans, revenue_facts
    from ratecard.billing.catalogs import current_catalog
    from ratecard.store.state import session_scope

    with session_scope(ws) as session:
        cat = catalog if catalog is not None else current_catalog(session)
        revenue, currencies = revenue_facts(session, window)
        spans = plan_spans(session)
        byok = byok_customers(session)
    if book is None:
        book = effective_book(ws, cat.costs if cat is not None else None)
    notes: list[str] = []
    own = store is None
    if own:
        store = open_store(ws)
    try:
        if store is None:
            usage = UsageCosts(window=window, rows=[], unpriced=[])
            notes.append("the workspace has no usage store yet: no usage costs")
        else:
            grain = GRAIN if by == "model" else ("customer", "plan")
            usage = usage_costs(store, book, window, byok=sorted(byok), spans=spans,
                                grain=grain)
        plan_of = _plan_at(spans, window)
        costs = [CostFact(customer=r.customer, amount=r.cost, kind="model", plan=r.plan,
                          model=r.model, byok_amount=r.byok_cost, requests=r.requests,
                          tokens=r.tokens) for r in usage.rows]
        meter_defs = cat.meters if cat is not None else {}
        for name, unit in sorted(book.meter_costs.items()):
            meter = meter_defs.get(name)
            if meter is None:
                notes.append(f"meter {name!r} has a unit cost but no definition in the catalog")
                continue
            if store is None:
                continue
            for customer, qty in _quantities(store, meter, window).items():
                costs.append(CostFact(customer=customer, amount=qty * unit, kind="meter",
                                      plan=plan_of.get(customer), meter=name))
        activity = _activity(store, cat, window, plan_of, usage, notes, tasks=tasks,
                             resolutions=resolutions, members=members)
    finally:
        if own and store is not None:
            with suppress(Exception):
                store.close()
    if byok:
        would = usage.byok_cost
        notes.append(f"{len(byok)} BYOK customer(s): no model cost (they would have cost "
                     f"{_s(would)} USD)")
    currency = cat.currency if cat is not None else "USD"
    if currencies - {"USD"} or currency != "USD":
        notes.append("model prices are in USD; revenue is in "
                     + ", ".join(sorted(currencies or {currency}))
                     + ": compare margins only where both are in one currency")
    if usage.unpriced:
        notes.append(f"{usage.unpriced_events} request(s) of unpriced models are not in the "
                     "costs: see `ratecard costs unpriced`")
    return margin_report(by, window.start, window.end, revenue, costs, activity,
                         plans=plan_targets(cat) if cat is not None else {},
                         unpriced=usage.unpriced, currency=currency, notes=notes)


def _s(v: Decimal) -> str:
    from ratecard.costs.model import dec_str

    return dec_str(v)


def _activity(store: Any, cat: Catalog | None, window: Window, plan_of: dict[str, str],
              usage: UsageCosts, notes: list[str], *, tasks: str | None,
              resolutions: str | None, members: str | None) -> list[ActivityFact]:
    per: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    names = {
        "tasks": _pick_meter(cat, tasks, ("tasks",), "tasks"),
        "resolutions": _pick_meter(cat, resolutions, ("resolutions",), "resolutions"),
        "active_members": _pick_meter(cat, members, MEMBER_METERS, "members"),
    }
    for field, meter_name in names.items():
        if meter_name is None or store is None or cat is None:
            continue
        for customer, qty in _quantities(store, cat.meters[meter_name], window).items():
            per[customer][field] += qty
    if names["tasks"] is None:
        notes.append("no tasks meter: a task is one model request (pass --tasks METER)")
        for r in usage.rows:
            per[r.customer]["tasks"] += r.requests
    return [ActivityFact(customer=c, plan=plan_of.get(c), tasks=v["tasks"],
                         resolutions=v["resolutions"], active_members=v["active_members"])
            for c, v in sorted(per.items())]


def cost_per_task(ws: Workspace, *, meter: str, window: Window) -> Decimal | None:
    """Total cost of goods over ``window`` per unit of ``meter`` (``None``: no usage).

    The advisor's seam: real cost per task (per resolution, per document...) from a
    workspace's usage, model and meter costs together.
    """
    report = margins(ws, window, "customer", tasks=meter)
    units = report.total.tasks
    if not units:
        return None
    return report.total.cost / units
