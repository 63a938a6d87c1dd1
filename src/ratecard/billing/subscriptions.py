"""Subscriptions (service): create, change, cancel, migrate between plan versions.

A subscription is a list of phases: each phase is one plan version with a seat
count and a term, from its start until the next phase (or the end). Changes add
phases; nothing already invoiced and finalized is rewritten:

* **change now**: a phase from now; the in-advance fees are prorated by day (credit
  for the unused days of the old plan, charge for the rest on the new one). A change
  to another interval or term restarts the billing anchor at the change.
* **change at renewal**: a phase from the end of the current fee period.
* Without ``when``, an upgrade (higher in-advance fees per month) happens now and a
  downgrade at renewal.
* A new change replaces the changes scheduled after it.
* **cancel now**: the subscription ends now (the unused days are credited);
  **cancel at period end**: it ends when the current fee period ends.
* **migrate**: every subscription on a plan moves to another version of it, now, on
  a date, or each at its own renewal; the others stay grandfathered.

Every function takes a session and never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ratecard.billing import repository as repo
from ratecard.billing import rules
from ratecard.billing.catalogs import PlanVersion, plan_version
from ratecard.billing.model import Phase, Subscription
from ratecard.catalog.schema import Plan
from ratecard.clock import iso, period_start, utc_now
from ratecard.errors import Conflict, InvalidInput
from ratecard.money import to_str
from ratecard.store.models import PhaseRow, SubscriptionRow

When = Literal["now", "renewal"]
CENT = Decimal("0.01")  # display precision of the monthly fees a migration compares


class PlanCache:
    """Plan versions read once per session (they never change once stored)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._versions: dict[tuple[str, int], PlanVersion] = {}

    def version(self, code: str, version: int | None = None) -> PlanVersion:
        if version is not None and (code, version) in self._versions:
            return self._versions[(code, version)]
        pv = plan_version(self.session, code, version)
        self._versions[(pv.code, pv.version)] = pv
        return pv

    def plans_for(self, sub: Subscription) -> dict[tuple[str, int], Plan]:
        return {(p.plan_code, p.plan_version): self.version(p.plan_code, p.plan_version).plan
                for p in sub.phases}


def _check_currency(customer: str, customer_currency: str, pv: PlanVersion) -> None:
    if pv.currency != customer_currency:
        raise InvalidInput(
            f"customer {customer!r} pays in {customer_currency} but plan {pv.code!r} "
            f"v{pv.version} is priced in {pv.currency}; use a plan in {customer_currency} "
            f"or a customer created with --currency {pv.currency}"
        )


def _default_seats(plan: Plan) -> int:
    if plan.seats is not None and plan.seats.minimum > 0:
        return plan.seats.minimum
    return 1


def _guard_invoiced(session: Session, sub_id: int, at: datetime, what: str) -> None:
    closed = repo.last_closed_boundary(session, sub_id)
    if closed is not None and at < closed:
        raise Conflict(
            f"subscription {sub_id} is invoiced and finalized through {iso(closed)}; "
            f"{what} can take effect from then on, or correct a finalized invoice with a "
            "credit note (`ratecard invoices credit`)"
        )


def create_subscription(
    session: Session,
    customer: str,
    plan: str,
    *,
    version: int | None = None,
    start: datetime | None = None,
    anchor: datetime | None = None,
    trial_days: int | None = None,
    seats: int | None = None,
    term: str | None = None,
) -> Subscription:
    """Subscribe ``customer`` to ``plan`` (its newest version unless ``version``)."""
    cust = repo.customer_row(session, customer)
    pv = plan_version(session, plan, version)
    if pv.retired and version is None:
        raise Conflict(f"plan {plan!r} is retired (not in the current catalog); new "
                       "subscriptions need a plan of the current catalog")
    _check_currency(customer, cust.currency, pv)
    start = start or utc_now()
    term = term or pv.plan.interval
    rules.check_term(pv.plan, term, plan)
    if seats is None:
        seats = _default_seats(pv.plan)
    if seats < 0:
        raise InvalidInput("seats must not be negative")
    if pv.plan.seats is not None and seats < pv.plan.seats.minimum:
        raise InvalidInput(f"plan {plan!r} needs at least {pv.plan.seats.minimum} seats")
    days = pv.plan.trial_days if trial_days is None else trial_days
    if days < 0:
        raise InvalidInput("trial days must not be negative")
    trial_end = period_start(start, "day", days, cust.timezone) if days else None
    paid = trial_end or start
    for other in repo.subscriptions_of(session, cust.id):
        if other.ends_at is None or other.ends_at > start:
            raise Conflict(
                f"customer {customer!r} already has subscription {other.id} "
                f"({other.current_phase(start).plan_code}); change it with `ratecard "
                f"subscriptions change {other.id}` or cancel it first"
            )
    now = utc_now()
    row = SubscriptionRow(customer_id=cust.id, started_at=start, trial_end=trial_end,
                          ends_at=None, canceled_at=None, created_at=now)
    row.phases = [PhaseRow(starts_at=start, plan_code=pv.code, plan_version=pv.version,
                           seats=seats, term=term, anchor=anchor or paid, reason="start")]
    session.add(row)
    session.flush()
    return repo.to_subscription(row, cust)


def get_subscription(session: Session, sub_id: int) -> Subscription:
    return repo.load_subscription(session, sub_id)


def list_subscriptions(session: Session, customer: str | None = None) -> list[Subscription]:
    cid = repo.customer_row(session, customer).id if customer is not None else None
    return repo.subscriptions_of(session, cid)


@dataclass(frozen=True)
class ChangeResult:
    subscription: Subscription
    effective_at: datetime
    from_phase: Phase
    to_phase: Phase
    direction: str  # upgrade | downgrade | change

    def as_dict(self, at: datetime) -> dict[str, Any]:
        return {
            "subscription": self.subscription.id,
            "effective_at": iso(self.effective_at),
            "direction": self.direction,
            "from": self.from_phase.as_dict(),
            "to": self.to_phase.as_dict(),
            "status": self.subscription.status(at),
        }


def _apply_phase(
    session: Session,
    sub: Subscription,
    new: Phase,
    at: datetime,
) -> Subscription:
    row = repo.subscription_row(session, sub.id)
    kept = [p for p in sub.phases if p.starts_at < new.starts_at]
    if not kept:  # a change before paid service replaces the first phase
        new = replace(new, starts_at=sub.started_at)
    repo.replace_phases(row, [*kept, new])
    session.flush()
    session.refresh(row)
    return repo.load_subscription(session, sub.id)


def plan_change(
    sub: Subscription,
    current: Phase,
    current_plan: Plan,
    target: PlanVersion,
    *,
    seats: int,
    term: str,
    when: When | None,
    at: datetime,
) -> tuple[Phase, datetime, str]:
    """The phase a change creates, when it starts, and whether it is an up- or downgrade."""
    old_fee = rules.daily_fee(current_plan, current.seats)
    new_fee = rules.daily_fee(target.plan, seats)
    direction = "upgrade" if new_fee > old_fee else "downgrade" if new_fee < old_fee \
        else "change"
    if when is None:
        when = "renewal" if direction == "downgrade" else "now"
    tz = sub.timezone
    paid = sub.paid_start
    if when == "now":
        effective = at
    else:
        effective = rules.fee_period(current, at, tz).end if at >= paid else paid
    same_rhythm = (term == current.term and rules.usage_interval(target.plan)
                   == rules.usage_interval(current_plan))
    anchor = current.anchor if effective <= paid or same_rhythm else effective
    phase = Phase(starts_at=effective, plan_code=target.code, plan_version=target.version,
                  seats=seats, term=term, anchor=anchor, reason=direction)
    return phase, effective, direction


def _open(sub: Subscription, at: datetime) -> None:
    if sub.canceled_at is not None or (sub.ends_at is not None and sub.ends_at <= at):
        end = f" (ends {iso(sub.ends_at)})" if sub.ends_at else ""
        raise Conflict(
            f"subscription {sub.id} is cancelled{end}; it cannot change: create a new "
            f"subscription with `ratecard subscriptions create --customer {sub.customer} "
            "--plan PLAN`"
        )


def change_subscription(
    session: Session,
    sub_id: int,
    *,
    plan: str | None = None,
    version: int | None = None,
    seats: int | None = None,
    term: str | None = None,
    when: When | None = None,
    at: datetime | None = None,
) -> ChangeResult:
    """Change plan, version, seats or term, now or at renewal (see the module docstring)."""
    at = at or utc_now()
    sub = repo.load_subscription(session, sub_id, lock=True)
    _open(sub, at)
    cache = PlanCache(session)
    current = sub.current_phase(at)
    current_pv = cache.version(current.plan_code, current.plan_version)
    code = plan or current.plan_code
    if code == current.plan_code and version is None:
        target = current_pv
    else:
        target = cache.version(code, version)
        if target.retired and version is None:
            raise Conflict(f"plan {code!r} is retired; choose a plan of the current catalog")
    _check_currency(sub.customer, sub.currency, target)
    new_seats = seats if seats is not None else (
        current.seats if target.code == current.plan_code else _default_seats(target.plan))
    if new_seats < 0:
        raise InvalidInput("seats must not be negative")
    if target.plan.seats is not None and new_seats < target.plan.seats.minimum:
        raise InvalidInput(f"plan {code!r} needs at least {target.plan.seats.minimum} seats")
    if term is None:
        term = current.term if current.term in rules.allowed_terms(target.plan) \
            else target.plan.interval
    rules.check_term(target.plan, term, code)
    if (target.code, target.version, new_seats, term) == (
            current.plan_code, current.plan_version, current.seats, current.term):
        raise InvalidInput(
            f"subscription {sub_id} is already on {code} v{target.version} with {new_seats} "
            f"seats billed per {term}; nothing to change"
        )
    phase, effective, direction = plan_change(
        sub, current, current_pv.plan, target, seats=new_seats, term=term, when=when, at=at)
    if effective < sub.started_at:
        raise InvalidInput(f"the change ({iso(effective)}) is before the subscription starts "
                           f"({iso(sub.started_at)})")
    _guard_invoiced(session, sub_id, effective, "a change")
    updated = _apply_phase(session, sub, phase, at)
    return ChangeResult(updated, effective, current, phase, direction)


def cancel_subscription(
    session: Session,
    sub_id: int,
    *,
    when: Literal["now", "period_end"] = "period_end",
    at: datetime | None = None,
) -> Subscription:
    """End a subscription now or when its current fee period ends."""
    at = at or utc_now()
    sub = repo.load_subscription(session, sub_id, lock=True)
    _open(sub, at)
    if when == "now" or at < sub.paid_start:
        ends = max(at, sub.started_at)
    else:
        ends = rules.fee_period(sub.current_phase(at), at, sub.timezone).end
    _guard_invoiced(session, sub_id, ends, "a cancellation")
    row = repo.subscription_row(session, sub_id)
    row.ends_at = ends
    row.canceled_at = at
    kept = [p for p in sub.phases if p.starts_at < ends] or [sub.phases[0]]
    repo.replace_phases(row, kept)
    session.flush()
    session.refresh(row)
    return repo.load_subscription(session, sub_id)


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class MigrationItem:
    subscription: int
    customer: str
    from_version: int
    to_version: int
    effective_at: datetime | None
    old_fee: Decimal
    new_fee: Decimal
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "customer": self.customer,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "effective_at": iso(self.effective_at) if self.effective_at else None,
            "old_fee_per_month": to_str(self.old_fee.quantize(CENT)),
            "new_fee_per_month": to_str(self.new_fee.quantize(CENT)),
            "error": self.error,
        }


def migrate_plan(
    session: Session,
    plan: str,
    to_version: int,
    *,
    when: When | datetime = "renewal",
    at: datetime | None = None,
    preview: bool = False,
) -> list[MigrationItem]:
    """Move every subscription on ``plan`` (another version) to ``to_version``.

    ``when`` is ``"now"``, ``"renewal"`` (each subscription at the end of its current
    fee period) or a date. Seats and term are kept. With ``preview`` nothing changes.
    A subscription that cannot move (a currency change, an invoiced period) is
    reported with its error and the others go on.
    """
    at = at or utc_now()
    cache = PlanCache(session)
    target = cache.version(plan, to_version)
    items: list[MigrationItem] = []
    ids = list(session.scalars(
        select(SubscriptionRow.id).join(PhaseRow, PhaseRow.subscription_id == SubscriptionRow.id)
        .where(PhaseRow.plan_code == plan).distinct().order_by(SubscriptionRow.id)
    ))
    for sid in ids:
        sub = repo.load_subscription(session, sid, lock=not preview)
        if sub.canceled_at is not None or (sub.ends_at is not None and sub.ends_at <= at):
            continue
        ref = at if not isinstance(when, datetime) else max(when, at)
        current = sub.current_phase(ref)
        if current.plan_code != plan or current.plan_version == to_version:
            continue
        cur_pv = cache.version(current.plan_code, current.plan_version)
        old_fee = rules.daily_fee(cur_pv.plan, current.seats)
        new_fee = rules.daily_fee(target.plan, current.seats)
        try:
            _check_currency(sub.customer, sub.currency, target)
            term = current.term if current.term in rules.allowed_terms(target.plan) \
                else target.plan.interval
            rules.check_term(target.plan, term, plan)
            if isinstance(when, datetime):
                phase, effective, _ = plan_change(
                    sub, current, cur_pv.plan, target, seats=current.seats, term=term,
                    when="now", at=max(when, sub.started_at))
            else:
                phase, effective, _ = plan_change(
                    sub, current, cur_pv.plan, target, seats=current.seats, term=term,
                    when=when, at=at)
            phase = replace(phase, reason="migration")
            _guard_invoiced(session, sid, effective, "a migration")
            if not preview:
                with session.begin_nested():
                    _apply_phase(session, sub, phase, at)
            items.append(MigrationItem(sid, sub.customer, current.plan_version, to_version,
                                       effective, old_fee, new_fee))
        except (InvalidInput, Conflict) as e:
            items.append(MigrationItem(sid, sub.customer, current.plan_version, to_version,
                                       None, old_fee, new_fee, error=str(e)))
    return items


def plans_of(cache: PlanCache, sub: Subscription) -> Mapping[tuple[str, int], Plan]:
    return cache.plans_for(sub)
