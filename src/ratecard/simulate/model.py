"""Backtest values: candidates, per-customer results, totals, reports (pure, frozen)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from ratecard.catalog.schema import Catalog
from ratecard.clock import Window, iso
from ratecard.money import ZERO

ASSUMPTION = (
    "Usage held fixed: every customer's recorded usage is rated as it happened under each "
    "candidate; nobody changes behaviour, plan or churns because of the new prices. Cost is "
    "the cost of that same usage (today's cost definitions), so only revenue moves."
)

Outcome = Literal["more", "less", "same"]


@dataclass(frozen=True)
class Candidate:
    """A candidate catalog: which current plans it replaces, and by which of its plans.

    By default a current plan is replaced by the candidate plan with the same code;
    ``mapping`` renames (``payg -> starter``); ``plans`` restricts the replacement to
    those current plan codes (others stay on their current version).
    """

    name: str
    catalog: Catalog
    mapping: Mapping[str, str] = field(default_factory=dict)
    plans: frozenset[str] | None = None

    def target(self, current_code: str) -> str | None:
        """The candidate plan that replaces ``current_code`` (None: not replaced)."""
        if self.plans is not None and current_code not in self.plans:
            return None
        code = self.mapping.get(current_code, current_code)
        return code if code in self.catalog.plans else None


@dataclass(frozen=True)
class Amounts:
    """Old and new revenue of one slice (a meter, fees, credits)."""

    old: Decimal = ZERO
    new: Decimal = ZERO

    @property
    def delta(self) -> Decimal:
        return self.new - self.old

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(self.old + other.old, self.new + other.new)

    def as_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "delta": self.delta}


def pct(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if whole == 0 else part / whole


def margin(revenue: Decimal, cost: Decimal | None) -> Decimal | None:
    if cost is None or revenue == 0:
        return None
    return (revenue - cost) / revenue


@dataclass(frozen=True)
class CustomerResult:
    """One customer's revenue over the window, before and after."""

    customer: str
    subscription_id: int
    currency: str
    plan: str                    # current plan code (the phase in force at the window's end)
    version: int
    new_plan: str | None         # the candidate plan rating it (None: not replaced)
    old: Decimal
    new: Decimal
    cost: Decimal | None
    invoices: int
    slices: Mapping[str, Amounts] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def delta(self) -> Decimal:
        return self.new - self.old

    @property
    def delta_pct(self) -> Decimal | None:
        return pct(self.delta, self.old)

    @property
    def zero_baseline(self) -> bool:
        return self.old == 0

    @property
    def outcome(self) -> Outcome:
        return "more" if self.delta > 0 else ("less" if self.delta < 0 else "same")

    @property
    def margin_before(self) -> Decimal | None:
        return margin(self.old, self.cost)

    @property
    def margin_after(self) -> Decimal | None:
        return margin(self.new, self.cost)

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "subscription": self.subscription_id,
            "currency": self.currency,
            "plan": self.plan,
            "version": self.version,
            "new_plan": self.new_plan,
            "old": self.old,
            "new": self.new,
            "delta": self.delta,
            "delta_pct": _ratio(self.delta_pct),
            "outcome": self.outcome,
            "zero_baseline": self.zero_baseline,
            "cost": self.cost,
            "margin_before": _ratio(self.margin_before),
            "margin_after": _ratio(self.margin_after),
            "invoices": self.invoices,
            "by_meter": {k: v.as_dict() for k, v in sorted(self.slices.items())},
            "notes": list(self.notes),
        }


def _ratio(v: Decimal | None) -> Decimal | None:
    return None if v is None else v.quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class Totals:
    """Sums over a set of customers (one currency)."""

    customers: int = 0
    old: Decimal = ZERO
    new: Decimal = ZERO
    cost: Decimal | None = ZERO
    pays_more: int = 0
    pays_less: int = 0
    unchanged: int = 0
    zero_baseline: int = 0

    @property
    def delta(self) -> Decimal:
        return self.new - self.old

    @property
    def delta_pct(self) -> Decimal | None:
        return pct(self.delta, self.old)

    @property
    def margin_before(self) -> Decimal | None:
        return margin(self.old, self.cost)

    @property
    def margin_after(self) -> Decimal | None:
        return margin(self.new, self.cost)

    def add(self, r: CustomerResult) -> Totals:
        cost = None if self.cost is None or r.cost is None else self.cost + r.cost
        return Totals(
            customers=self.customers + 1, old=self.old + r.old, new=self.new + r.new,
            cost=cost,
            pays_more=self.pays_more + (r.outcome == "more"),
            pays_less=self.pays_less + (r.outcome == "less"),
            unchanged=self.unchanged + (r.outcome == "same"),
            zero_baseline=self.zero_baseline + r.zero_baseline,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers, "old": self.old, "new": self.new,
            "delta": self.delta, "delta_pct": _ratio(self.delta_pct), "cost": self.cost,
            "margin_before": _ratio(self.margin_before),
            "margin_after": _ratio(self.margin_after),
            "pays_more": self.pays_more, "pays_less": self.pays_less,
            "unchanged": self.unchanged, "zero_baseline": self.zero_baseline,
        }


@dataclass(frozen=True)
class Bucket:
    label: str
    low: Decimal | None      # delta % bounds, as fractions; None: unbounded
    high: Decimal | None
    customers: int

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "low": self.low, "high": self.high,
                "customers": self.customers}


@dataclass(frozen=True)
class SubError:
    customer: str
    subscription_id: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"customer": self.customer, "subscription": self.subscription_id,
                "error": self.message}


@dataclass(frozen=True)
class CandidateReport:
    """Everything one candidate does to the customers over the window."""

    name: str
    window: Window
    results: tuple[CustomerResult, ...]       # every customer, largest increase first
    totals: Mapping[str, Totals]              # per currency
    by_plan: Mapping[tuple[str, str], Totals]  # (currency, "plan vN") -> totals
    by_meter: Mapping[tuple[str, str], Amounts]  # (currency, meter or slice) -> amounts
    cohorts: Mapping[tuple[str, str], Totals]  # (currency, more|less|same|zero) -> totals
    distribution: tuple[Bucket, ...]
    errors: tuple[SubError, ...]
    replaced: int                              # customers whose plan the candidate replaces
    assumption: str = ASSUMPTION

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.name,
            "from": iso(self.window.start),
            "to": iso(self.window.end),
            "assumption": self.assumption,
            "replaced": self.replaced,
            "totals": {c: t.as_dict() for c, t in self.totals.items()},
            "by_plan": [{"currency": c, "plan": p, **t.as_dict()}
                        for (c, p), t in self.by_plan.items()],
            "by_meter": [{"currency": c, "meter": m, **a.as_dict()}
                         for (c, m), a in self.by_meter.items()],
            "cohorts": [{"currency": c, "cohort": k, **t.as_dict()}
                        for (c, k), t in self.cohorts.items()],
            "distribution": [b.as_dict() for b in self.distribution],
            "zero_baseline": [r.customer for r in self.results if r.zero_baseline],
            "customers": [r.as_dict() for r in self.results],
            "errors": [e.as_dict() for e in self.errors],
        }


@dataclass(frozen=True)
class Backtest:
    window: Window
    candidates: tuple[CandidateReport, ...]
    customers: int
    assumption: str = ASSUMPTION
    notes: tuple[str, ...] = ()

    def comparison(self) -> list[dict[str, Any]]:
        """One row per candidate and currency: the table to compare candidates."""
        rows = []
        for rep in self.candidates:
            for cur, t in rep.totals.items():
                ups = [r for r in rep.results if r.currency == cur and r.delta_pct is not None]
                top = max(ups, key=lambda r: r.delta_pct or ZERO, default=None)
                low = min(ups, key=lambda r: r.delta_pct or ZERO, default=None)
                rows.append({
                    "candidate": rep.name, "currency": cur, **t.as_dict(),
                    "replaced": rep.replaced, "errors": len(rep.errors),
                    "largest_increase": _ratio(top.delta_pct) if top else None,
                    "largest_decrease": _ratio(low.delta_pct) if low else None,
                })
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": iso(self.window.start), "to": iso(self.window.end),
            "assumption": self.assumption, "customers": self.customers,
            "comparison": self.comparison(),
            "candidates": [c.as_dict() for c in self.candidates],
            "notes": list(self.notes),
        }
