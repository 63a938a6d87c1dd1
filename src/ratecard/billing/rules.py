"""Billing rules (pure): terms, billing boundaries, proration, invoice assembly.

The timeline of a subscription
------------------------------
Paid service starts at ``paid_start`` (the trial's end, else the start). From then
on, an invoice is issued at each **billing boundary** ``b``:

* the first boundary is ``paid_start``;
* every start of a usage period of the phase in force (periods anchored on the
  phase's ``anchor`` in the customer's timezone; the usage interval is the plan's
  ``usage_interval``, else its ``interval``, except that a yearly plan bills usage
  monthly);
* the start of a phase whose billing restarts there (a change to another
  interval restarts the anchor);
* the subscription's end, when it has one (the closing invoice).

The invoice at ``b`` bills, in **arrears**, the usage of ``[previous boundary, b)``
(its ``period``; the first invoice has the empty period ``[b, b)``) and, in
**advance**, the fees of the fee period (the phase's term) that starts at ``b``.

Proration (day-based, in the customer's calendar days)
------------------------------------------------------
A fee period is charged in full when it starts. When a phase ends inside a fee
period (a change now, a cancellation now), the unused days ``[end, period end)``
are credited; when a phase starts inside a fee period without restarting the
anchor, its remaining days ``[start, period end)`` are charged. Both land on the
invoice of the first boundary at or after the change. ``fraction = days / days of
the fee period``; each prorated line is rounded once.

Terms and prepay discounts
--------------------------
A plan's fees are per ``plan.interval``. A subscription may prepay a longer term
(a monthly plan billed quarterly or yearly): the fees are multiplied by the number
of plan intervals in the term, and the plan's ``quarterly_discount`` or
``annual_discount`` is a negative line.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ratecard.billing.model import DraftLine, Phase, Subscription
from ratecard.catalog.schema import Catalog, Plan
from ratecard.clock import INTERVAL_MONTHS, Window, zone
from ratecard.clock import period_containing as _period_containing
from ratecard.errors import InvalidInput
from ratecard.metering.model import UsageSnapshot
from ratecard.money import ONE, ZERO, quantize, to_str
from ratecard.pricing import ADVANCE, ARREARS, rate_plan

TERMS = ("month", "quarter", "year")
_TICK = timedelta(microseconds=1)
FRACTION = Decimal("0.000001")  # the displayed quantity of a prorated line
PlanKey = tuple[str, int]


# --------------------------------------------------------------------------- terms


def usage_interval(plan: Plan) -> str:
    """How often usage is billed in arrears (a yearly plan: monthly, unless it says)."""
    if plan.usage_interval:
        return plan.usage_interval
    return "month" if plan.interval == "year" else plan.interval


def allowed_terms(plan: Plan) -> list[str]:
    """Terms a subscription may prepay: the plan's interval and whole multiples of it."""
    base = INTERVAL_MONTHS[plan.interval]
    return [t for t in TERMS if INTERVAL_MONTHS[t] >= base and INTERVAL_MONTHS[t] % base == 0]


def check_term(plan: Plan, term: str, plan_code: str) -> None:
    if term not in allowed_terms(plan):
        raise InvalidInput(
            f"plan {plan_code!r} is billed per {plan.interval}; the term {term!r} is not a whole "
            f"number of {plan.interval}s: use {', '.join(allowed_terms(plan))}"
        )
    ui = usage_interval(plan)
    if INTERVAL_MONTHS[ui] > INTERVAL_MONTHS[term]:
        raise InvalidInput(
            f"plan {plan_code!r} bills usage per {ui}, longer than the term {term!r}; choose a "
            f"term of at least one {ui}"
        )


def term_multiple(plan: Plan, term: str) -> int:
    return INTERVAL_MONTHS[term] // INTERVAL_MONTHS[plan.interval]


def term_discount(plan: Plan, term: str) -> Decimal:
    if term == plan.interval:
        return ZERO
    if term == "year":
        return plan.annual_discount or ZERO
    if term == "quarter":
        return plan.quarterly_discount or ZERO
    return ZERO


def daily_fee(plan: Plan, seats: int) -> Decimal:
    """A rough per-month price of a plan's in-advance fees, to tell upgrades from downgrades."""
    fee = plan.base_fee
    if plan.seats is not None:
        fee += max(seats - plan.seats.included, plan.seats.minimum - plan.seats.included, 0) \
            * plan.seats.unit_price
    for c in plan.charges:
        if c.model == "flat" and c.in_advance and not c.once and c.price is not None:
            fee += c.price
    return fee / INTERVAL_MONTHS[plan.interval]


# --------------------------------------------------------------------------- calendar


@functools.lru_cache(maxsize=1 << 16)
def period_containing(anchor: datetime, interval: str, at: datetime, tz: str) -> Window:
    """:func:`ratecard.clock.period_containing`, memoised (subscriptions share anchors)."""
    return _period_containing(anchor, interval, at, tz)


@functools.lru_cache(maxsize=1 << 12)
def _zone_dates(at: datetime, tz: str) -> date:
    return at.astimezone(zone(tz)).date()


def local_days(window: Window, tz: str) -> int:
    """Calendar days from the local date of ``window.start`` to that of ``window.end``."""
    return (_zone_dates(window.end, tz) - _zone_dates(window.start, tz)).days


def day_fraction(part: Window, whole: Window, tz: str) -> Decimal:
    total = local_days(whole, tz)
    if total <= 0:
        return ONE
    return Decimal(local_days(part, tz)) / Decimal(total)


def fee_period(phase: Phase, at: datetime, tz: str) -> Window:
    return period_containing(phase.anchor, phase.term, at, tz)


def usage_period(phase: Phase, plan: Plan, at: datetime, tz: str) -> Window:
    return period_containing(phase.anchor, usage_interval(plan), at, tz)


# --------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class PhaseSpan:
    phase: Phase
    index: int
    start: datetime
    end: datetime | None

    @property
    def restarts(self) -> bool:
        """Billing restarts at this phase (the first phase, or a new anchor)."""
        return self.index == 0 or self.phase.anchor == self.phase.starts_at


def spans(sub: Subscription) -> list[PhaseSpan]:
    """Each phase with the stretch ``[start, end)`` it is in force."""
    out: list[PhaseSpan] = []
    phases = [p for p in sub.phases if sub.ends_at is None or p.starts_at < sub.ends_at
              or p is sub.phases[0]]
    for i, p in enumerate(phases):
        end = phases[i + 1].starts_at if i + 1 < len(phases) else sub.ends_at
        if sub.ends_at is not None and end is not None:
            end = min(end, sub.ends_at)
        out.append(PhaseSpan(p, i, p.starts_at, end))
    return out


def boundaries(
    sub: Subscription,
    plans: Mapping[PlanKey, Plan],
    until: datetime,
    after: datetime | None = None,
) -> list[datetime]:
    """Billing boundaries ``b`` with ``after < b <= until`` (all from the first when None)."""
    tz = sub.timezone
    paid = sub.paid_start
    if sub.ends_at is not None and sub.ends_at <= paid:
        return []
    found: set[datetime] = set()

    def keep(b: datetime) -> None:
        if b <= until and (after is None or b > after) and b >= paid:
            found.add(b)

    keep(paid)
    for sp in spans(sub):
        end = sp.end
        lo = max(sp.start, paid)
        if end is not None and end <= lo:
            continue
        if sp.restarts and sp.start >= paid:
            keep(sp.start)
        plan = plans[(sp.phase.plan_code, sp.phase.plan_version)]
        ui = usage_interval(plan)
        start_from = max(lo, after) if after is not None else lo
        if start_from > until:
            continue
        p = period_containing(sp.phase.anchor, ui, start_from, tz)
        if p.start == start_from:  # a phase that starts on a period start (at renewal)
            keep(p.start)
        b = p.end
        k = 0
        while b <= until and (end is None or b < end):
            keep(b)
            k += 1
            b = period_containing(sp.phase.anchor, ui, b, tz).end
            if k > 100_000:  # pragma: no cover - a guard, periods always advance
                break
    if sub.ends_at is not None:
        keep(sub.ends_at)
    return sorted(found)


def previous_boundary(
    sub: Subscription, plans: Mapping[PlanKey, Plan], b: datetime
) -> datetime | None:
    """The boundary before ``b`` (``None`` for the first).

    Usage periods are at most a year long, so it lies within ~13 months before ``b``.
    """
    if b <= sub.paid_start:
        return None
    near = b - timedelta(days=400)
    earlier = [x for x in boundaries(sub, plans, b, after=near if near > sub.paid_start
                                     else None) if x < b]
    return earlier[-1] if earlier else None


# --------------------------------------------------------------------------- invoice plan


@dataclass(frozen=True)
class UsageSegment:
    """Usage of ``window`` billed in arrears with ``phase``'s plan."""

    phase: Phase
    window: Window
    period: Window
    fraction: Decimal


@dataclass(frozen=True)
class AdvanceItem:
    """In-advance fees of ``phase`` for ``covered``, a part of the fee period ``period``."""

    phase: Phase
    kind: str  # "period" | "charge" (prorated start) | "credit" (unused days)
    period: Window
    covered: Window
    fraction: Decimal
    first: bool


@dataclass(frozen=True)
class InvoicePlan:
    subscription_id: int
    boundary: datetime
    period: Window
    segments: tuple[UsageSegment, ...]
    advance: tuple[AdvanceItem, ...]
    closing: bool


def plan_invoice(
    sub: Subscription,
    plans: Mapping[PlanKey, Plan],
    b: datetime,
    prev: datetime | None,
) -> InvoicePlan:
    """What the invoice at boundary ``b`` bills (``prev`` is the boundary before)."""
    tz = sub.timezone
    paid = sub.paid_start
    period = Window(prev if prev is not None else b, b)
    all_spans = spans(sub)
    segments: list[UsageSegment] = []
    if prev is not None:
        for sp in all_spans:
            lo = max(sp.start, prev, paid)
            hi = b if sp.end is None else min(sp.end, b)
            if lo >= hi:
                continue
            plan = plans[(sp.phase.plan_code, sp.phase.plan_version)]
            up = usage_period(sp.phase, plan, lo, tz)
            w = Window(lo, hi)
            segments.append(UsageSegment(sp.phase, w, up, day_fraction(w, up, tz)))

    advance: list[AdvanceItem] = []
    closing = sub.ends_at is not None and b >= sub.ends_at
    active = None if closing else next(
        (sp for sp in all_spans if sp.start <= b and (sp.end is None or b < sp.end)), None
    )
    if active is not None and b >= paid:
        fp = fee_period(active.phase, b, tz)
        regular = b == fp.start or b == paid or (active.restarts and active.start == b)
        if regular:
            covered = Window(b, fp.end)
            advance.append(AdvanceItem(active.phase, "period", fp, covered,
                                       day_fraction(covered, fp, tz), first=b == paid))
    # prorations for phase changes in (prev, b]; the first invoice has none
    for i, sp in enumerate(all_spans if prev is not None else []):
        assert prev is not None
        # a phase that ends inside a fee period it was charged for: credit the unused days
        end = sp.end
        if end is not None and prev < end <= b and end > paid:
            fp = fee_period(sp.phase, end - _TICK, tz)
            if fp.start < end < fp.end and max(fp.start, paid, sp.start) < end:
                covered = Window(end, fp.end)
                advance.append(AdvanceItem(sp.phase, "credit", fp, covered,
                                           day_fraction(covered, fp, tz), first=False))
        # a phase that starts inside a fee period without restarting: charge the rest
        if (i > 0 and not sp.restarts and prev < sp.start <= b and sp.start > paid
                and (sp.end is None or sp.end > sp.start)):
            fp = fee_period(sp.phase, sp.start, tz)
            if fp.start < sp.start:
                covered = Window(sp.start, fp.end)
                advance.append(AdvanceItem(sp.phase, "charge", fp, covered,
                                           day_fraction(covered, fp, tz), first=False))
    return InvoicePlan(sub.id, b, period, tuple(segments), tuple(advance), closing)


# --------------------------------------------------------------------------- assembly


@functools.lru_cache(maxsize=1 << 14)
def _fmt_day(dt: datetime, tz: str) -> str:
    return dt.astimezone(zone(tz)).strftime("%Y-%m-%d")


def _span(w: Window, tz: str) -> str:
    return f"{_fmt_day(w.start, tz)} – {_fmt_day(w.end, tz)}"


def _plan_name(plan: Plan, code: str, version: int) -> str:
    return f"{plan.name or code} (v{version})"


def advance_lines(
    plan: Plan, catalog: Catalog, phase: Phase, currency: str, *, first: bool
) -> list[tuple[str, str, Decimal, Decimal | None, Decimal, str, dict[str, object]]]:
    """The in-advance fees of one full term: (kind, label, qty, unit, precise, stream, details)."""
    quote = rate_plan(catalog, phase.plan_code, {}, plan=plan, seats=phase.seats,
                      first_period=first, include=(ADVANCE,), minimum=False)
    m = term_multiple(plan, phase.term)
    out: list[tuple[str, str, Decimal, Decimal | None, Decimal, str, dict[str, object]]] = []
    recurring = ZERO
    for ln in quote.lines:
        once = bool(ln.details.get("once"))
        mult = 1 if once else m
        qty = (ln.quantity if ln.quantity is not None else ONE) * mult
        label = ln.label + (f" × {m} {plan.interval}s" if mult > 1 else "")
        precise = ln.amount * mult
        if not once:
            recurring += precise
        details = {k: v for k, v in ln.details.items() if k != "breakdown"}
        unit = ln.unit_price if ln.unit_price is not None else ln.amount
        if ln.kind == "seats" and ln.quantity is not None:
            billable = ln.details.get("billable")
            if billable is not None:
                qty = Decimal(str(billable)) * mult
        out.append((ln.kind, label, qty, unit, precise, ln.stream, details))
    disc = term_discount(plan, phase.term)
    if disc and recurring:
        pct = to_str(disc * 100)
        kind_word = "annual" if phase.term == "year" else "quarterly"
        out.append(("discount", f"{kind_word.capitalize()} prepay discount {pct}%", ONE,
                    -(recurring * disc), -(recurring * disc), "subscription",
                    {"discount": disc, "term": phase.term}))
    return out


def assemble(
    iplan: InvoicePlan,
    plans: Mapping[PlanKey, Plan],
    catalogs: Mapping[PlanKey, Catalog],
    usage: Mapping[tuple[PlanKey, Window], UsageSnapshot],
    currency: str,
    tz: str,
    credits: Mapping[tuple[PlanKey, Window], Sequence[Any]] | None = None,
) -> list[DraftLine]:
    """Every line of the invoice at ``iplan.boundary``, each rounded once.

    ``usage`` gives the usage snapshot of each arrears segment (keyed by the plan
    and the segment window). ``credits`` gives, for segments of customers with a
    credit wallet, the wallet's lines for the period (credits applied, credit
    overage: :func:`ratecard.credits.service.period_lines`); they replace the
    pricing engine's estimate, which assumes the period's grant is the balance.
    Order: in-advance fees, prorations, usage by segment, minimum true-ups.
    """
    lines: list[DraftLine] = []
    for item in iplan.advance:
        ph = item.phase
        key = (ph.plan_code, ph.plan_version)
        plan = plans[key]
        name = _plan_name(plan, ph.plan_code, ph.plan_version)
        full = item.fraction == ONE
        for kind, label, qty, unit, precise, stream, details in advance_lines(
            plan, catalogs[key], ph, currency, first=item.first
        ):
            days = local_days(item.covered, tz)
            of_days = local_days(item.period, tz)
            if item.kind == "period" and full:
                lines.append(DraftLine(
                    kind=kind, description=f"{label} ({_span(item.covered, tz)})",
                    quantity=qty, unit_price=unit if qty == ONE else
                    (precise / qty if qty else unit), precise=precise,
                    amount=quantize(precise, currency), period=item.covered,
                    plan_code=ph.plan_code, plan_version=ph.plan_version, stream=stream,
                    details={**details, "timing": "advance"},
                ))
                continue
            sign = -1 if item.kind == "credit" else 1
            amount = precise * item.fraction * sign
            what = {"period": "Partial period of", "charge": "Remaining time on",
                    "credit": "Unused time on"}[item.kind]
            lines.append(DraftLine(
                kind="proration" if item.kind != "period" else kind,
                description=(f"{what} {label} ({_span(item.covered, tz)}: {days} of "
                             f"{of_days} days of {to_str(quantize(precise, currency))})"),
                quantity=item.fraction.quantize(FRACTION), unit_price=precise * sign,
                precise=amount, amount=quantize(amount, currency), period=item.covered,
                plan_code=ph.plan_code, plan_version=ph.plan_version, stream=stream,
                details={**details, "timing": "advance", "of": kind, "plan": name,
                         "direction": "credit" if sign < 0 else "charge",
                         "days": days, "of_days": of_days, "fraction": item.fraction,
                         "fee_period": [item.period.start, item.period.end]},
            ))
    for seg in iplan.segments:
        ph = seg.phase
        key = (ph.plan_code, ph.plan_version)
        plan = plans[key]
        catalog = catalogs[key]
        snap = usage.get((key, seg.window), {})
        quote = rate_plan(catalog, ph.plan_code, snap, plan=plan, seats=ph.seats,
                          first_period=False, include=(ARREARS,), minimum=False)
        multi = len(iplan.segments) > 1
        prefix = f"{_plan_name(plan, ph.plan_code, ph.plan_version)} · " if multi else ""
        spend = ZERO
        wallet = (credits or {}).get((key, seg.window))
        rated = [ln for ln in quote.lines if wallet is None or ln.kind != "credits"]
        for ln in rated:
            group = ",".join(f"{k}={v}" for k, v in sorted(ln.group.items())) \
                if ln.group else None
            rounded = quantize(ln.amount, currency)
            spend += rounded
            lines.append(DraftLine(
                kind=ln.kind, description=f"{prefix}{ln.label} ({_span(seg.window, tz)})",
                quantity=ln.quantity if ln.quantity is not None else ONE,
                unit_price=ln.unit_price, precise=ln.amount, amount=rounded,
                period=seg.window, plan_code=ph.plan_code, plan_version=ph.plan_version,
                meter=ln.meter, group=group, stream=ln.stream,
                details={**dict(ln.details), "timing": "arrears"},
            ))
        for cl in wallet or ():
            rounded = quantize(cl.amount, currency)
            spend += rounded
            lines.append(DraftLine(
                kind=cl.kind, description=f"{prefix}{cl.label} ({_span(seg.window, tz)})",
                quantity=cl.quantity, unit_price=cl.unit_price, precise=cl.amount,
                amount=rounded, period=seg.window, plan_code=ph.plan_code,
                plan_version=ph.plan_version, meter=cl.meter, stream="usage",
                details={**dict(cl.details), "value": cl.value, "timing": "arrears",
                         "source": "credit wallet"},
            ))
        if plan.minimum:
            minimum = plan.minimum * seg.fraction
            fee_share = _fee_share(plan, catalog, ph, currency) * seg.fraction
            gap = minimum - spend - fee_share
            if gap > 0:
                lines.append(DraftLine(
                    kind="minimum",
                    description=(f"{prefix}Minimum spend {to_str(plan.minimum)} per "
                                 f"{usage_interval(plan)}: true-up "
                                 f"({_span(seg.window, tz)})"),
                    quantity=ONE, unit_price=gap, precise=gap,
                    amount=quantize(gap, currency), period=seg.window,
                    plan_code=ph.plan_code, plan_version=ph.plan_version,
                    stream="subscription",
                    details={"minimum": to_str(minimum), "usage_spend": to_str(spend),
                             "fees_share": to_str(fee_share), "fraction": to_str(seg.fraction),
                             "timing": "arrears"},
                ))
    return lines


def _fee_share(plan: Plan, catalog: Catalog, phase: Phase, currency: str) -> Decimal:
    """The in-advance fees that fall in one usage period (they count toward a minimum)."""
    total = sum((x[4] for x in advance_lines(plan, catalog, phase, currency, first=False)),
                ZERO)
    per_usage = Decimal(INTERVAL_MONTHS[usage_interval(plan)]) / Decimal(
        INTERVAL_MONTHS[phase.term])
    return total * per_usage


def invoice_total(lines: list[DraftLine]) -> Decimal:
    """The total: the sum of the rounded lines (never a re-rounding of a precise sum)."""
    return sum((ln.amount for ln in lines), ZERO)
