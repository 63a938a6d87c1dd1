"""Migration planning and price response (pure): what to do with each customer.

**Migration paths.** The playbook's grandfathering rules: lock existing customers at
their current price until renewal, never force a move mid-contract, and at renewal
offer a choice: move to the new model, or stay on the old one with a 10-15% increase;
set a sunset date for the old pricing 12-18 months out. From a backtest, each customer
whose plan a candidate replaces gets a path:

- ``move at renewal``: the new price is at most ``cap`` (default 10%) above the old
  (or lower: a savings calculator sells it); also customers with no baseline;
- ``move with a cap``: the increase is above ``cap`` but within what staying would cost
  (``stay_high``, 15%): move at renewal with the first term's increase capped at
  ``cap`` (the excess is waived once);
- ``keep grandfathered``: the new model costs more than staying with a 15% increase:
  keep the current version, offer the old model +10-15% at renewal, and revisit before
  the sunset.

**The renewal choice**, per customer: the new price against the old one raised by 10%
and by 15%. A customer who pays less on the new model than with a 10% increase moves;
one who pays more than with 15% stays; in between the two options are close.

**Price response** (an assumption, always labelled): ``churn_per_pct`` is the chance a
customer leaves per 1% of increase (0.005: 0.5% per 1%); a customer whose bill falls
does not leave. Expected revenue = Σ new revenue × (1 - churn chance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ratecard.billing import rules as billing
from ratecard.billing.model import Subscription
from ratecard.clock import iso
from ratecard.errors import InvalidInput
from ratecard.money import ONE, ZERO
from ratecard.simulate.model import CandidateReport, CustomerResult

Path = Literal["move at renewal", "move with a cap", "keep grandfathered"]
PATHS: tuple[Path, ...] = ("move at renewal", "move with a cap", "keep grandfathered")
DEFAULT_CAP = Decimal("0.10")
STAY_LOW = Decimal("0.10")
STAY_HIGH = Decimal("0.15")
SUNSET_MONTHS = (12, 18)


@dataclass(frozen=True)
class MigrationStep:
    customer: str
    subscription_id: int
    plan: str
    version: int
    new_plan: str
    old: Decimal
    new: Decimal
    path: Path
    renewal_at: datetime | None
    first_term: Decimal          # what the first term on the new model costs (capped)
    stay_low: Decimal            # the old price +10%
    stay_high: Decimal           # the old price +15%
    choice: Literal["move", "stay", "either"]
    command: str | None

    @property
    def delta_pct(self) -> Decimal | None:
        return None if self.old == 0 else (self.new - self.old) / self.old

    @property
    def waived(self) -> Decimal:
        """What the cap waives in the first term."""
        return self.new - self.first_term

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer, "subscription": self.subscription_id,
            "plan": self.plan, "version": self.version, "new_plan": self.new_plan,
            "old": self.old, "new": self.new,
            "delta_pct": None if self.delta_pct is None else
            self.delta_pct.quantize(Decimal("0.0001")),
            "path": self.path,
            "renewal_at": iso(self.renewal_at) if self.renewal_at else None,
            "first_term": self.first_term, "waived": self.waived,
            "renewal_choice": {"move": self.new, "stay_plus_10": self.stay_low,
                               "stay_plus_15": self.stay_high, "likely": self.choice},
            "command": self.command,
        }


@dataclass(frozen=True)
class MigrationPlan:
    candidate: str
    cap: Decimal
    steps: tuple[MigrationStep, ...]

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for path in PATHS:
            chosen = [s for s in self.steps if s.path == path]
            out[path] = {"customers": len(chosen),
                         "old": sum((s.old for s in chosen), ZERO),
                         "new": sum((s.new for s in chosen), ZERO),
                         "first_term": sum((s.first_term for s in chosen), ZERO)}
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate, "cap": self.cap,
            "rules": "never move mid-contract; at renewal, move or stay with +10-15%; "
                     f"sunset the old pricing {SUNSET_MONTHS[0]}-{SUNSET_MONTHS[1]} months out",
            "summary": self.summary(),
            "schedule": [s.as_dict() for s in self.steps],
        }


def path_for(r: CustomerResult, cap: Decimal = DEFAULT_CAP,
             stay_high: Decimal = STAY_HIGH) -> Path:
    """The migration path of one customer (see the module docstring)."""
    if r.old == 0 or r.new <= r.old * (ONE + cap):
        return "move at renewal"
    if r.new <= r.old * (ONE + stay_high):
        return "move with a cap"
    return "keep grandfathered"


def renewal_choice(old: Decimal, new: Decimal, low: Decimal = STAY_LOW,
                   high: Decimal = STAY_HIGH) -> Literal["move", "stay", "either"]:
    """Which option a customer is likely to pick at renewal: the new model, or the old
    one with a 10-15% increase."""
    if old == 0 or new <= old * (ONE + low):
        return "move"
    if new > old * (ONE + high):
        return "stay"
    return "either"


def renewal_at(sub: Subscription, at: datetime) -> datetime | None:
    """When the subscription's current fee period ends after ``at`` (its renewal)."""
    phase = sub.phase_at(at)
    if phase is None:
        return None
    end = billing.fee_period(phase, at, sub.timezone).end
    if sub.ends_at is not None and end >= sub.ends_at:
        return None
    return end


def plan_migration(
    report: CandidateReport,
    renewals: Mapping[int, datetime | None],
    *,
    cap: Decimal = DEFAULT_CAP,
) -> MigrationPlan:
    """A path, a renewal date and a command for every customer the candidate moves."""
    if not (ZERO <= cap <= STAY_HIGH):
        raise InvalidInput(f"--cap {cap} must be between 0 and {STAY_HIGH} (a fraction: "
                           "0.10 caps the first term's increase at 10%)")
    steps = []
    for r in report.results:
        if r.new_plan is None:
            continue
        path = path_for(r, cap)
        first = min(r.new, r.old * (ONE + cap)) if path == "move with a cap" else r.new
        command = None
        if path != "keep grandfathered":
            command = f"ratecard subscriptions change {r.subscription_id} --plan {r.new_plan} " \
                      "--at-renewal"
        steps.append(MigrationStep(
            customer=r.customer, subscription_id=r.subscription_id, plan=r.plan,
            version=r.version, new_plan=r.new_plan, old=r.old, new=r.new, path=path,
            renewal_at=renewals.get(r.subscription_id), first_term=first,
            stay_low=r.old * (ONE + STAY_LOW), stay_high=r.old * (ONE + STAY_HIGH),
            choice=renewal_choice(r.old, r.new), command=command,
        ))
    order = {p: i for i, p in enumerate(PATHS)}
    steps.sort(key=lambda s: (order[s.path], s.renewal_at is None,
                              s.renewal_at or datetime.min, s.customer))
    return MigrationPlan(report.name, cap, tuple(steps))


@dataclass(frozen=True)
class PriceResponse:
    """Expected revenue when customers respond to increases (an assumption)."""

    candidate: str
    churn_per_pct: Decimal
    currency: str
    new: Decimal
    expected: Decimal
    expected_churn: Decimal       # expected number of customers lost

    @property
    def assumption(self) -> str:
        return (f"assumption: each 1% of increase makes a customer leave with probability "
                f"{self.churn_per_pct * 100}%; decreases keep everyone")

    def as_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "currency": self.currency,
                "churn_per_pct": self.churn_per_pct, "assumption": self.assumption,
                "new": self.new, "expected": self.expected.quantize(Decimal("0.01")),
                "expected_churn": self.expected_churn.quantize(Decimal("0.01"))}


def churn_chance(r: CustomerResult, churn_per_pct: Decimal) -> Decimal:
    p = r.delta_pct
    if p is None or p <= 0:
        return ZERO
    return min(ONE, churn_per_pct * p * 100)


def price_response(report: CandidateReport, churn_per_pct: Decimal) -> list[PriceResponse]:
    """Expected revenue per currency under the price-response assumption."""
    if not (ZERO <= churn_per_pct <= ONE):
        raise InvalidInput("--churn-per-pct is a probability per 1% of increase, between 0 "
                           "and 1 (0.005 for 0.5% per 1%)")
    out = []
    for cur in report.totals:
        rs = [r for r in report.results if r.currency == cur]
        chances = [churn_chance(r, churn_per_pct) for r in rs]
        out.append(PriceResponse(
            candidate=report.name, churn_per_pct=churn_per_pct, currency=cur,
            new=sum((r.new for r in rs), ZERO),
            expected=sum((r.new * (ONE - c) for r, c in zip(rs, chances, strict=True)), ZERO),
            expected_churn=sum(chances, ZERO),
        ))
    return out
