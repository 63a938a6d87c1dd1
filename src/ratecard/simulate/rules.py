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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from ratecard.billing import rules as billing
from ratecard.billing.model import DraftLine, Subscription
from ratecard.billing.usage import meters_key
from ratecard.catalog.schema import Catalog, Meter, Plan
from ratecard.clock import Window, iso
from ratecard.errors import InvalidInput, RatecardError
from ratecard.metering.model import UsageSnapshot
from ratecard.money import ZERO
from ratecard.pricing.plan import TOKEN_KINDS, with_catalog_costs
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


def candidate_version(index: int) -> int:
    """The pseudo version of candidate ``index``'s plans (stored versions are positive)."""
    return -(index + 2)


def candidate_scenario(inp: SubInput, cand: Candidate, index: int,
                       window: Window) -> Scenario | None:
    """The subscription moved to the candidate's plans; None when none of its phases is
    on a plan the candidate replaces."""
    sub = inp.sub
    plans = dict(inp.plans)
    catalogs = dict(inp.catalogs)
    phases = []
    notes: list[str] = []
    new_plan = None
    for ph in sub.phases:
        target = cand.target(ph.plan_code)
        if target is None:
            phases.append(ph)
            continue
        plan = cand.catalog.plans[target]
        currency = cand.catalog.plan_currency(target)
        if currency != sub.currency:
            raise InvalidInput(f"candidate plan {target!r} is priced in {currency}; the "
                               f"customer pays in {sub.currency}")
        term = ph.term
        try:
            billing.check_term(plan, term, target)
        except InvalidInput:
            term = plan.interval
            notes.append(f"prepaid term {ph.term} does not fit {target!r}; rated per "
                         f"{plan.interval}")
        key = (target, candidate_version(index))
        plans[key] = plan
        catalogs[key] = cand.catalog
        phases.append(replace(ph, plan_code=target, plan_version=key[1], term=term))
        new_plan = target
    if new_plan is None:
        return None
    moved = replace(sub, phases=tuple(phases))
    return Scenario(moved, plans, catalogs, invoice_plans(moved, plans, window), new_plan,
                    tuple(notes))


def prepare(
    inputs: Sequence[SubInput],
    candidates: Sequence[Candidate],
    window: Window,
    *,
    base: Catalog | None = None,
) -> Prepared:
    """Plan every scenario and list the usage requests (pure; fetch them, then run)."""
    if not candidates:
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

    def want(sc: Scenario) -> None:
        for ip in sc.invoices:
            for seg in ip.segments:
                key = (seg.phase.plan_code, seg.phase.plan_version)
                mk, ms, values = prep.meter_set(key, sc.catalogs[key], sc.plans[key])
                uk = (sc.sub.customer, mk, seg.window)
                if ms and uk not in seen:
                    seen.add(uk)
                    prep.requests.append((uk, ms, values))

    for i, inp in enumerate(prep.inputs):
        try:
            cur = Scenario(inp.sub, inp.plans, inp.catalogs,
                           invoice_plans(inp.sub, inp.plans, window))
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
                sc = candidate_scenario(inp, cand, j, window)
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
    for ip in sc.invoices:
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


def slice_of(line: DraftLine) -> str:
    """Where a line's money comes from: its meter, or fees, credits, minimum."""
    if line.meter:
        return line.meter
    if line.kind in FEE_KINDS:
        return "(fees)"
    return f"({line.kind})"


def _slices(lines: Iterable[DraftLine]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for ln in lines:
        k = slice_of(ln)
        out[k] = out.get(k, ZERO) + ln.amount
    return out


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


def run(prep: Prepared, usage: Mapping[UsageKey, UsageSnapshot]) -> Backtest:
    """Rate every scenario over the fetched usage and compare candidates."""
    if prep.requests and not any(
        u.quantity != 0 or u.values for snap in usage.values() for u in snap.values()
    ):
        raise InvalidInput(
            f"no usage between {iso(prep.window.start)} and {iso(prep.window.end)} for the "
            "subscriptions simulated; pick a period with recorded events"
        )
    baseline: dict[int, tuple[Decimal, dict[str, Decimal], Decimal | None, int]] = {}
    base_errors: dict[int, str] = {}
    for (i, j), sc in prep.scenarios.items():
        if j != CURRENT or sc is None:
            continue
        try:
            lines = rate(prep, sc, usage)
        except RatecardError as e:
            base_errors[i] = str(e)
            continue
        baseline[i] = (sum((ln.amount for ln in lines), ZERO), _slices(lines),
                       _cost(prep, sc, usage), len(sc.invoices))
    for (i, j), msg in prep.errors.items():
        if j == CURRENT:
            base_errors[i] = msg
    reports = []
    for j, cand in enumerate(prep.candidates):
        results: list[CustomerResult] = []
        errors: list[SubError] = []
        replaced = 0
        for i, inp in enumerate(prep.inputs):
            sub = inp.sub
            if i in base_errors:
                errors.append(SubError(sub.customer, sub.id, base_errors[i]))
                continue
            if i not in baseline:
                continue
            if (i, j) in prep.errors:
                errors.append(SubError(sub.customer, sub.id, prep.errors[(i, j)]))
                continue
            old, old_slices, cost, n = baseline[i]
            sc = prep.scenarios.get((i, j))
            new, new_slices, notes = old, old_slices, ()
            if sc is not None:
                try:
                    lines = rate(prep, sc, usage)
                except RatecardError as e:
                    errors.append(SubError(sub.customer, sub.id, str(e)))
                    continue
                new = sum((ln.amount for ln in lines), ZERO)
                new_slices = _slices(lines)
                notes = sc.notes
                replaced += 1
            phase = sub.current_phase(prep.window.end)
            slices = {k: Amounts(old_slices.get(k, ZERO), new_slices.get(k, ZERO))
                      for k in sorted(set(old_slices) | set(new_slices))}
            results.append(CustomerResult(
                customer=sub.customer, subscription_id=sub.id, currency=sub.currency,
                plan=phase.plan_code, version=phase.plan_version,
                new_plan=sc.new_plan if sc is not None else None, old=old, new=new,
                cost=cost, invoices=n, slices=slices, notes=notes,
            ))
        reports.append(_report(cand.name, prep.window, results, errors, replaced))
    customers = len({prep.inputs[i].sub.customer for i in baseline})
    return Backtest(prep.window, tuple(reports), customers)


def _report(name: str, window: Window, results: list[CustomerResult],
            errors: list[SubError], replaced: int) -> CandidateReport:
    results.sort(key=lambda r: (-r.delta, r.customer, r.subscription_id))
    totals: dict[str, Totals] = {}
    by_plan: dict[tuple[str, str], Totals] = {}
    by_meter: dict[tuple[str, str], Amounts] = {}
    cohorts: dict[tuple[str, str], Totals] = {}
    for r in results:
        c = r.currency
        totals[c] = totals.get(c, Totals()).add(r)
        pk = (c, f"{r.plan} v{r.version}")
        by_plan[pk] = by_plan.get(pk, Totals()).add(r)
        for m, a in r.slices.items():
            by_meter[(c, m)] = by_meter.get((c, m), Amounts()) + a
        for cohort in (r.outcome,) + (("zero baseline",) if r.zero_baseline else ()):
            ck = (c, {"more": "pays more", "less": "pays less", "same": "unchanged"}.get(
                cohort, cohort))
            cohorts[ck] = cohorts.get(ck, Totals()).add(r)
    return CandidateReport(
        name=name, window=window, results=tuple(results), totals=totals,
        by_plan=dict(sorted(by_plan.items())), by_meter=dict(sorted(by_meter.items())),
        cohorts=dict(sorted(cohorts.items())), distribution=distribution(results),
        errors=tuple(errors), replaced=replaced,
    )
