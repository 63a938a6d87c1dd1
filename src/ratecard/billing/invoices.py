"""Invoices (service): runs, re-rating drafts, finalization, voids, payments, credit notes.

An invoice belongs to one subscription and one billing boundary (see
:mod:`ratecard.billing.rules`); the pair is unique in the database, so no run, however
repeated or concurrent, bills a boundary twice. Lifecycle::

    draft ──(grace period over)──▶ finalized ──▶ paid
      │  re-rated by every run          │
      └──────────▶ void ◀───────────────┘      corrections: credit notes

* A **draft** is re-rated by each run from the usage store (late events, voided
  events and plan changes show up) until ``period end + grace_hours``.
* **Finalizing** gives the next number of the series (``INV-000042``), under a row
  lock, in the same transaction: numbers have no gaps. A finalized invoice never
  changes; an attempt raises :class:`InvoiceFinalized` naming the credit-note route.
* A **credit note** (``CN-000001``) corrects a finalized or paid invoice by an amount,
  optionally against one line; credit notes never exceed what remains creditable.

A run (:func:`run_invoices`) is a batch: it reads usage for every subscription due
(in bulk: one aggregation per window and meter set), then bills subscriptions in
chunks, each subscription inside a savepoint so one failure is reported and the run
goes on; each chunk commits on its own, so a crash loses at most one chunk and a
re-run completes it. Subscription rows are locked (``FOR UPDATE``) while billed and
the number series is taken last in each chunk, so concurrent runs neither double
bill nor deadlock.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from ratecard.billing import repository as repo
from ratecard.billing import rules
from ratecard.billing.catalogs import current_catalog, plan_meters, rating_catalog
from ratecard.billing.model import DraftLine, Subscription
from ratecard.billing.subscriptions import PlanCache
from ratecard.billing.usage import UsageSource, meters_key
from ratecard.catalog.schema import Catalog, Meter, Plan
from ratecard.clock import Window, iso, utc_now
from ratecard.errors import Conflict, InvalidInput, InvoiceFinalized, NotFound, RatecardError
from ratecard.metering.model import UsageSnapshot
from ratecard.money import ZERO, D, quantize, to_str
from ratecard.pricing import with_catalog_costs
from ratecard.store.models import (
    CreditNoteRow,
    CustomerRow,
    InvoiceLineRow,
    InvoiceRow,
    SubscriptionRow,
)

DEFAULT_SERIES = "INV"
CREDIT_SERIES = "CN"
UsageKey = tuple[str, str, Window]  # customer, meters key, window


@dataclass(frozen=True)
class BillingSettings:
    grace: timedelta = timedelta(hours=24)
    series: str = DEFAULT_SERIES
    credit_series: str = CREDIT_SERIES

    @classmethod
    def from_workspace(cls, ws: Any) -> BillingSettings:
        hours = ws.setting("billing", "grace_hours", 24)
        try:
            grace = timedelta(hours=float(D(str(hours))))
        except RatecardError:
            raise InvalidInput(
                f"ratecard.toml: [billing] grace_hours = {hours!r} is not a number of hours"
            ) from None
        if grace < timedelta(0):
            raise InvalidInput("ratecard.toml: [billing] grace_hours must not be negative")
        series = str(ws.setting("billing", "invoice_series", DEFAULT_SERIES))
        credit = str(ws.setting("billing", "credit_note_series", CREDIT_SERIES))
        return cls(grace=grace, series=series, credit_series=credit)


# --------------------------------------------------------------------------- rating context


class RatingContext:
    """Plan versions, rating catalogs and meters, read once per run."""

    def __init__(self, session: Session) -> None:
        self.cache = PlanCache(session)
        self.base: Catalog | None = current_catalog(session)
        self._catalogs: dict[tuple[str, int], Catalog] = {}
        self._meters: dict[tuple[str, int], tuple[str, dict[str, Meter], frozenset[str]]] = {}

    def rebind(self, session: Session) -> None:
        self.cache.session = session

    def plans_for(self, sub: Subscription) -> dict[tuple[str, int], Plan]:
        return self.cache.plans_for(sub)

    def catalog(self, key: tuple[str, int]) -> Catalog:
        cat = self._catalogs.get(key)
        if cat is None:
            cat = rating_catalog(self.cache.version(*key), self.base)
            self._catalogs[key] = cat
        return cat

    def meters(self, key: tuple[str, int]) -> tuple[str, dict[str, Meter], frozenset[str]]:
        """The meters a plan version reads, their batch key, and those priced per event."""
        hit = self._meters.get(key)
        if hit is None:
            cat = self.catalog(key)
            plan = cat.plans[key[0]]
            ms = {m: cat.meters[m] for m in sorted(plan_meters(plan)) if m in cat.meters}
            values = frozenset(c.meter for c in plan.charges
                               if c.model == "percentage" and c.meter)
            hit = (meters_key(ms) + ",".join(sorted(values)), ms, values)
            self._meters[key] = hit
        return hit


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Due:
    """One boundary to (re-)rate, with what its invoice bills."""

    boundary: datetime
    prev: datetime | None
    plan: rules.InvoicePlan


@dataclass(frozen=True)
class DraftInfo:
    """What billing needs of an existing draft."""

    id: int
    period_start: datetime
    period_end: datetime
    digest: str
    total: Decimal
    notes: list[Any]


@dataclass
class SubState:
    """A subscription as billing reads it: its value, last closed boundary and drafts."""

    sub: Subscription
    customer_id: int
    billed_through: datetime | None
    closed: datetime | None = None
    drafts: dict[datetime, DraftInfo] = field(default_factory=dict)


_INV = InvoiceRow.__table__
_LINE = InvoiceLineRow.__table__
_SUB = SubscriptionRow.__table__
_BATCH = 500


def load_states(session: Session, ids: Sequence[int], *, lock: bool) -> dict[int, SubState]:
    """Subscriptions with phases, last closed boundaries and drafts: a few queries per 500.

    With ``lock`` the subscription rows are locked first, in id order (``FOR UPDATE`` on
    PostgreSQL; SQLite transactions already hold the database's write lock).
    """
    ordered = sorted(set(ids))
    out: dict[int, SubState] = {}
    for i in range(0, len(ordered), _BATCH):
        part = ordered[i:i + _BATCH]
        if lock:
            session.execute(select(_SUB.c.id).where(_SUB.c.id.in_(part))
                            .order_by(_SUB.c.id).with_for_update())
        for sid, (sub, customer_id, billed) in repo.subscription_values(session, part).items():
            out[sid] = SubState(sub, customer_id, billed)
        closed = session.execute(
            select(_INV.c.subscription_id, func.max(_INV.c.period_end))
            .where(_INV.c.subscription_id.in_(part), _INV.c.status != "draft")
            .group_by(_INV.c.subscription_id)
        )
        for sid, end in closed:
            if sid in out:
                out[sid].closed = end
        drafts = session.execute(
            select(_INV.c.id, _INV.c.subscription_id, _INV.c.period_start, _INV.c.period_end,
                   _INV.c.rating_digest, _INV.c.total, _INV.c.notes)
            .where(_INV.c.subscription_id.in_(part), _INV.c.status == "draft")
        )
        for iid, sid, start, end, digest, total, notes in drafts:
            if sid in out:
                out[sid].drafts[end] = DraftInfo(iid, start, end, digest, total,
                                                 list(notes or []))
    return out


def plan_dues(state: SubState, ctx: RatingContext, at: datetime) -> list[Due]:
    """The boundaries up to ``at`` after the last closed one, with their invoice plans."""
    sub = state.sub
    plans = ctx.plans_for(sub)
    bs = rules.boundaries(sub, plans, at, after=state.closed)
    prev = state.closed
    if prev is None and bs and bs[0] != sub.paid_start:
        prev = rules.previous_boundary(sub, plans, bs[0])
    dues: list[Due] = []
    for b in bs:
        dues.append(Due(b, prev, rules.plan_invoice(sub, plans, b, prev)))
        prev = b
    return dues


Request = tuple[UsageKey, dict[str, Meter], frozenset[str]]


def usage_requests(sub: Subscription, dues: Sequence[Due], ctx: RatingContext) -> list[Request]:
    out = []
    for d in dues:
        for seg in d.plan.segments:
            key = (seg.phase.plan_code, seg.phase.plan_version)
            mk, ms, values = ctx.meters(key)
            if ms:
                out.append(((sub.customer, mk, seg.window), ms, values))
    return out


def fetch_usage(source: UsageSource, requests: Sequence[Request]) -> dict[UsageKey, UsageSnapshot]:
    """One aggregation per (meter set, window) for all the customers that need it."""
    batches: dict[tuple[str, Window], tuple[dict[str, Meter], frozenset[str], set[str]]] = {}
    for (customer, mk, window), ms, values in requests:
        batches.setdefault((mk, window), (ms, values, set()))[2].add(customer)
    out: dict[UsageKey, UsageSnapshot] = {}
    for (mk, window), (ms, values, customers) in batches.items():
        got = source.usage(sorted(customers), ms, window, values)
        for c in customers:
            out[(c, mk, window)] = got.get(c, {})
    return out


# --------------------------------------------------------------------------- billing


@dataclass
class SubOutcome:
    created: list[int] = field(default_factory=list)
    rerated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    removed: int = 0
    ready: list[int] = field(default_factory=list)  # drafts whose grace period is over

    def add(self, other: SubOutcome) -> None:
        self.created.extend(other.created)
        self.rerated.extend(other.rerated)
        self.unchanged.extend(other.unchanged)
        self.removed += other.removed
        self.ready.extend(other.ready)


def _digest(lines: Sequence[DraftLine]) -> str:
    """A fingerprint of a rating: the same usage and plans give the same lines."""
    return hashlib.sha256(repr([ln.key() for ln in lines]).encode()).hexdigest()


def _line_values(lines: Sequence[DraftLine]) -> list[dict[str, Any]]:
    return [
        {"position": i + 1, "kind": ln.kind, "description": ln.description,
         "quantity": ln.quantity, "unit_price": ln.unit_price, "amount": ln.amount,
         "precise": ln.precise, "period_start": ln.period.start,
         "period_end": ln.period.end, "plan_code": ln.plan_code,
         "plan_version": ln.plan_version, "meter": ln.meter, "group_key": ln.group,
         "stream": ln.stream, "details": ln.details}
        for i, ln in enumerate(lines)
    ]


CreditLines = Callable[[Subscription, rules.UsageSegment, Plan], Sequence[Any] | None]


def wallet_credit_lines(session: Session) -> CreditLines:
    """Credit lines from the credits service for customers that have a wallet."""
    from ratecard.credits import service as credits

    holders: set[str] | None = None

    def lines(sub: Subscription, seg: rules.UsageSegment, plan: Plan) -> Sequence[Any] | None:
        nonlocal holders
        if plan.credits is None:
            return None
        if holders is None:
            holders = set(credits.customers_with_wallets(session))
        if sub.customer not in holders:
            return None
        return credits.period_lines(session, sub.customer, seg.window,
                                    plan_credits=plan.credits, currency=sub.currency)

    return lines


def rate_due(
    sub: Subscription,
    due: Due,
    ctx: RatingContext,
    usage: Mapping[UsageKey, UsageSnapshot],
    source: UsageSource | None,
    credit_lines: CreditLines | None = None,
) -> list[DraftLine]:
    """The lines of one boundary's invoice (usage read from ``usage``, else ``source``)."""
    snaps: dict[tuple[tuple[str, int], Window], UsageSnapshot] = {}
    wallet: dict[tuple[tuple[str, int], Window], Sequence[Any]] = {}
    for seg in due.plan.segments:
        if credit_lines is not None:
            plan = ctx.plans_for(sub)[(seg.phase.plan_code, seg.phase.plan_version)]
            found = credit_lines(sub, seg, plan)
            if found is not None:
                wallet[((seg.phase.plan_code, seg.phase.plan_version), seg.window)] = found
        key = (seg.phase.plan_code, seg.phase.plan_version)
        mk, ms, values = ctx.meters(key)
        ukey = (sub.customer, mk, seg.window)
        if ukey in usage:
            snap = usage[ukey]
        elif source is not None and ms:
            snap = source.usage([sub.customer], ms, seg.window, values).get(sub.customer, {})
        else:
            snap = {}
        snaps[(key, seg.window)] = with_catalog_costs(ctx.catalog(key), snap)
    plans = ctx.plans_for(sub)
    catalogs = {k: ctx.catalog(k) for k in plans}
    return rules.assemble(due.plan, plans, catalogs, snaps, sub.currency, sub.timezone,
                          credits=wallet)


@dataclass
class _Writes:
    """Every write of one batch of subscriptions, applied together."""

    deletes: list[int] = field(default_factory=list)
    rerates: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = field(
        default_factory=list)
    inserts: list[tuple[dict[str, Any], list[dict[str, Any]], bool]] = field(
        default_factory=list)
    touched: list[int] = field(default_factory=list)  # drafts re-rated to the same lines
    billed: dict[int, datetime] = field(default_factory=dict)


def _plan_writes(
    state: SubState, dues: Sequence[Due], ctx: RatingContext,
    usage: Mapping[UsageKey, UsageSnapshot], source: UsageSource | None,
    settings: BillingSettings, at: datetime, now: datetime, w: _Writes, out: SubOutcome,
    credit_lines: CreditLines | None = None,
) -> None:
    """Rate one subscription's dues and note the writes (nothing is written here)."""
    sub = state.sub
    wanted = {d.boundary for d in dues}
    rated: list[tuple[Due, list[DraftLine]]] = [
        (d, rate_due(sub, d, ctx, usage, source, credit_lines)) for d in dues]
    for end, draft in state.drafts.items():
        if end not in wanted:
            w.deletes.append(draft.id)
            out.removed += 1
    for due, lines in rated:
        draft = state.drafts.get(due.boundary)
        finalize_after = due.boundary + settings.grace
        ready = finalize_after <= at
        if draft is None and state.closed is not None and due.boundary <= state.closed:
            continue
        if not lines:
            if draft is not None:
                w.deletes.append(draft.id)
                out.removed += 1
            continue
        digest = _digest(lines)
        total = rules.invoice_total(lines)
        if draft is None:
            w.inserts.append(({
                "subscription_id": sub.id, "customer_id": state.customer_id,
                "period_start": due.plan.period.start, "period_end": due.boundary,
                "status": "draft", "currency": sub.currency, "total": total,
                "series": settings.series, "number": None, "created_at": now,
                "finalize_after": finalize_after, "finalized_at": None, "paid_at": None,
                "voided_at": None, "void_reason": None, "rated_at": now,
                "rating_digest": digest, "notes": [],
            }, _line_values(lines), ready))
            continue
        if draft.digest != digest or draft.period_start != due.plan.period.start:
            notes = [*draft.notes, {"at": iso(now), "event": "re-rated",
                                    "old_total": to_str(draft.total),
                                    "new_total": to_str(total)}]
            w.rerates.append((draft.id, {
                "b_total": total, "b_period_start": due.plan.period.start,
                "b_digest": digest, "b_notes": notes, "b_rated_at": now,
                "b_finalize_after": finalize_after}, _line_values(lines)))
            out.rerated.append(draft.id)
        else:
            w.touched.append(draft.id)
            out.unchanged.append(draft.id)
        if ready:
            out.ready.append(draft.id)
    if dues:
        last = dues[-1].boundary
        if state.billed_through is None or last > state.billed_through:
            w.billed[sub.id] = last


def _apply_writes(session: Session, w: _Writes, now: datetime, out: SubOutcome) -> None:
    """Apply a batch's writes with a handful of statements (drafts only, never finals)."""
    for i in range(0, len(w.deletes), _BATCH):
        part = w.deletes[i:i + _BATCH]
        session.execute(delete(_LINE).where(_LINE.c.invoice_id.in_(part)))
        session.execute(delete(_INV).where(_INV.c.id.in_(part), _INV.c.status == "draft"))
    if w.rerates:
        ids = [r[0] for r in w.rerates]
        for i in range(0, len(ids), _BATCH):
            session.execute(delete(_LINE).where(_LINE.c.invoice_id.in_(ids[i:i + _BATCH])))
        session.execute(
            update(_INV).where(_INV.c.id == bindparam("b_id"), _INV.c.status == "draft")
            .values(total=bindparam("b_total"), period_start=bindparam("b_period_start"),
                    rating_digest=bindparam("b_digest"), notes=bindparam("b_notes"),
                    rated_at=bindparam("b_rated_at"),
                    finalize_after=bindparam("b_finalize_after")),
            [{"b_id": iid, **values} for iid, values, _ in w.rerates],
        )
        lines = [{**ln, "invoice_id": iid} for iid, _, lns in w.rerates for ln in lns]
        session.execute(insert(_LINE), lines)
    if w.touched:
        for i in range(0, len(w.touched), _BATCH):
            session.execute(update(_INV).where(_INV.c.id.in_(w.touched[i:i + _BATCH]),
                                               _INV.c.status == "draft")
                            .values(rated_at=now))
    if w.inserts:
        result = session.execute(
            insert(_INV).returning(_INV.c.id, sort_by_parameter_order=True),
            [values for values, _, _ in w.inserts],
        )
        ids = list(result.scalars())
        lines = [{**ln, "invoice_id": iid}
                 for iid, (_, lns, _) in zip(ids, w.inserts, strict=True) for ln in lns]
        if lines:
            session.execute(insert(_LINE), lines)
        for iid, (_, _, ready) in zip(ids, w.inserts, strict=True):
            out.created.append(iid)
            if ready:
                out.ready.append(iid)
    if w.billed:
        session.execute(
            update(_SUB).where(_SUB.c.id == bindparam("b_id"))
            .values(billed_through=bindparam("b_through")),
            [{"b_id": sid, "b_through": at} for sid, at in w.billed.items()],
        )


def bill_many(
    session: Session,
    ids: Sequence[int],
    at: datetime,
    *,
    source: UsageSource | None,
    settings: BillingSettings,
    ctx: RatingContext | None = None,
    usage: Mapping[UsageKey, UsageSnapshot] | None = None,
    errors: list[RunError] | None = None,
) -> SubOutcome:
    """Create or re-rate the invoices of these subscriptions up to ``at``.

    Locks the subscription rows first. A subscription whose rating fails is left
    untouched and reported in ``errors`` (raised when ``errors`` is None). Does not
    finalize: pass ``outcome.ready`` to :func:`finalize_ready` after every lock taken.
    """
    ctx = ctx or RatingContext(session)
    states = load_states(session, ids, lock=True)
    missing = [sid for sid in ids if sid not in states]
    if missing:
        raise NotFound(f"no subscription {missing[0]}; list them with "
                       "`ratecard subscriptions list`")
    out = SubOutcome()
    writes = _Writes()
    now = utc_now()
    credit_lines = wallet_credit_lines(session)
    for sid in sorted(states):
        st = states[sid]
        mine = SubOutcome()
        before = (len(writes.deletes), len(writes.rerates), len(writes.inserts),
                  len(writes.touched))
        try:
            _plan_writes(st, plan_dues(st, ctx, at), ctx, usage or {}, source, settings,
                         at, now, writes, mine, credit_lines)
        except (RatecardError, ArithmeticError) as e:
            # drop what this subscription noted: it is billed by a later run once fixed
            del writes.deletes[before[0]:]
            del writes.rerates[before[1]:]
            del writes.inserts[before[2]:]
            del writes.touched[before[3]:]
            writes.billed.pop(sid, None)
            if errors is None:
                raise
            errors.append(RunError(sid, st.sub.customer, str(e)))
            continue
        out.add(mine)
    _apply_writes(session, writes, now, out)
    return out


def bill_subscription(
    session: Session,
    sub_id: int,
    at: datetime,
    *,
    source: UsageSource | None,
    settings: BillingSettings,
    ctx: RatingContext | None = None,
    usage: Mapping[UsageKey, UsageSnapshot] | None = None,
) -> SubOutcome:
    """:func:`bill_many` for one subscription (its errors are raised)."""
    return bill_many(session, [sub_id], at, source=source, settings=settings, ctx=ctx,
                     usage=usage)


def finalize_ready(session: Session, invoice_ids: Sequence[int], at: datetime) -> list[int]:
    """Finalize drafts in boundary order, numbering each from its series (no gaps)."""
    if not invoice_ids:
        return []
    rows: list[tuple[int, str]] = []
    ids = sorted(set(invoice_ids))
    for i in range(0, len(ids), _BATCH):
        rows.extend(session.execute(
            select(_INV.c.id, _INV.c.series, _INV.c.period_end)
            .where(_INV.c.id.in_(ids[i:i + _BATCH]), _INV.c.status == "draft")
        ).all())
    rows.sort(key=lambda r: (r[2], r[0]))
    by_series: dict[str, list[int]] = {}
    for iid, series, _ in rows:
        by_series.setdefault(series, []).append(iid)
    done: list[int] = []
    for series in sorted(by_series):
        members = by_series[series]
        first = repo.take_numbers(session, series, len(members))
        session.execute(
            update(_INV).where(_INV.c.id == bindparam("b_id"), _INV.c.status == "draft")
            .values(status="finalized", number=bindparam("b_number"), finalized_at=at),
            [{"b_id": iid, "b_number": first + k} for k, iid in enumerate(members)],
        )
        done.extend(members)
    session.expire_all()
    return done


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunError:
    subscription: int
    customer: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"subscription": self.subscription, "customer": self.customer,
                "error": self.message}


@dataclass
class RunReport:
    at: datetime
    subscriptions: int = 0
    created: int = 0
    rerated: int = 0
    unchanged: int = 0
    removed: int = 0
    finalized: int = 0
    errors: list[RunError] = field(default_factory=list)
    invoices: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "subscriptions": self.subscriptions,
            "created": self.created,
            "rerated": self.rerated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "finalized": self.finalized,
            "errors": [e.as_dict() for e in self.errors],
        }


SessionFactory = Callable[[], AbstractContextManager[Session]]


def _candidates(session: Session, at: datetime, customer: str | None) -> list[int]:
    stmt = select(SubscriptionRow.id).where(SubscriptionRow.started_at <= at)
    if customer is not None:
        cid = repo.customer_row(session, customer).id
        stmt = stmt.where(SubscriptionRow.customer_id == cid)
    ids = set(session.scalars(stmt))
    # ended and fully billed subscriptions without drafts have nothing left to do
    done = session.scalars(
        select(SubscriptionRow.id).where(
            SubscriptionRow.ends_at.is_not(None),
            SubscriptionRow.billed_through.is_not(None),
            SubscriptionRow.billed_through >= SubscriptionRow.ends_at,
        )
    )
    drafts = set(session.scalars(
        select(InvoiceRow.subscription_id).where(InvoiceRow.status == "draft")
    ))
    return sorted(ids - (set(done) - drafts))


def shard_of(customer: str, shards: int) -> int:
    """The shard (1 to ``shards``) that bills a customer: a stable hash of its id, the same
    on every machine, so ``--shard I/N`` runs split the subscriptions between them."""
    digest = hashlib.sha256(customer.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def run_invoices(
    open_session: SessionFactory,
    at: datetime,
    source: UsageSource,
    *,
    settings: BillingSettings | None = None,
    customer: str | None = None,
    shard: tuple[int, int] | None = None,
    chunk: int = 500,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> RunReport:
    """Bill every subscription due by ``at`` (see the module docstring)."""
    settings = settings or BillingSettings()
    report = RunReport(at=at)
    report.timings = {"plan": 0.0, "usage": 0.0, "bill": 0.0, "finalize": 0.0}
    clock = time.perf_counter()
    requests: list[Request] = []
    with open_session() as session:
        ids = _candidates(session, at, customer)
        ctx = RatingContext(session)
        states = load_states(session, ids, lock=False)
        if shard is not None:  # this run bills only its shard's customers
            ids = [sid for sid in ids
                   if shard_of(states[sid].sub.customer, shard[1]) == shard[0]]
        for sid in ids:
            try:
                requests.extend(usage_requests(states[sid].sub,
                                               plan_dues(states[sid], ctx, at), ctx))
            except (RatecardError, ArithmeticError):
                continue  # reported when billed
    report.subscriptions = len(ids)
    if on_total is not None:
        on_total(len(ids))
    report.timings["plan"] = time.perf_counter() - clock
    clock = time.perf_counter()
    usage = fetch_usage(source, requests)
    report.timings["usage"] = time.perf_counter() - clock
    clock = time.perf_counter()
    customers = {sid: st.sub.customer for sid, st in states.items()}
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        _run_chunk(open_session, part, customers, at, source, settings, ctx, usage, report)
        if progress is not None:
            progress(len(part))
    report.timings["bill"] = time.perf_counter() - clock - report.timings["finalize"]
    return report


def _run_chunk(
    open_session: SessionFactory,
    part: Sequence[int],
    customers: Mapping[int, str],
    at: datetime,
    source: UsageSource,
    settings: BillingSettings,
    ctx: RatingContext,
    usage: Mapping[UsageKey, UsageSnapshot],
    report: RunReport,
) -> None:
    """Bill one chunk in one transaction; if its batched writes fail, one by one."""
    out = SubOutcome()
    errors: list[RunError] = []
    with open_session() as session:
        ctx.rebind(session)
        try:
            with session.begin_nested():
                out = bill_many(session, part, at, source=source, settings=settings, ctx=ctx,
                                usage=usage, errors=errors)
        except (IntegrityError, OperationalError):
            out, errors = SubOutcome(), []
            for sid in part:
                try:
                    with session.begin_nested():
                        out.add(bill_many(session, [sid], at, source=source,
                                          settings=settings, ctx=ctx, usage=usage,
                                          errors=errors))
                except (IntegrityError, OperationalError) as e:
                    errors.append(RunError(sid, customers.get(sid, "?"), _db_message(e)))
        clock = time.perf_counter()
        finalized = finalize_ready(session, out.ready, at)
        report.timings["finalize"] = report.timings.get("finalize", 0.0) + (
            time.perf_counter() - clock)
    report.errors.extend(errors)
    report.created += len(out.created)
    report.rerated += len(out.rerated)
    report.unchanged += len(out.unchanged)
    report.removed += out.removed
    report.finalized += len(finalized)
    report.invoices.extend(out.created)


def _db_message(e: Exception) -> str:
    if isinstance(e, IntegrityError):
        return ("another run billed this subscription at the same time; nothing was doubled "
                "(run again to re-rate)")
    if isinstance(e, OperationalError):
        return f"database busy or unreachable: {getattr(e, 'orig', e)}; run again"
    return f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------- reading


def invoice_number(row: InvoiceRow) -> str | None:
    return repo.format_number(row.series, row.number)


def credited_total(session: Session, invoice_id: int) -> Decimal:
    return sum((cn.total for cn in repo.credit_notes_of(session, invoice_id)), ZERO)


def invoice_view(session: Session, row: InvoiceRow) -> dict[str, Any]:
    """The invoice as plain data (amounts as decimal strings)."""
    cust = session.get(CustomerRow, row.customer_id)
    assert cust is not None
    notes = repo.credit_notes_of(session, row.id)
    return {
        "id": row.id,
        "number": invoice_number(row),
        "customer": cust.external_id,
        "customer_name": cust.name,
        "customer_email": cust.email,
        "subscription": row.subscription_id,
        "status": row.status,
        "period_start": iso(row.period_start),
        "period_end": iso(row.period_end),
        "currency": row.currency,
        "lines": [
            {
                "position": ln.position,
                "kind": ln.kind,
                "description": ln.description,
                "quantity": to_str(ln.quantity),
                "unit_price": None if ln.unit_price is None else to_str(ln.unit_price),
                "amount": format(ln.amount, "f"),
                "precise_amount": to_str(ln.precise),
                "period_start": iso(ln.period_start),
                "period_end": iso(ln.period_end),
                "plan": ln.plan_code,
                "plan_version": ln.plan_version,
                "meter": ln.meter,
                "group": ln.group_key,
                "details": ln.details,
            }
            for ln in row.lines
        ],
        "total": format(row.total, "f"),
        "credited": format(quantize(sum((n.total for n in notes), ZERO), row.currency), "f"),
        "credit_notes": [credit_note_view(n) for n in notes],
        "created_at": iso(row.created_at),
        "finalize_after": iso(row.finalize_after),
        "finalized_at": iso(row.finalized_at) if row.finalized_at else None,
        "paid_at": iso(row.paid_at) if row.paid_at else None,
        "voided_at": iso(row.voided_at) if row.voided_at else None,
        "void_reason": row.void_reason,
        "notes": row.notes or [],
    }


def credit_note_view(n: CreditNoteRow) -> dict[str, Any]:
    return {
        "number": repo.format_number(n.series, n.number),
        "invoice_id": n.invoice_id,
        "currency": n.currency,
        "total": format(n.total, "f"),
        "reason": n.reason,
        "issued_at": iso(n.issued_at),
        "lines": n.lines,
    }


def get_invoice(session: Session, ref: str | int) -> dict[str, Any]:
    return invoice_view(session, repo.invoice_row(session, ref))


def list_invoices(
    session: Session, *, customer: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    stmt = select(InvoiceRow).options(selectinload(InvoiceRow.lines)).order_by(
        InvoiceRow.period_end, InvoiceRow.id)
    if customer is not None:
        stmt = stmt.where(InvoiceRow.customer_id == repo.customer_row(session, customer).id)
    if status is not None:
        stmt = stmt.where(InvoiceRow.status == status)
    return [invoice_view(session, r) for r in session.scalars(stmt)]


def iter_invoice_rows(session: Session) -> Iterator[InvoiceRow]:
    yield from session.scalars(select(InvoiceRow).order_by(InvoiceRow.id))


# --------------------------------------------------------------------------- changes


def _name(row: InvoiceRow) -> str:
    return invoice_number(row) or f"draft {row.id}"


def finalize_invoice(session: Session, ref: str | int, at: datetime | None = None) -> InvoiceRow:
    """Finalize a draft now, before its grace period ends."""
    row = repo.invoice_row(session, ref, lock=True)
    if row.status != "draft":
        raise InvoiceFinalized(f"invoice {_name(row)} is already {row.status}")
    finalize_ready(session, [row.id], at or utc_now())
    session.refresh(row)
    return row


def void_invoice(session: Session, ref: str | int, reason: str = "",
                 at: datetime | None = None) -> InvoiceRow:
    """Void a draft or finalized invoice (it keeps its number; the period stays unbilled)."""
    row = repo.invoice_row(session, ref, lock=True)
    if row.status == "void":
        raise Conflict(f"invoice {_name(row)} is already void")
    if row.status == "paid":
        raise Conflict(f"invoice {_name(row)} is paid; refund it with a credit note: "
                       f"`ratecard invoices credit {_name(row)} --reason TEXT`")
    if credited_total(session, row.id):
        raise Conflict(f"invoice {_name(row)} has credit notes; credit the rest instead")
    row.status = "void"
    row.voided_at = at or utc_now()
    row.void_reason = reason
    session.flush()
    return row


def mark_paid(session: Session, ref: str | int, at: datetime | None = None) -> InvoiceRow:
    row = repo.invoice_row(session, ref, lock=True)
    if row.status != "finalized":
        raise Conflict(f"invoice {_name(row)} is {row.status}; only a finalized invoice can "
                       "be marked paid")
    row.status = "paid"
    row.paid_at = at or utc_now()
    session.flush()
    return row


def ensure_mutable(row: InvoiceRow) -> None:
    """Refuse any change to an invoice that is no longer a draft."""
    if row.status != "draft":
        repo._refuse(row)


def create_credit_note(
    session: Session,
    ref: str | int,
    *,
    amount: Decimal | None = None,
    line: int | None = None,
    reason: str = "",
    settings: BillingSettings | None = None,
    at: datetime | None = None,
) -> CreditNoteRow:
    """Credit a finalized (or paid) invoice: all that remains, an amount, or one line."""
    settings = settings or BillingSettings()
    row = repo.invoice_row(session, ref, lock=True)
    if row.status == "draft":
        raise Conflict(f"invoice {_name(row)} is a draft: it is re-rated until it is "
                       "finalized; credit notes correct finalized invoices")
    if row.status == "void":
        raise Conflict(f"invoice {_name(row)} is void; there is nothing to credit")
    already = credited_total(session, row.id)
    remaining = row.total - already
    target_line = None
    if line is not None:
        target_line = next((ln for ln in row.lines if ln.position == line), None)
        if target_line is None:
            raise InvalidInput(f"invoice {_name(row)} has no line {line}; lines 1 to "
                               f"{len(row.lines)}")
        line_credited = sum(
            (D(x["amount"]) for n in repo.credit_notes_of(session, row.id) for x in n.lines
             if x.get("line") == line), ZERO)
        remaining = min(remaining, target_line.amount - line_credited)
    value = quantize(amount, row.currency) if amount is not None else remaining
    if amount is not None and value != amount:
        raise InvalidInput(f"amount {amount} has more decimals than {row.currency} allows")
    if value <= 0:
        raise InvalidInput(
            f"nothing to credit: invoice {_name(row)} has {to_str(remaining)} {row.currency} "
            "left to credit" if amount is None else "a credit note amount must be positive")
    if value > remaining:
        raise InvalidInput(
            f"{to_str(value)} {row.currency} is more than the {to_str(remaining)} left to "
            f"credit on invoice {_name(row)}" + (f" line {line}" if line else "")
        )
    number = repo.take_numbers(session, settings.credit_series)
    lines = [{"line": line, "description": target_line.description if target_line else
              f"Credit on invoice {_name(row)}", "amount": format(value, "f")}]
    note = CreditNoteRow(invoice_id=row.id, series=settings.credit_series, number=number,
                         currency=row.currency, total=value, reason=reason,
                         issued_at=at or utc_now(), lines=lines)
    session.add(note)
    session.flush()
    return note


def subscription_invoices(session: Session, sub_id: int) -> list[InvoiceRow]:
    return repo.invoice_rows_of(session, sub_id)
