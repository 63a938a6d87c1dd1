"""Margins and unit economics from revenue, cost and activity facts (pure functions).

Per group of the chosen dimension (customer, plan, meter or model) and in total:

* revenue, cost (model cost + meter unit costs), gross margin = revenue − cost,
  margin % = margin / revenue;
* model cost ratio = model cost / revenue (the playbook wants < 25% at scale);
* CPT = cost / tasks, CPR = cost / resolved outcomes, CPAM = cost / active members,
  tokens per task (per customer, per plan and in total; not per meter or model);
* per plan, the archetype's target band (copilot 70–80%, agent 50–65%, service
  60–75%, api 50–65%) and the plan's own ``min_margin``.

Rows are ordered with the groups that cost more than they earn first (largest loss
first), then by revenue. ``losers`` always lists the *customers* whose cost exceeds
their revenue, whatever the dimension.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from ratecard.advisor.archetypes import ARCHETYPES
from ratecard.analytics.model import (
    DIMENSIONS,
    UNATTRIBUTED,
    ActivityFact,
    CostFact,
    MarginReport,
    MarginRow,
    PlanTarget,
    RevenueFact,
    UnpricedModel,
)
from ratecard.catalog.schema import Catalog
from ratecard.errors import InvalidInput
from ratecard.money import ZERO

RATIO_PLACES = Decimal("0.0001")


def check_dimension(by: str) -> str:
    if by not in DIMENSIONS:
        raise InvalidInput(
            f"unknown --by dimension {by!r}; use one of {', '.join(DIMENSIONS)}"
        )
    return by


def plan_targets(catalog: Catalog) -> dict[str, PlanTarget]:
    """Each plan's archetype band and ``min_margin`` from the catalog."""
    out: dict[str, PlanTarget] = {}
    for code, plan in catalog.plans.items():
        arch = ARCHETYPES.get(plan.archetype) if plan.archetype else None
        band = (arch.margin_low, arch.margin_high) if arch else None
        out[code] = PlanTarget(code, plan.archetype, band, plan.min_margin)
    return out


def ratio(value: Decimal | None) -> Decimal | None:
    """A ratio for display: four decimals, half up (0.6543 is 65.43%)."""
    return None if value is None else value.quantize(RATIO_PLACES, rounding=ROUND_HALF_UP)


@dataclass
class _Acc:
    revenue: Decimal = ZERO
    model_cost: Decimal = ZERO
    meter_cost: Decimal = ZERO
    byok: Decimal = ZERO
    requests: int = 0
    tokens: int = 0
    tasks: Decimal = ZERO
    resolutions: Decimal = ZERO
    members: Decimal = ZERO
    customers: set[str] = field(default_factory=set)

    def add_revenue(self, f: RevenueFact) -> None:
        self.revenue += f.amount
        self.customers.add(f.customer)

    def add_cost(self, f: CostFact) -> None:
        if f.kind == "model":
            self.model_cost += f.amount
        else:
            self.meter_cost += f.amount
        self.byok += f.byok_amount
        self.requests += f.requests
        self.tokens += f.tokens
        self.customers.add(f.customer)

    def add_activity(self, f: ActivityFact) -> None:
        self.tasks += f.tasks
        self.resolutions += f.resolutions
        self.members += f.active_members
        self.customers.add(f.customer)

    def row(self, key: str, *, units: bool, target: PlanTarget | None = None) -> MarginRow:
        return MarginRow(
            key=key, revenue=self.revenue, model_cost=self.model_cost,
            meter_cost=self.meter_cost, byok_model_cost=self.byok, requests=self.requests,
            tokens=self.tokens,
            tasks=self.tasks if units else None,
            resolutions=self.resolutions if units else None,
            active_members=self.members if units else None,
            target=target, customers=len(self.customers),
        )


def _key(value: str | None) -> str:
    return value if value else UNATTRIBUTED


def _order(rows: Iterable[MarginRow]) -> list[MarginRow]:
    return sorted(rows, key=lambda r: (not r.loss_making,
                                       r.margin if r.loss_making else -r.revenue, r.key))


def margin_report(
    by: str,
    start: datetime,
    end: datetime,
    revenue: Iterable[RevenueFact],
    costs: Iterable[CostFact],
    activity: Iterable[ActivityFact] = (),
    *,
    plans: Mapping[str, PlanTarget] | None = None,
    unpriced: Iterable[UnpricedModel] = (),
    currency: str = "USD",
    notes: Iterable[str] = (),
) -> MarginReport:
    """Group the facts by ``by`` and compute every margin and unit metric."""
    check_dimension(by)
    revenue, costs, activity = list(revenue), list(costs), list(activity)
    units = by in ("customer", "plan")
    groups: dict[str, _Acc] = {}
    per_customer: dict[str, _Acc] = {}
    total = _Acc()
    for r in revenue:
        groups.setdefault(_key(getattr(r, by)), _Acc()).add_revenue(r)
        per_customer.setdefault(r.customer, _Acc()).add_revenue(r)
        total.add_revenue(r)
    for c in costs:
        groups.setdefault(_key(getattr(c, by)), _Acc()).add_cost(c)
        per_customer.setdefault(c.customer, _Acc()).add_cost(c)
        total.add_cost(c)
    for a in activity:
        if units:
            groups.setdefault(_key(getattr(a, by)), _Acc()).add_activity(a)
        per_customer.setdefault(a.customer, _Acc()).add_activity(a)
        total.add_activity(a)
    targets = plans or {}
    rows = [acc.row(k, units=units, target=targets.get(k) if by == "plan" else None)
            for k, acc in groups.items()]
    losers = [acc.row(k, units=True) for k, acc in per_customer.items()]
    return MarginReport(
        start=start, end=end, by=by, rows=tuple(_order(rows)),
        total=total.row("total", units=True),
        losers=tuple(_order(r for r in losers if r.loss_making)),
        unpriced=tuple(sorted(unpriced, key=lambda u: (-u.events, u.model))),
        currency=currency, notes=tuple(notes),
    )
