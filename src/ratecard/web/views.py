"""The dashboard's read model: what each page shows, from the services the CLI and API use.

Every function takes a :class:`Ctx` (the workspace, an open session, the time "now")
and returns plain frozen values for a template. Nothing here computes money of its
own: amounts come from the billing, analytics, credits and entitlements services and
from the usage store, so a number on a page is the number ``ratecard ... --json`` and
``GET /v1/...`` give. Functions only select, group for display and order.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from ratecard.clock import parse_time
from ratecard.money import D
from ratecard.workspace import Workspace

ZERO = Decimal(0)
PAGE_SIZE = 50
log = logging.getLogger("ratecard.web")


@dataclass
class Ctx:
    """What every view needs: the workspace, a session, and the time the page is for."""

    workspace: Workspace
    session: Session
    now: datetime
    store_factory: Any = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def store(self) -> Any:
        """The usage store (the app's shared one when the app gives a factory)."""
        if self.store_factory is not None:
            return self.store_factory()
        from ratecard.store.usage import open_usage_store

        return self.cached("store", lambda: open_usage_store(self.workspace.usage_url))

    def cached(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


@dataclass(frozen=True)
class Page:
    """One page of a list."""

    items: Sequence[Any]
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def paginate(items: Sequence[Any], number: int, size: int = PAGE_SIZE) -> Page:
    pages = max(1, -(-len(items) // size))
    n = min(max(number, 1), pages)
    return Page(items[(n - 1) * size: n * size], n, size, len(items))


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlanSummary:
    code: str
    name: str
    version: int
    currency: str
    archetype: str | None
    interval: str
    base_fee: Decimal
    charges: int
    subscribers: int
    retired: bool
    models: tuple[str, ...]


def _plan_versions(ctx: Ctx) -> list[Any]:
    from ratecard.billing.catalogs import list_plans

    return ctx.cached("plans", lambda: list_plans(ctx.session))


def _subscriptions(ctx: Ctx) -> list[Any]:
    from ratecard.billing.subscriptions import list_subscriptions

    return ctx.cached("subscriptions", lambda: list_subscriptions(ctx.session))


def subscriber_counts(ctx: Ctx) -> Counter[tuple[str, int]]:
    """Active (or trialing) subscriptions per (plan, version) at ``ctx.now``."""
    counts: Counter[tuple[str, int]] = Counter()
    for sub in _subscriptions(ctx):
        if sub.status(ctx.now) in ("active", "trialing", "canceling"):
            phase = sub.current_phase(ctx.now)
            counts[(phase.plan_code, phase.plan_version)] += 1
    return counts


def plans(ctx: Ctx) -> list[PlanSummary]:
    counts = subscriber_counts(ctx)
    out = []
    for pv in _plan_versions(ctx):
        plan = pv.plan
        subs = sum(n for (code, _), n in counts.items() if code == pv.code)
        out.append(PlanSummary(
            code=pv.code, name=plan.name or pv.code, version=pv.version, currency=pv.currency,
            archetype=plan.archetype, interval=plan.interval, base_fee=plan.base_fee,
            charges=len(plan.charges), subscribers=subs, retired=pv.retired,
            models=tuple(sorted({c.model for c in plan.charges})),
        ))
    return out


@dataclass(frozen=True)
class PlanVersionView:
    version: int
    created_at: datetime
    latest: bool
    subscribers: int
    definition: Mapping[str, Any]
    diff: tuple[str, ...]


@dataclass(frozen=True)
class PlanDetail:
    code: str
    name: str
    currency: str
    retired: bool
    plan: Any
    versions: tuple[PlanVersionView, ...]


def plan_detail(ctx: Ctx, code: str) -> PlanDetail:
    from ratecard.billing.catalogs import diff_values, plan_versions

    versions = plan_versions(ctx.session, code)
    counts = subscriber_counts(ctx)
    views: list[PlanVersionView] = []
    prev: Mapping[str, Any] | None = None
    for pv in versions:
        diff = () if prev is None else tuple(diff_values(prev.get("plan", {}),
                                                         pv.definition.get("plan", {}),
                                                         f"plans.{code}"))
        views.append(PlanVersionView(pv.version, pv.created_at, pv.latest,
                                     counts.get((code, pv.version), 0), pv.definition, diff))
        prev = pv.definition
    latest = versions[-1]
    return PlanDetail(code=code, name=latest.plan.name or code, currency=latest.currency,
                      retired=latest.retired, plan=latest.plan,
                      versions=tuple(reversed(views)))


# --------------------------------------------------------------------------- customers


@dataclass(frozen=True)
class CustomerSummary:
    id: str
    name: str
    currency: str
    plan: str | None
    plan_version: int | None
    status: str
    invoiced: Decimal
    invoices: int
    byok: bool


def _invoices(ctx: Ctx) -> list[dict[str, Any]]:
    from ratecard.billing.invoices import list_invoices

    return ctx.cached("invoices", lambda: list_invoices(ctx.session))


def invoices_by_customer(ctx: Ctx) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for inv in _invoices(ctx):
        out[inv["customer"]].append(inv)
    return out


def customer_summaries(ctx: Ctx, query: str = "") -> list[CustomerSummary]:
    from ratecard.billing.customers import list_customers

    subs_by: dict[str, list[Any]] = defaultdict(list)
    for sub in _subscriptions(ctx):
        subs_by[sub.customer].append(sub)
    invs = invoices_by_customer(ctx)
    q = query.strip().lower()
    out = []
    for c in list_customers(ctx.session):
        if q and q not in c.external_id.lower() and q not in (c.name or "").lower():
            continue
        subs = subs_by.get(c.external_id, [])
        current = _current_subscription(subs, ctx.now)
        phase = current.current_phase(ctx.now) if current else None
        billed = [i for i in invs.get(c.external_id, []) if i["status"] != "void"]
        out.append(CustomerSummary(
            id=c.external_id, name=c.name or c.external_id, currency=c.currency,
            plan=phase.plan_code if phase else None,
            plan_version=phase.plan_version if phase else None,
            status=current.status(ctx.now) if current else "no subscription",
            invoiced=sum((D(i["total"]) for i in billed), ZERO), invoices=len(billed),
            byok=c.byok,
        ))
    return out


def _current_subscription(subs: Sequence[Any], at: datetime) -> Any | None:
    live = [s for s in subs if s.status(at) in ("active", "trialing", "canceling")]
    pool = live or list(subs)
    return max(pool, key=lambda s: s.started_at) if pool else None


@dataclass(frozen=True)
class CustomerDetail:
    customer: Any
    subscriptions: tuple[Any, ...]
    invoices: tuple[dict[str, Any], ...]
    invoiced: Decimal


def customer_detail(ctx: Ctx, customer_id: str) -> CustomerDetail:
    from ratecard.billing.customers import get_customer
    from ratecard.billing.invoices import list_invoices
    from ratecard.billing.subscriptions import list_subscriptions

    customer = get_customer(ctx.session, customer_id)
    subs = list_subscriptions(ctx.session, customer_id)
    invs = list_invoices(ctx.session, customer=customer_id)
    invs_sorted = sorted(invs, key=lambda i: (i["period_end"], i["id"]), reverse=True)
    invoiced = sum((D(i["total"]) for i in invs if i["status"] != "void"), ZERO)
    return CustomerDetail(customer, tuple(subs), tuple(invs_sorted), invoiced)


# --------------------------------------------------------------------------- invoices


INVOICE_STATUSES = ("draft", "finalized", "paid", "void")


def invoices(ctx: Ctx, *, status: str | None = None, customer: str | None = None,
             currency: str | None = None) -> list[dict[str, Any]]:
    rows = _invoices(ctx)
    out = [i for i in rows
           if (status is None or i["status"] == status)
           and (customer is None or i["customer"] == customer)
           and (currency is None or i["currency"] == currency)]
    return sorted(out, key=lambda i: (i["period_end"], i["id"]), reverse=True)


def invoice_totals(rows: Iterable[dict[str, Any]]) -> dict[str, Decimal]:
    """Total per currency of invoices that are not void."""
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for i in rows:
        if i["status"] != "void":
            out[i["currency"]] += D(i["total"])
    return dict(sorted(out.items()))


def invoice_detail(ctx: Ctx, ref: str) -> dict[str, Any]:
    from ratecard.billing.invoices import get_invoice

    key: str | int = int(ref) if ref.isdigit() else ref
    return get_invoice(ctx.session, key)


def period_label(inv: Mapping[str, Any]) -> str:
    start, end = parse_time(inv["period_start"]), parse_time(inv["period_end"])
    if start == end:
        return f"from {end:%Y-%m-%d}"
    return f"{start:%Y-%m-%d} → {end:%Y-%m-%d}"


@dataclass(frozen=True)
class Document:
    content: bytes
    filename: str


def invoice_document(ctx: Ctx, ref: str, fmt: str, *, customer: str | None = None) -> Document:
    """The invoice as the billing renderer prints it (``html`` or ``pdf``).

    With ``customer`` (the portal), an invoice of another customer is not found.
    """
    from ratecard.billing.render import invoice_html, invoice_pdf
    from ratecard.errors import NotFound

    inv = invoice_detail(ctx, ref)
    if customer is not None and inv["customer"] != customer:
        raise NotFound(f"no invoice {ref!r}")
    name = inv["number"] or f"draft-{inv['id']}"
    if fmt == "pdf":
        return Document(invoice_pdf(inv), f"{name}.pdf")
    return Document(invoice_html(inv).encode("utf-8"), f"{name}.html")


# --------------------------------------------------------------------------- usage explorer

WINDOWS: dict[str, int] = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
MAX_GROUPS = 6


@dataclass(frozen=True)
class UsageExplorer:
    meters: tuple[str, ...]
    meter: str | None
    customer: str | None
    window: str
    group_by: str | None
    group_options: tuple[str, ...]
    step: str
    labels: tuple[str, ...]
    series: tuple[Any, ...]
    total: Decimal
    by_group: tuple[tuple[str, Decimal], ...]
    top_customers: tuple[tuple[str, Decimal], ...]
    unit: str


def _catalog(ctx: Ctx) -> Any:
    from ratecard.billing.catalogs import current_catalog

    return ctx.cached("catalog", lambda: current_catalog(ctx.session))


def usage_explorer(ctx: Ctx, *, meter: str | None = None, customer: str | None = None,
                   window: str = "30d", group_by: str | None = None,
                   step: str | None = None) -> UsageExplorer:
    """A meter's usage over a window: per day (or hour), split by a group, top customers.

    Quantities come from the usage store's ``series`` and ``aggregate`` (the same reads
    that invoices and ``GET /v1/.../usage`` make)."""
    from datetime import timedelta

    from ratecard.clock import Window
    from ratecard.web.charts import Series

    catalog = _catalog(ctx)
    names = tuple(sorted(catalog.meters)) if catalog is not None else ()
    window = window if window in WINDOWS else "30d"
    chosen = meter if meter in names else (names[0] if names else None)
    days = WINDOWS[window]
    grain = step if step in ("hour", "day") else ("hour" if days <= 2 else "day")
    if chosen is None:
        return UsageExplorer(names, None, customer, window, None, (), grain, (), (), ZERO, (),
                             (), "")
    m = catalog.meters[chosen]
    options = tuple(m.group_by)
    group = group_by if group_by in options else None
    end = ctx.now
    if grain == "day":
        start = (end - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
        step_td = timedelta(days=1)
    else:
        start = (end - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
        step_td = timedelta(hours=1)
    win = Window(start, end)
    store = ctx.store()
    customers = [customer] if customer else None
    points = store.series(m, window=win, grain=grain, customers=customers,
                          group_by=[group] if group else None)
    buckets: list[datetime] = []
    t = start
    while t < end:
        buckets.append(t)
        t += step_td
    index = {b: i for i, b in enumerate(buckets)}
    per_group: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(buckets))
    for p in points:
        i = index.get(p.bucket)
        if i is None:
            continue
        key = (p.group[0] if p.group and p.group[0] != "" else "(none)") if group else chosen
        per_group[key][i] += p.quantity
    totals = sorted(((k, sum(v, ZERO)) for k, v in per_group.items()), key=lambda kv: -kv[1])
    keep = [k for k, _ in totals[:MAX_GROUPS]]
    series = [Series(k, per_group[k]) for k in keep]
    rest = [k for k, _ in totals[MAX_GROUPS:]]
    if rest:
        other = [sum((per_group[k][i] for k in rest), ZERO) for i in range(len(buckets))]
        series.append(Series("other", other))
    fmt = "%m-%d %H:00" if grain == "hour" else "%b %d"
    labels = tuple(b.strftime(fmt) for b in buckets)
    top: list[tuple[str, Decimal]] = []
    if not customer:
        agg = store.aggregate(m, window=win, key=chosen)
        top = sorted(((c, u.quantity) for c, u in agg.items() if u.quantity),
                     key=lambda kv: -kv[1])[:10]
    total = sum((v for _, v in totals), ZERO)
    return UsageExplorer(names, chosen, customer, window, group, options, grain, labels,
                         tuple(series), total, tuple(totals), tuple(top),
                         m.unit or m.name or chosen)


# --------------------------------------------------------------------------- credits


@dataclass(frozen=True)
class WalletView:
    customer: str
    currency: str
    available: Decimal
    pending: Decimal
    deferred_revenue: Decimal
    grants: int


def credits_overview(ctx: Ctx) -> dict[str, Any]:
    """Every wallet's balance (``credits balance`` per customer), largest first."""
    from ratecard.credits import service as credits

    wallets = []
    for customer in credits.customers_with_wallets(ctx.session):
        b = credits.balance(ctx.session, customer, at=ctx.now)
        wallets.append(WalletView(customer, b.currency, b.available, b.pending,
                                  b.deferred_revenue, len(b.grants)))
    wallets.sort(key=lambda w: (-w.available, w.customer))
    deferred: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for w in wallets:
        deferred[w.currency] += w.deferred_revenue
    catalog = _catalog(ctx)
    packs = dict(catalog.credits.packs) if catalog is not None else {}
    unit = catalog.credits.unit if catalog is not None else "credit"
    return {"wallets": wallets, "deferred": dict(deferred), "packs": packs, "unit": unit,
            "total_available": sum((w.available for w in wallets), ZERO)}


# --------------------------------------------------------------------------- portal


@dataclass(frozen=True)
class LimitView:
    feature: str
    window: str
    window_label: str
    limit: Decimal
    used: Decimal
    remaining: Decimal
    resets_at: datetime | None
    resets_iso: str
    allowed: bool
    hard: bool


@dataclass(frozen=True)
class Spend:
    """What this period costs so far and where it is heading (a quote of the usage)."""

    period_start: datetime
    period_end: datetime
    currency: str
    advance: Decimal
    usage_so_far: Decimal
    usage_forecast: Decimal
    lines: tuple[Any, ...]
    forecast_lines: tuple[Any, ...]
    elapsed: Decimal

    @property
    def so_far(self) -> Decimal:
        return self.advance + self.usage_so_far

    @property
    def forecast(self) -> Decimal:
        return self.advance + self.usage_forecast


@dataclass(frozen=True)
class PortalView:
    customer: Any
    plan_code: str | None
    plan_name: str | None
    plan_version: int | None
    status: str
    limits: tuple[LimitView, ...]
    features: tuple[tuple[str, str], ...]
    credits: Any | None
    spend: Spend | None
    invoices: tuple[dict[str, Any], ...]
    problems: tuple[str, ...] = ()


def _window_label(text: str) -> str:
    calendar = {"day": "today", "week": "this week", "month": "this month"}
    return calendar.get(text, f"rolling {text}")


def limits_of(ctx: Ctx, customer: str) -> tuple[LimitView, ...]:
    """Each metered entitlement's windows, as ``check`` answers them right now."""
    from ratecard.clock import iso
    from ratecard.entitlements import service as ent

    out: list[LimitView] = []
    for feature, e in ent.entitlements_of(ctx.session, customer, at=ctx.now).items():
        if e.kind != "metered":
            continue
        res = ent.check(ctx.session, customer, feature, at=ctx.now)
        for w in res.windows:
            out.append(LimitView(feature, w.window, _window_label(w.window), w.limit, w.used,
                                 w.remaining, w.resets_at,
                                 iso(w.resets_at) if w.resets_at else "", w.allowed,
                                 res.hard))
    return tuple(out)


def _features(ctx: Ctx, customer: str) -> tuple[tuple[str, str], ...]:
    from ratecard.entitlements import service as ent

    out = []
    for feature, e in ent.entitlements_of(ctx.session, customer, at=ctx.now).items():
        if e.kind == "metered":
            continue
        v = e.value
        text = ("yes" if v else "no") if isinstance(v, bool) else (
            ", ".join(str(x) for x in v) if isinstance(v, list | tuple) else str(v))
        out.append((feature, text))
    return tuple(out)


def period_spend(ctx: Ctx, sub: Any) -> Spend | None:
    """The open usage period of ``sub``: fees billed in advance for it, usage so far, forecast.

    Usage so far is rated exactly as an invoice would rate it (the plan version's rating
    catalog, the usage store's aggregates, :func:`ratecard.pricing.rate_plan`, in-arrears
    lines only). The forecast rates each meter's usage so far scaled to the whole period
    (usage held at its pace), so tiers and included units apply as they will.
    """
    from ratecard.billing.invoices import RatingContext
    from ratecard.billing.rules import usage_period
    from ratecard.billing.usage import StoreUsage
    from ratecard.clock import Window
    from ratecard.metering.model import MeterUsage
    from ratecard.pricing import ARREARS, rate_plan, with_catalog_costs

    phase = sub.phase_at(ctx.now)
    if phase is None:
        return None
    rc = RatingContext(ctx.session)
    key = (phase.plan_code, phase.plan_version)
    catalog = rc.catalog(key)
    plan = catalog.plans[phase.plan_code]
    period = usage_period(phase, plan, ctx.now, sub.timezone)
    _, meters, values = rc.meters(key)
    so_far_window = Window(max(period.start, sub.started_at), ctx.now)
    snap: dict[str, MeterUsage] = {}
    if meters:
        got = StoreUsage(ctx.store(), catalog).usage([sub.customer], meters, so_far_window,
                                                      values)
        snap = dict(got.get(sub.customer, {}))
    now_q = rate_plan(catalog, phase.plan_code, with_catalog_costs(catalog, snap), plan=plan,
                      seats=phase.seats, include=(ARREARS,), minimum=False)
    total_span = (period.end - period.start).total_seconds()
    done = (ctx.now - period.start).total_seconds()
    elapsed = (D(str(int(done))) / D(str(int(total_span)))) if total_span > 0 else D(1)
    scale = (D(1) / elapsed) if elapsed > 0 else D(1)
    projected = {k: _scaled(u, scale) for k, u in snap.items()}
    fc_q = rate_plan(catalog, phase.plan_code, with_catalog_costs(catalog, projected),
                     plan=plan, seats=phase.seats, include=(ARREARS,), minimum=True)
    advance = ZERO
    for inv in invoices(ctx, customer=sub.customer):
        if inv["status"] == "void":
            continue
        for ln in inv["lines"]:
            if ln["meter"] is None and ln["kind"] not in ("usage", "minimum", "credits") and \
                    parse_time(ln["period_start"]) <= ctx.now < parse_time(ln["period_end"]):
                advance += D(ln["amount"])
    return Spend(period.start, period.end, sub.currency, advance, now_q.total, fc_q.total,
                 now_q.lines, fc_q.lines, elapsed)


def _scaled(u: Any, k: Decimal) -> Any:
    from dataclasses import replace

    if u.values is not None:  # priced per event (a share of sales): repeat the pace
        return replace(u, quantity=u.quantity * k, groups={g: q * k for g, q in u.groups.items()},
                       values=tuple(v * k for v in u.values), cost=None, group_costs=None)
    return replace(u, quantity=u.quantity * k, groups={g: q * k for g, q in u.groups.items()},
                   cost=None, group_costs=None)


def portal(ctx: Ctx, customer: str) -> PortalView:
    """One customer's own page: limits with their resets, credits, spend, invoices."""
    from ratecard.billing.customers import get_customer
    from ratecard.billing.subscriptions import list_subscriptions
    from ratecard.credits import service as credits

    c = get_customer(ctx.session, customer)
    subs = list_subscriptions(ctx.session, customer)
    current = _current_subscription(subs, ctx.now)
    phase = current.current_phase(ctx.now) if current else None
    plan_name = None
    if phase is not None:
        from ratecard.billing.catalogs import plan_version

        plan_name = plan_version(ctx.session, phase.plan_code, phase.plan_version).plan.name
    problems: list[str] = []

    def wallet() -> Any:
        if customer in set(credits.customers_with_wallets(ctx.session)):
            return credits.balance(ctx.session, customer, at=ctx.now)
        return None

    invs = tuple(i for i in invoices(ctx, customer=customer) if i["status"] != "draft")
    return PortalView(
        c, phase.plan_code if phase else None, plan_name,
        phase.plan_version if phase else None,
        current.status(ctx.now) if current else "no subscription",
        section(problems, "limits", lambda: limits_of(ctx, customer), ()),
        section(problems, "plan features", lambda: _features(ctx, customer), ()),
        section(problems, "credits", wallet, None),
        section(problems, "spend", lambda: period_spend(ctx, current), None)
        if current is not None else None,
        invs, tuple(problems))


def section(problems: list[str], name: str, make: Any, empty: Any) -> Any:
    """One part of a page; when its service fails, the rest of the page still shows.

    A user error (``RatecardError``) is shown as it is; anything else is logged with
    its traceback and shown as unavailable.
    """
    from ratecard.errors import RatecardError

    try:
        return make()
    except RatecardError as e:
        problems.append(f"{name}: {e.message}")
    except Exception:
        log.exception("web: the %s section failed", name)
        problems.append(f"{name}: unavailable right now")
    return empty


# --------------------------------------------------------------------------- margins


_reports: dict[tuple[str, Any, str], tuple[float, Any]] = {}
REPORT_SECONDS = 300


def _margin_report(ctx: Ctx, window: Any, by: str) -> Any:
    """The margins service's report, kept a few minutes (a report scans every event)."""
    import time

    from ratecard.analytics.service import margins as margin_service

    key = (str(ctx.workspace.path), window, by)
    hit = _reports.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    # the service opens its own transaction: end this (read-only) one first, or SQLite's
    # single writer lock (every transaction begins IMMEDIATE) would make it wait for us
    ctx.session.commit()
    report = margin_service(ctx.workspace, window, by)
    if len(_reports) > 64:
        _reports.clear()
    _reports[key] = (time.monotonic() + REPORT_SECONDS, report)
    return report


def report_now(now: datetime) -> datetime:
    """Reports end on the last ten-minute mark, so pages within it share them."""
    return now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0)


def month_windows(now: datetime, count: int) -> list[Any]:
    """The last ``count`` calendar months (UTC), the current one cut at ``now``."""
    from ratecard.clock import Window, add_months

    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    for k in range(count - 1, -1, -1):
        start = add_months(first, -k)
        end = min(add_months(first, -k + 1), now)
        out.append(Window(start, end))
    return out


PERIODS = ("30d", "month", "90d")


def margins(ctx: Ctx, *, period: str | None = None, by: str | None = None,
            currency: str | None = None) -> dict[str, Any]:
    """``ratecard margins`` over a window, by customer, plan and model; losers first."""
    from datetime import timedelta

    from ratecard.clock import Window

    period = period if period in PERIODS else "30d"
    end = report_now(ctx.now)
    if period == "month":
        window = month_windows(end, 1)[0]
    else:
        window = Window(end - timedelta(days=int(period[:-1])), end)
    problems: list[str] = []
    reports = {dim: section(problems, f"margins by {dim}",
                            lambda d=dim: _margin_report(ctx, window, d), None)
               for dim in ("customer", "plan", "model")}
    return {"period": period, "periods": PERIODS, "window": window, "reports": reports,
            "problems": problems}


def _revenue(ctx: Ctx) -> Any:
    from ratecard.analytics.revenue import revenue_report

    return revenue_report(ctx.session, ctx.now)


def stream_series(by_month: Mapping[str, Mapping[str, Decimal]],
                  months: int = 6) -> tuple[list[str], list[tuple[str, list[Decimal]]]]:
    """Month labels and one series per stream (the last ``months`` months)."""
    from ratecard.analytics.revenue import STREAMS

    keys = sorted(by_month)[-months:]
    names = [s for s in STREAMS if any(s in by_month[k] for k in keys)]
    names += sorted({s for k in keys for s in by_month[k]} - set(STREAMS))
    return keys, [(s, [by_month[k].get(s, ZERO) for k in keys]) for s in names]


def overview(ctx: Ctx, currency: str | None = None) -> dict[str, Any]:
    """Revenue, cost and margin per month (the margins service), billed totals, counts."""
    problems: list[str] = []
    months = month_windows(report_now(ctx.now), 3)
    monthly = [section(problems, f"margins {w.start:%b}", lambda w=w: _margin_report(
        ctx, w, "plan"), None) for w in months]
    labels = [f"{w.start:%b %Y}" for w in months]
    revenue = [r.total.revenue if r else None for r in monthly]
    cost = [r.total.cost if r else None for r in monthly]
    margin = [r.total.margin if r else None for r in monthly]
    plan_rev: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(months))
    for i, r in enumerate(monthly):
        for row in (r.rows if r else ()):
            plan_rev[row.key][i] += row.revenue
    subs = _subscriptions(ctx)
    live = [s for s in subs if s.status(ctx.now) in ("active", "trialing", "canceling")]
    billed = invoice_totals(_invoices(ctx))
    last = next((r for r in reversed(monthly) if r is not None), None)
    rev = section(problems, "revenue", lambda: _revenue(ctx), None)
    return {"revenue_report": rev, "labels": labels, "revenue": revenue,
            "cost": cost, "margin": margin,
            "plan_revenue": dict(plan_rev), "subscriptions": len(live),
            "customers": len({s.customer for s in live}), "billed": billed,
            "last": last, "problems": problems,
            "notes": tuple(last.notes) if last else ()}
