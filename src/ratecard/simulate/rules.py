"""Backtests (pure): the same usage, rated by billing's own rules, under candidate plans.

A backtest answers "what would each customer have paid over ``[from, to)`` under this
candidate?" with the code that makes invoices:

1. For each subscription, the invoices billing would issue at the billing boundaries
   ``b`` with ``from < b <= to`` (:func:`ratecard.billing.rules.boundaries` and
   :func:`~ratecard.billing.rules.plan_invoice`): each bills the usage of the period
   that ends at ``b`` in arrears and the fees of the period that starts at ``b`` in
   advance, with prorations, prepaid terms and minimum true-ups as billing does.
2. For each candidate, the same subscription with every phase on a replaced plan
   moved to the candidate's plan (same start, anchor, seats; the prepaid term kept when
   the candidate plan allows it, else its interval), and its invoices planned again.
3. Usage is read once for every (meter set, window) the plans need
   (:func:`prepare` lists the requests; the service fetches them in bulk), then
   every invoice is assembled by :func:`ratecard.billing.rules.assemble`, the function
   invoice runs use, with the catalog's costs filled in for ``cost_plus`` charges.

Cost is the cost of the customer's usage in the current invoices' usage periods,
priced with the current catalog's ``costs`` (the same for every candidate: usage is
held fixed). Nothing here reads or writes storage; per-subscription problems (a
candidate plan in another currency, usage that a plan cannot price) are collected and
the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ratecard.billing import rules as billing
from ratecard.billing.model import DraftLine, Phase, Subscription
from ratecard.billing.usage import meters_key
from ratecard.catalog.schema import Catalog, Meter, Plan
from ratecard.clock import INTERVAL_MONTHS, Window, iso
from ratecard.errors import InvalidInput, RatecardError
from ratecard.metering.model import UsageSnapshot
from ratecard.money import ONE, ZERO, quantize
from ratecard.pricing.plan import ARREARS, TOKEN_KINDS, rate_plan, with_catalog_costs
from ratecard.simulate.model import (
    Amounts,
    Backtest,
    Bucket,
    Candidate,
    CandidateReport,
    CustomerResult,
    SubError,
    Totals,
)

PlanKey = tuple[str, int]
UsageKey = tuple[str, str, Window]          # customer, meter set key, window
Request = tuple[UsageKey, dict[str, Meter], frozenset[str]]
CURRENT = -1                                # scenario index of the current plans
MAX_CANDIDATES = 10

FEE_KINDS = {"base_fee", "seats", "flat", "discount", "proration"}


@dataclass(frozen=True)
class SubInput:
    """One subscription with its current plan versions and their rating catalogs."""

    sub: Subscription
    plans: Mapping[PlanKey, Plan]
    catalogs: Mapping[PlanKey, Catalog]


@dataclass(frozen=True)
class Scenario:
    """A subscription's invoices over the window under one set of plans."""

    sub: Subscription
    plans: Mapping[PlanKey, Plan]
    catalogs: Mapping[PlanKey, Catalog]
    invoices: tuple[billing.InvoicePlan, ...]
    new_plan: str | None = None
    notes: tuple[str, ...] = ()
    phases: Mapping[int, Phase] | None = None   # id(invoice plan phase) -> actual phase

    def phase(self, ph: Phase) -> Phase:
        """The subscription's own phase for a phase of the (shared) invoice plans."""
        return self.phases.get(id(ph), ph) if self.phases else ph

    def materialized(self) -> tuple[billing.InvoicePlan, ...]:
        """The invoice plans with this subscription's own phases in them."""
        return remap(self.invoices, self.phases, self.sub.id) if self.phases \
            else self.invoices


@dataclass
class Prepared:
    """Scenarios planned and the usage they need (fetch it, then :func:`run`)."""

    window: Window
    inputs: tuple[SubInput, ...]
    candidates: tuple[Candidate, ...]
    base: Catalog | None
    scenarios: dict[tuple[int, int], Scenario | None] = field(default_factory=dict)
    errors: dict[tuple[int, int], str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    cost_requests: list[Request] = field(default_factory=list)
    cost_key: str = ""                      # the meter-set key of the catalog's costed meters
    _meters: dict[tuple[PlanKey, int], tuple[str, dict[str, Meter], frozenset[str]]] = \
        field(default_factory=dict)
    _advance: dict[tuple[object, ...], tuple[Decimal, ...]] = field(default_factory=dict)
    _needs_cost: dict[PlanKey, bool] = field(default_factory=dict)
    _signatures: dict[tuple[PlanKey, int], str] = field(default_factory=dict)

    def advance(self, key: PlanKey, plan: Plan, catalog: Catalog, phase: Phase,
                currency: str, first: bool) -> tuple[Decimal, ...]:
        """The precise in-advance fees of one full term (billing's ``advance_lines``),
        computed once per plan, seats, term and first-or-not."""
        ck = (key, id(catalog), phase.seats, phase.term, currency, first)
        hit = self._advance.get(ck)
        if hit is None:
            hit = tuple(x[4] for x in billing.advance_lines(plan, catalog, phase, currency,
                                                             first=first))
            self._advance[ck] = hit
        return hit

    def arrears_signature(self, key: PlanKey, catalog: Catalog, plan: Plan) -> str:
        """What a usage period's arrears rating depends on: the plan's charges and credits,
        its currency, the definitions of the meters it charges, and the costs when a
        ``cost_plus`` charge reads them (not the fee, seats or minimum)."""
        ck = (key, id(catalog))
        hit = self._signatures.get(ck)
        if hit is None:
            charged = sorted({c.meter for c in plan.charges if c.meter}
                             | set(plan.credits.burn if plan.credits else ()))
            doc = {
                "charges": [c.model_dump(mode="json") for c in plan.charges],
                "credits": plan.credits.model_dump(mode="json") if plan.credits else None,
                "currency": plan.currency or catalog.currency,
                "meters": {m: catalog.meters[m].model_dump(mode="json") for m in charged
                           if m in catalog.meters},
                "costs": catalog.costs.model_dump(mode="json")
                if self.needs_cost(key, plan) else None,
            }
            hit = json.dumps(doc, sort_keys=True, default=str)
            self._signatures[ck] = hit
        return hit

    def needs_cost(self, key: PlanKey, plan: Plan) -> bool:
        """Whether rating the plan reads the cost of usage (a ``cost_plus`` charge): only
        then does the usage need the catalog's costs filled in."""
        hit = self._needs_cost.get(key)
        if hit is None:
            hit = any(c.model == "cost_plus" for c in plan.charges)
            self._needs_cost[key] = hit
        return hit

    def fee_share(self, key: PlanKey, plan: Plan, catalog: Catalog, phase: Phase,
                  currency: str) -> Decimal:
        """The in-advance fees that fall in one usage period (they count toward a minimum),
        as billing computes them."""
        total = sum(self.advance(key, plan, catalog, phase, currency, False), ZERO)
        return total * Decimal(INTERVAL_MONTHS[billing.usage_interval(plan)]) / Decimal(
            INTERVAL_MONTHS[phase.term])

    def meter_set(self, key: PlanKey, catalog: Catalog, plan: Plan
                  ) -> tuple[str, dict[str, Meter], frozenset[str]]:
        """The meters a plan reads (batch key, definitions, meters priced per event)."""
        ck = (key, id(catalog))
        hit = self._meters.get(ck)
        if hit is None:
            ms = {m: catalog.meters[m] for m in sorted(plan_meters(plan))
                  if m in catalog.meters}
            values = frozenset(c.meter for c in plan.charges
                               if c.model == "percentage" and c.meter)
            hit = (meters_key(ms) + ",".join(sorted(values)), ms, values)
            self._meters[ck] = hit
        return hit


def plan_meters(plan: Plan) -> set[str]:
    """Meters a plan reads: its charges, metered entitlements and credit burns."""
    names = {c.meter for c in plan.charges if c.meter}
    for ent in plan.entitlements.values():
        meter = getattr(ent, "meter", None)
        if meter:
            names.add(meter)
    if plan.credits:
        names.update(plan.credits.burn)
    return names


def cost_meters(catalog: Catalog) -> dict[str, Meter]:
    """Meters whose usage the catalog can cost: a unit cost, or tokens priced by model."""
    out = {}
    for key, m in catalog.meters.items():
        if key in catalog.costs.meters or (
                catalog.costs.models and TOKEN_KINDS.get(m.property or "")
                and "model" in m.group_by):
            out[key] = m
    return out


def invoice_plans(sub: Subscription, plans: Mapping[PlanKey, Plan],
                  window: Window) -> tuple[billing.InvoicePlan, ...]:
    """The invoices billing issues at boundaries in ``(window.start, window.end]``."""
    bs = billing.boundaries(sub, plans, window.end, after=window.start)
    if not bs:
        return ()
    prev = None if bs[0] == sub.paid_start else billing.previous_boundary(sub, plans, bs[0])
    out = []
    for b in bs:
        out.append(billing.plan_invoice(sub, plans, b, prev))
        prev = b
    return tuple(out)


def remap(invoices: Sequence[billing.InvoicePlan], phases: Mapping[int, Phase],
          sub_id: int) -> tuple[billing.InvoicePlan, ...]:
    """The invoice plans with each phase replaced (``phases`` maps ``id(old phase)``)."""
    out = []
    for ip in invoices:
        segs = tuple(replace(sg, phase=phases.get(id(sg.phase), sg.phase))
                     for sg in ip.segments)
        adv = tuple(replace(a, phase=phases.get(id(a.phase), a.phase)) for a in ip.advance)
        out.append(replace(ip, subscription_id=sub_id, segments=segs, advance=adv))
    return tuple(out)


class Timelines:
    """Invoice plans per subscription timeline, computed once per distinct timeline.

    The boundaries and proration of an invoice depend on the subscription's dates,
    timezone and phases (start, plan, term, anchor), not on who the customer is or how
    many seats it has; subscriptions that share a timeline share the plan.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[object, ...], tuple[tuple[Phase, ...],
                                                     tuple[billing.InvoicePlan, ...]]] = {}

    def plans(self, sub: Subscription, plans: Mapping[PlanKey, Plan], window: Window
              ) -> tuple[tuple[billing.InvoicePlan, ...], dict[int, Phase]]:
        key = (window, sub.started_at, sub.trial_end, sub.ends_at, sub.timezone,
               tuple((p.starts_at, p.plan_code, p.plan_version, p.term, p.anchor)
                     for p in sub.phases))
        hit = self._cache.get(key)
        if hit is None:
            template = replace(sub, id=0, customer="", phases=tuple(
                replace(p, seats=0, reason="") for p in sub.phases))
            hit = (template.phases, invoice_plans(template, plans, window))
            self._cache[key] = hit
        tphases, invoices = hit
        return invoices, {id(tp): rp for tp, rp in zip(tphases, sub.phases, strict=True)}


def candidate_version(index: int) -> int:
    """The pseudo version of candidate ``index``'s plans (stored versions are positive)."""
    return -(index + 2)


@dataclass(frozen=True)
class _Move:
    """How one current phase (plan version and term) moves to a candidate's plan."""

    target: str
    key: PlanKey
    plan: Plan
    currency: str
    term: str
    note: str | None
    same_interval: bool


def _move(cand: Candidate, index: int, old_key: PlanKey, old: Plan, term: str,
          cache: dict[tuple[object, ...], _Move | None] | None = None) -> _Move | None:
    ck = (index, old_key, term)
    if cache is not None and ck in cache:
        return cache[ck]
    target = cand.target(old_key[0])
    move = None
    if target is not None:
        plan = cand.catalog.plans[target]
        new_term, note = term, None
        try:
            billing.check_term(plan, term, target)
        except InvalidInput:
            new_term = plan.interval
            note = f"prepaid term {term} does not fit {target!r}; rated per {plan.interval}"
        move = _Move(target, (target, candidate_version(index)), plan,
                     cand.catalog.plan_currency(target), new_term, note,
                     new_term == term
                     and billing.usage_interval(plan) == billing.usage_interval(old))
    if cache is not None:
        cache[ck] = move
    return move


def candidate_scenario(inp: SubInput, cand: Candidate, index: int, window: Window,
                       current: Scenario | None = None,
                       timelines: Timelines | None = None,
                       moves: dict[tuple[object, ...], _Move | None] | None = None,
                       ) -> Scenario | None:
    """The subscription moved to the candidate's plans; None when none of its phases is
    on a plan the candidate replaces.

    When every moved phase keeps its term and its usage interval, the boundaries are
    the current ones and ``current``'s invoice plans are reused with the phases
    swapped; otherwise the invoices are planned again. ``moves`` caches how each plan
    version and term moves (shared by every subscription of a run).
    """
    sub = inp.sub
    plans: dict[PlanKey, Plan] | None = None
    catalogs: dict[PlanKey, Catalog] | None = None
    phases = []
    notes: list[str] = []
    new_plan = None
    same_timeline = True
    for ph in sub.phases:
        old_key = (ph.plan_code, ph.plan_version)
        mv = _move(cand, index, old_key, inp.plans[old_key], ph.term, moves)
        if mv is None:
            phases.append(ph)
            continue
        if mv.currency != sub.currency:
            raise InvalidInput(f"candidate plan {mv.target!r} is priced in {mv.currency}; "
                               f"the customer pays in {sub.currency}")
        if mv.note:
            notes.append(mv.note)
        same_timeline = same_timeline and mv.same_interval
        if plans is None or catalogs is None:
            plans, catalogs = dict(inp.plans), dict(inp.catalogs)
        plans[mv.key] = mv.plan
        catalogs[mv.key] = cand.catalog
        phases.append(replace(ph, plan_code=mv.target, plan_version=mv.key[1], term=mv.term))
        new_plan = mv.target
    if new_plan is None or plans is None or catalogs is None:
        return None
    if same_timeline and current is not None:
        swap = {id(o): n for o, n in zip(sub.phases, phases, strict=True)}
        if current.phases:
            mapping = {k: swap.get(id(v), v) for k, v in current.phases.items()}
        else:
            mapping = swap
        # the boundaries are the current ones: the subscription itself is not re-planned
        return Scenario(sub, plans, catalogs, current.invoices, new_plan, tuple(notes),
                        mapping)
    moved = replace(sub, phases=tuple(phases))
    if timelines is not None:
        invoices, mapping = timelines.plans(moved, plans, window)
        return Scenario(moved, plans, catalogs, invoices, new_plan, tuple(notes), mapping)
    return Scenario(moved, plans, catalogs, invoice_plans(moved, plans, window), new_plan,
                    tuple(notes))


def prepare(
    inputs: Sequence[SubInput],
    candidates: Sequence[Candidate],
    window: Window,
    *,
    base: Catalog | None = None,
    require_candidates: bool = True,
) -> Prepared:
    """Plan every scenario and list the usage requests (pure; fetch them, then run)."""
    if not candidates and require_candidates:
        raise InvalidInput("give at least one candidate catalog (--candidate FILE)")
    if len(candidates) > MAX_CANDIDATES:
        raise InvalidInput(f"{len(candidates)} candidates; simulate at most "
                           f"{MAX_CANDIDATES} at once")
    if window.start >= window.end:
        raise InvalidInput(f"the period {iso(window.start)} to {iso(window.end)} is empty; "
                           "--to must be after --from")
    prep = Prepared(window, tuple(inputs), tuple(candidates), base)
    costed = cost_meters(base) if base is not None else {}
    cost_key = meters_key(costed) if costed else ""
    prep.cost_key = cost_key
    seen: set[UsageKey] = set()

    needs: dict[tuple[object, ...], list[tuple[str, dict[str, Meter], frozenset[str],
                                               Window]]] = {}

    def want(sc: Scenario) -> None:
        # the (meter set, window) pairs a scenario reads depend only on its shared invoice
        # plans and the plan versions of their phases: computed once per combination
        keys = tuple((sc.phase(seg.phase).plan_code, sc.phase(seg.phase).plan_version)
                     for ip in sc.invoices for seg in ip.segments)
        ck = (id(sc.invoices), keys, tuple(id(sc.catalogs[k]) for k in keys))
        pairs = needs.get(ck)
        if pairs is None:
            pairs = []
            segs = [seg for ip in sc.invoices for seg in ip.segments]
            for key, seg in zip(keys, segs, strict=True):
                mk, ms, values = prep.meter_set(key, sc.catalogs[key], sc.plans[key])
                if ms:
                    pairs.append((mk, ms, values, seg.window))
            needs[ck] = pairs
        for mk, ms, values, w in pairs:
            uk = (sc.sub.customer, mk, w)
            if uk not in seen:
                seen.add(uk)
                prep.requests.append((uk, ms, values))

    timelines = Timelines()
    moves: dict[tuple[object, ...], _Move | None] = {}
    for i, inp in enumerate(prep.inputs):
        try:
            invoices, mapping = timelines.plans(inp.sub, inp.plans, window)
            cur = Scenario(inp.sub, inp.plans, inp.catalogs, invoices, phases=mapping)
        except RatecardError as e:
            prep.errors[(i, CURRENT)] = str(e)
            continue
        if not cur.invoices:
            continue               # no invoice in the window: not part of the backtest
        prep.scenarios[(i, CURRENT)] = cur
        want(cur)
        if costed:
            for ip in cur.invoices:
                for seg in ip.segments:
                    uk = (inp.sub.customer, cost_key, seg.window)
                    if uk not in seen:
                        seen.add(uk)
                        prep.cost_requests.append((uk, costed, frozenset()))
        for j, cand in enumerate(prep.candidates):
            try:
                sc = candidate_scenario(inp, cand, j, window, cur, timelines, moves)
            except RatecardError as e:
                prep.errors[(i, j)] = str(e)
                continue
            prep.scenarios[(i, j)] = sc
            if sc is not None:
                want(sc)
    return prep


def rate(prep: Prepared, sc: Scenario,
         usage: Mapping[UsageKey, UsageSnapshot]) -> list[DraftLine]:
    """Every line of the scenario's invoices, assembled by billing's rules."""
    lines: list[DraftLine] = []
    for ip in sc.materialized():
        snaps: dict[tuple[PlanKey, Window], UsageSnapshot] = {}
        for seg in ip.segments:
            key = (seg.phase.plan_code, seg.phase.plan_version)
            catalog = sc.catalogs[key]
            mk, ms, _ = prep.meter_set(key, catalog, sc.plans[key])
            snap = usage.get((sc.sub.customer, mk, seg.window), {}) if ms else {}
            snaps[(key, seg.window)] = with_catalog_costs(catalog, snap)
        lines.extend(billing.assemble(ip, sc.plans, sc.catalogs, snaps, sc.sub.currency,
                                      sc.sub.timezone))
    return lines


def amounts(prep: Prepared, sc: Scenario, usage: Mapping[UsageKey, UsageSnapshot],
            memo: dict[tuple[str, str, Window], tuple[list[tuple[str, Decimal]], Decimal]]
            | None = None) -> list[tuple[str, Decimal]]:
    """Every invoice line's rounded amount and slice, as :func:`billing.assemble` makes
    them, without building descriptions: the in-advance fees of each term come from
    billing's ``advance_lines`` (once per plan, seats and term), each usage period is
    rated by the pricing engine's ``rate_plan``, and the minimum true-up, proration
    and rounding follow ``assemble`` line for line (a test holds the two equal).

    ``memo`` (one per subscription) reuses a usage period's arrears lines between the
    current plan and a candidate whose usage pricing is the same (a candidate that
    only changes the fee, the seats or the minimum)."""
    cur = sc.sub.currency
    out: list[tuple[str, Decimal]] = []
    for ip in sc.invoices:
        for item in ip.advance:
            ph = sc.phase(item.phase)
            key = (ph.plan_code, ph.plan_version)
            fees = prep.advance(key, sc.plans[key], sc.catalogs[key], ph, cur, item.first)
            if item.kind == "period" and item.fraction == ONE:
                out.extend(("(fees)", quantize(x, cur)) for x in fees)
            else:
                sign = -1 if item.kind == "credit" else 1
                out.extend(("(fees)", quantize(x * item.fraction * sign, cur)) for x in fees)
        for seg in ip.segments:
            ph = sc.phase(seg.phase)
            key = (ph.plan_code, ph.plan_version)
            plan = sc.plans[key]
            catalog = sc.catalogs[key]
            mk, ms, _ = prep.meter_set(key, catalog, plan)
            mkey = (prep.arrears_signature(key, catalog, plan), mk, seg.window)
            hit = memo.get(mkey) if memo is not None else None
            if hit is None:
                snap = usage.get((sc.sub.customer, mk, seg.window), {}) if ms else {}
                if snap and prep.needs_cost(key, plan):
                    snap = with_catalog_costs(catalog, snap)
                quote = rate_plan(catalog, ph.plan_code, snap,
                                  plan=plan, seats=ph.seats, first_period=False,
                                  include=(ARREARS,), minimum=False)
                parts: list[tuple[str, Decimal]] = []
                spend = ZERO
                for ln in quote.lines:
                    rounded = quantize(ln.amount, cur)
                    spend += rounded
                    parts.append((ln.meter or ("(fees)" if ln.kind in FEE_KINDS
                                               else f"({ln.kind})"), rounded))
                hit = (parts, spend)
                if memo is not None:
                    memo[mkey] = hit
            parts, spend = hit
            out.extend(parts)
            if plan.minimum:
                gap = plan.minimum * seg.fraction - spend - prep.fee_share(
                    key, plan, catalog, ph, cur) * seg.fraction
                if gap > 0:
                    out.append(("(minimum)", quantize(gap, cur)))
    return out


def slice_of(line: DraftLine) -> str:
    """Where a line's money comes from: its meter, or fees, credits, minimum."""
    if line.meter:
        return line.meter
    if line.kind in FEE_KINDS:
        return "(fees)"
    return f"({line.kind})"


def _slices(parts: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for k, amount in parts:
        out[k] = out.get(k, ZERO) + amount
    return out


def _rated(prep: Prepared, sc: Scenario, usage: Mapping[UsageKey, UsageSnapshot],
           reference: bool, memo: dict[Any, Any] | None = None
           ) -> tuple[Decimal, dict[str, Decimal]]:
    """The scenario's total and its slices (``reference``: through ``billing.assemble``)."""
    if reference:
        parts = [(slice_of(ln), ln.amount) for ln in rate(prep, sc, usage)]
    else:
        parts = amounts(prep, sc, usage, memo)
    return sum((a for _, a in parts), ZERO), _slices(parts)


def _cost(prep: Prepared, sc: Scenario, usage: Mapping[UsageKey, UsageSnapshot]
          ) -> Decimal | None:
    if prep.base is None or not prep.cost_key:
        return None
    key = prep.cost_key
    total = ZERO
    for ip in sc.invoices:
        for seg in ip.segments:
            snap = with_catalog_costs(prep.base, usage.get((sc.sub.customer, key,
                                                            seg.window), {}))
            total += sum((u.cost for u in snap.values() if u.cost is not None), ZERO)
    return total


# Distribution of the change, by size either way: each bucket holds |delta %| in
# (low, high] (as fractions), so a change of exactly 5% is in "0-5%".
_SIZES: tuple[tuple[str, Decimal, Decimal | None], ...] = (
    ("0-5%", Decimal(0), Decimal("0.05")),
    ("5-20%", Decimal("0.05"), Decimal("0.2")),
    ("20-50%", Decimal("0.2"), Decimal("0.5")),
    ("more than 50%", Decimal("0.5"), None),
)
BUCKETS: tuple[tuple[str, Decimal | None, Decimal | None], ...] = (
    *((f"down {label}", -hi if hi is not None else None, -lo)
      for label, lo, hi in reversed(_SIZES)),
    ("no change", Decimal(0), Decimal(0)),
    *((f"up {label}", lo, hi) for label, lo, hi in _SIZES),
)


def bucket_of(p: Decimal) -> str:
    """The distribution bucket of a delta % (a fraction)."""
    if p == 0:
        return "no change"
    size = abs(p)
    for label, lo, hi in _SIZES:
        if size > lo and (hi is None or size <= hi):
            return f"{'up' if p > 0 else 'down'} {label}"
    raise AssertionError(f"no bucket for {p}")  # pragma: no cover - sizes cover all


def distribution(results: Iterable[CustomerResult]) -> tuple[Bucket, ...]:
    """How many customers moved by how much (delta %), zero baselines apart."""
    counts = dict.fromkeys([label for label, _, _ in BUCKETS], 0)
    zero = 0
    for r in results:
        p = r.delta_pct
        if p is None:
            zero += 1
        else:
            counts[bucket_of(p)] += 1
    out = [Bucket(label, lo, hi, counts[label]) for label, lo, hi in BUCKETS]
    out.append(Bucket("zero baseline", None, None, zero))
    return tuple(out)


@dataclass
class Rated:
    """The rating of some subscriptions (a chunk, or all): per subscription index its
    baseline ``(total, slices, cost, invoices)`` or error, and per (index, candidate)
    its ``(total, slices)`` or error. Chunks rated apart merge with :meth:`merge`."""

    baseline: dict[int, tuple[Decimal, dict[str, Decimal], Decimal | None, int]] = \
        field(default_factory=dict)
    base_errors: dict[int, str] = field(default_factory=dict)
    moved: dict[tuple[int, int], tuple[Decimal, dict[str, Decimal]]] = \
        field(default_factory=dict)
    errors: dict[tuple[int, int], str] = field(default_factory=dict)

    def merge(self, other: Rated) -> Rated:
        self.baseline.update(other.baseline)
        self.base_errors.update(other.base_errors)
        self.moved.update(other.moved)
        self.errors.update(other.errors)
        return self


def check_usage(prep: Prepared, usage: Mapping[UsageKey, UsageSnapshot]) -> None:
    """A period without any recorded usage is an error, not a report of zeros."""
    if prep.requests and not any(
        u.quantity != 0 or u.values for snap in usage.values() for u in snap.values()
    ):
        raise InvalidInput(
            f"no usage between {iso(prep.window.start)} and {iso(prep.window.end)} for the "
            "subscriptions simulated; pick a period with recorded events"
        )


def rate_subs(prep: Prepared, usage: Mapping[UsageKey, UsageSnapshot],
              indices: Iterable[int], *, reference: bool = False) -> Rated:
    """Rate the current and candidate scenarios of the subscriptions at ``indices``."""
    out = Rated()
    for i in indices:
        if (i, CURRENT) in prep.errors:
            out.base_errors[i] = prep.errors[(i, CURRENT)]
            continue
        cur = prep.scenarios.get((i, CURRENT))
        if cur is None:
            continue
        memo: dict[Any, Any] = {}
        try:
            total, slices = _rated(prep, cur, usage, reference, memo)
        except RatecardError as e:
            out.base_errors[i] = str(e)
            continue
        out.baseline[i] = (total, slices, _cost(prep, cur, usage), len(cur.invoices))
        for j in range(len(prep.candidates)):
            sc = prep.scenarios.get((i, j))
            if sc is None:
                continue
            try:
                out.moved[(i, j)] = _rated(prep, sc, usage, reference, memo)
            except RatecardError as e:
                out.errors[(i, j)] = str(e)
    return out


def run(prep: Prepared, usage: Mapping[UsageKey, UsageSnapshot], *,
        reference: bool = False) -> Backtest:
    """Rate every scenario over the fetched usage and compare candidates.

    ``reference=True`` assembles every invoice with :func:`billing.assemble` itself
    (slower; the result is the same, which a test checks).
    """
    check_usage(prep, usage)
    return compare(prep, rate_subs(prep, usage, range(len(prep.inputs)),
                                   reference=reference))


def compare(prep: Prepared, rated: Rated) -> Backtest:
    """The reports of every candidate from the rated scenarios."""
    per_candidate: list[list[CustomerResult]] = [[] for _ in prep.candidates]
    errors: list[list[SubError]] = [[] for _ in prep.candidates]
    replaced = [0] * len(prep.candidates)
    for i, inp in enumerate(prep.inputs):
        sub = inp.sub
        if i in rated.base_errors:
            for errs in errors:
                errs.append(SubError(sub.customer, sub.id, rated.base_errors[i]))
            continue
        if i not in rated.baseline:
            continue
        old, old_slices, cost, n = rated.baseline[i]
        phase = sub.current_phase(prep.window.end)
        same = {k: Amounts(v, v) for k, v in old_slices.items()}
        for j in range(len(prep.candidates)):
            msg = prep.errors.get((i, j)) or rated.errors.get((i, j))
            if msg is not None:
                errors[j].append(SubError(sub.customer, sub.id, msg))
                continue
            sc = prep.scenarios.get((i, j))
            notes: tuple[str, ...] = ()
            new_plan: str | None = None
            if sc is None:
                new, slices = old, same
            else:
                new, new_slices = rated.moved[(i, j)]
                slices = {k: Amounts(old_slices.get(k, ZERO), new_slices.get(k, ZERO))
                          for k in sorted(set(old_slices) | set(new_slices))}
                notes, new_plan = sc.notes, sc.new_plan
                replaced[j] += 1
            per_candidate[j].append(CustomerResult(
                customer=sub.customer, subscription_id=sub.id, currency=sub.currency,
                plan=phase.plan_code, version=phase.plan_version, new_plan=new_plan,
                old=old, new=new, cost=cost, invoices=n, slices=slices, notes=notes,
            ))
    reports = tuple(_report(cand.name, prep.window, per_candidate[j], errors[j], replaced[j])
                    for j, cand in enumerate(prep.candidates))
    customers = len({prep.inputs[i].sub.customer for i in rated.baseline})
    return Backtest(prep.window, reports, customers)


class _Sum:
    """A mutable running total, frozen into :class:`Totals` at the end."""

    __slots__ = ("cost", "customers", "less", "more", "new", "old", "same", "zero")

    def __init__(self) -> None:
        self.customers = self.more = self.less = self.same = self.zero = 0
        self.old = self.new = ZERO
        self.cost: Decimal | None = ZERO

    def add(self, r: CustomerResult, outcome: str) -> None:
        self.customers += 1
        self.old += r.old
        self.new += r.new
        self.cost = None if self.cost is None or r.cost is None else self.cost + r.cost
        self.more += outcome == "more"
        self.less += outcome == "less"
        self.same += outcome == "same"
        self.zero += r.old == 0

    def totals(self) -> Totals:
        return Totals(self.customers, self.old, self.new, self.cost, self.more, self.less,
                      self.same, self.zero)


COHORTS = {"more": "pays more", "less": "pays less", "same": "unchanged"}


def _bump(table: dict[Any, _Sum], key: object, r: CustomerResult, outcome: str) -> None:
    acc = table.get(key)
    if acc is None:
        acc = table[key] = _Sum()
    acc.add(r, outcome)


def _report(name: str, window: Window, results: list[CustomerResult],
            errors: list[SubError], replaced: int) -> CandidateReport:
    results.sort(key=lambda r: (-r.delta, r.customer, r.subscription_id))
    totals: dict[str, _Sum] = {}
    by_plan: dict[tuple[str, str], _Sum] = {}
    by_meter: dict[tuple[str, str], list[Decimal]] = {}
    cohorts: dict[tuple[str, str], _Sum] = {}
    for r in results:
        c = r.currency
        outcome = r.outcome
        _bump(totals, c, r, outcome)
        _bump(by_plan, (c, f"{r.plan} v{r.version}"), r, outcome)
        _bump(cohorts, (c, COHORTS[outcome]), r, outcome)
        if r.old == 0:
            _bump(cohorts, (c, "zero baseline"), r, outcome)
        for m, amt in r.slices.items():
            pair = by_meter.get((c, m))
            if pair is None:
                by_meter[(c, m)] = [amt.old, amt.new]
            else:
                pair[0] += amt.old
                pair[1] += amt.new
    return CandidateReport(
        name=name, window=window, results=tuple(results),
        totals={k: v.totals() for k, v in totals.items()},
        by_plan={k: v.totals() for k, v in sorted(by_plan.items())},
        by_meter={k: Amounts(v[0], v[1]) for k, v in sorted(by_meter.items())},
        cohorts={k: v.totals() for k, v in sorted(cohorts.items())},
        distribution=distribution(results), errors=tuple(errors), replaced=replaced,
    )
