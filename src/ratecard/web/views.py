"""The dashboard's read model: what each page shows, from the services the CLI and API use.

Every function takes a :class:`Ctx` (the workspace, an open session, the time "now")
and returns plain frozen values for a template. Nothing here computes money of its
own: amounts come from the billing, analytics, credits and entitlements services and
from the usage store, so a number on a page is the number ``ratecard ... --json`` and
``GET /v1/...`` give. Functions only select, group for display and order.
"""

from __future__ import annotations

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


@dataclass
class Ctx:
    """What every view needs: the workspace, a session, and the time the page is for."""

    workspace: Workspace
    session: Session
    now: datetime
    _cache: dict[str, Any] = field(default_factory=dict)

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


# --------------------------------------------------------------------------- not yet wired


def overview(ctx: Ctx, currency: str | None = None) -> dict[str, Any]:
    return {}


def usage_explorer(ctx: Ctx, **kw: Any) -> dict[str, Any]:
    return {}


def margins(ctx: Ctx, **kw: Any) -> dict[str, Any]:
    return {}


def credits_overview(ctx: Ctx) -> dict[str, Any]:
    return {}


def portal(ctx: Ctx, customer: str) -> dict[str, Any]:
    return {}
