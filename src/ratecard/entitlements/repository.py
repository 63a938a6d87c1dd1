"""SQL of entitlements: who the customer is and on which plan version, overrides, counters.

Counters live in ``usage_counters``: per customer and meter, minute rows (``res='m'``)
and hour rows (``res='h'``), bucket = minutes since the Unix epoch (UTC). A window
sum reads the whole hours inside it from the hour rows and the ragged ends from the
minute rows, so a 7-day window reads at most 168 + 118 rows, whatever the traffic.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ratecard.catalog.schema import Meter, Plan
from ratecard.entitlements.model import Override
from ratecard.errors import NotFound
from ratecard.store.credits_models import CounterRow, OverrideRow
from ratecard.store.models import (
    CustomerRow,
    PhaseRow,
    PlanVersionRow,
    SubscriptionRow,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NANO = 10**9
_NANO_D = Decimal(NANO)

# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class CustomerPlan:
    """A customer and the plan version in force at one instant (None: no subscription)."""

    customer_id: int
    customer: str
    timezone: str
    currency: str
    plan_code: str | None = None
    plan_version: int | None = None
    plan: Plan | None = None
    meters: Mapping[str, Meter] | None = None
    anchor: datetime | None = None


_plans: OrderedDict[str, tuple[Plan, dict[str, Meter]]] = OrderedDict()
_PLAN_CACHE_SIZE = 512


def _plan_of(session: Session, digest: str, version_id: int) -> tuple[Plan, dict[str, Meter]]:
    """A stored plan version, parsed once per process (versions never change; keyed by
    the digest of their definition)."""
    hit = _plans.get(digest)
    if hit is not None:
        _plans.move_to_end(digest)
        return hit
    definition = session.scalar(select(PlanVersionRow.definition)
                                .where(PlanVersionRow.id == version_id))
    assert definition is not None
    plan = Plan.model_validate(definition["plan"])
    meters = {k: Meter.model_validate(v) for k, v in (definition.get("meters") or {}).items()}
    _plans[digest] = (plan, meters)
    if len(_plans) > _PLAN_CACHE_SIZE:
        _plans.popitem(last=False)
    return plan, meters


_customer_plan_stmt = (
    select(CustomerRow.id, CustomerRow.timezone, CustomerRow.currency, PhaseRow.plan_code,
           PhaseRow.plan_version, PhaseRow.anchor, PlanVersionRow.digest, PlanVersionRow.id)
    .select_from(CustomerRow)
    .outerjoin(SubscriptionRow, and_(
        SubscriptionRow.customer_id == CustomerRow.id,
        SubscriptionRow.started_at <= bindparam("at"),
        or_(SubscriptionRow.ends_at.is_(None), SubscriptionRow.ends_at > bindparam("at"))))
    .outerjoin(PhaseRow, and_(PhaseRow.subscription_id == SubscriptionRow.id,
                              PhaseRow.starts_at <= bindparam("at")))
    .outerjoin(PlanVersionRow, and_(PlanVersionRow.plan_code == PhaseRow.plan_code,
                                    PlanVersionRow.version == PhaseRow.plan_version))
    .where(CustomerRow.external_id == bindparam("customer"))
    .order_by(PhaseRow.starts_at.desc().nulls_last())
    .limit(1)
)


def customer_plan(session: Session, customer: str, at: datetime) -> CustomerPlan:
    """The customer and the plan version of its subscription at ``at``.

    Raises :class:`NotFound` for an unknown customer. The version is the one the
    subscription is on (a grandfathered version keeps its entitlements).
    """
    row = session.execute(_customer_plan_stmt, {"customer": customer, "at": at}).first()
    if row is None:
        raise NotFound(
            f"no customer {customer!r}; create it with `ratecard customers create {customer}`"
        )
    cid, tz, currency, code, version, anchor, digest, vid = row
    if code is None or digest is None:
        return CustomerPlan(cid, customer, tz, currency)
    plan, meters = _plan_of(session, digest, vid)
    return CustomerPlan(cid, customer, tz, currency, code, version, plan, meters, anchor)


@dataclass(frozen=True)
class PhaseSpan:
    """One phase of a subscription: a plan version from ``start`` until ``end``."""

    start: datetime
    end: datetime | None
    plan_code: str
    plan_version: int
    plan: Plan
    anchor: datetime


def customer_phases(session: Session, customer_id: int) -> list[PhaseSpan]:
    """Every phase of every subscription of a customer, in time order."""
    rows = session.execute(
        select(SubscriptionRow.id, SubscriptionRow.started_at, SubscriptionRow.ends_at,
               PhaseRow.starts_at, PhaseRow.plan_code, PhaseRow.plan_version, PhaseRow.anchor,
               PlanVersionRow.digest, PlanVersionRow.id)
        .join(PhaseRow, PhaseRow.subscription_id == SubscriptionRow.id)
        .join(PlanVersionRow, and_(PlanVersionRow.plan_code == PhaseRow.plan_code,
                                   PlanVersionRow.version == PhaseRow.plan_version))
        .where(SubscriptionRow.customer_id == customer_id)
        .order_by(SubscriptionRow.started_at, SubscriptionRow.id, PhaseRow.starts_at)
    ).all()
    out: list[PhaseSpan] = []
    for i, (sid, s_start, s_end, p_start, code, version, anchor, digest, vid) in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) and rows[i + 1][0] == sid else None
        end = nxt[3] if nxt is not None else s_end
        start = max(p_start, s_start)
        if end is not None and end <= start:
            continue
        plan, _ = _plan_of(session, digest, vid)
        out.append(PhaseSpan(start, end, code, version, plan, anchor))
    return out


# --------------------------------------------------------------------------- overrides


def to_override(row: OverrideRow) -> Override:
    from ratecard.entitlements.rules import parse_value

    return Override(id=row.id, customer=row.customer, feature=row.feature,
                    value=parse_value(row.feature, row.value), starts_at=row.starts_at,
                    ends_at=row.ends_at, note=row.note, created_at=row.created_at)


_overrides_stmt = (
    select(OverrideRow)
    .where(OverrideRow.customer == bindparam("customer"),
           OverrideRow.feature == bindparam("feature"),
           OverrideRow.starts_at <= bindparam("at"),
           or_(OverrideRow.ends_at.is_(None), OverrideRow.ends_at > bindparam("at")))
)


def active_overrides(session: Session, customer: str, feature: str, at: datetime) -> list[Override]:
    rows = session.scalars(_overrides_stmt, {"customer": customer, "feature": feature, "at": at})
    return [to_override(r) for r in rows]


def overrides_of(session: Session, customer: str) -> list[OverrideRow]:
    return list(session.scalars(select(OverrideRow).where(OverrideRow.customer == customer)
                                .order_by(OverrideRow.starts_at, OverrideRow.created_at)))


def override_row(session: Session, override_id: str) -> OverrideRow:
    row = session.get(OverrideRow, override_id)
    if row is None:
        raise NotFound(f"no entitlement override {override_id!r}; list them with "
                       "`ratecard entitlements overrides --customer ID`")
    return row


# --------------------------------------------------------------------------- counters


def to_minute(at: datetime) -> int:
    """Minutes since the epoch of the minute containing ``at``."""
    return int((at - EPOCH).total_seconds()) // 60


def from_minute(m: int) -> datetime:
    return EPOCH + timedelta(minutes=m)


def split(q: Decimal) -> tuple[int, int]:
    """``q`` as whole units and billionths (rounded half-up at the 9th decimal)."""
    n = int((q * _NANO_D).to_integral_value())
    units, nanos = divmod(n, NANO)
    return units, nanos


def join(units: int | None, nanos: int | None) -> Decimal:
    u = int(units or 0)
    n = int(nanos or 0)
    return Decimal(u) + Decimal(n) / _NANO_D


def add_counts(session: Session, deltas: Mapping[tuple[str, str, datetime], Decimal]) -> int:
    """Add ``(customer, meter, minute) -> quantity`` to the minute and hour rows (upsert)."""
    rows: dict[tuple[str, str, str, int], int] = {}
    for (customer, meter, at), q in deltas.items():
        m = to_minute(at)
        n = int((q * _NANO_D).to_integral_value())
        for key in ((customer, meter, "m", m), (customer, meter, "h", m - m % 60)):
            rows[key] = rows.get(key, 0) + n
    if not rows:
        return 0
    values = [{"customer": c, "meter": mt, "res": r, "bucket": b,
               "units": n // NANO, "nanos": n % NANO}
              for (c, mt, r, b), n in rows.items()]
    dialect = session.get_bind().dialect.name
    ins: Any = pg_insert(CounterRow) if dialect == "postgresql" else sqlite_insert(CounterRow)
    stmt = ins.on_conflict_do_update(
        index_elements=["customer", "meter", "res", "bucket"],
        set_={"units": CounterRow.units + ins.excluded.units,
              "nanos": CounterRow.nanos + ins.excluded.nanos},
    )
    chunk = 500
    for i in range(0, len(values), chunk):
        session.execute(stmt, values[i:i + chunk])
    return len(values)


def clear_counts(session: Session, customers: Iterable[str] | None = None) -> None:
    stmt = delete(CounterRow)
    if customers is not None:
        stmt = stmt.where(CounterRow.customer.in_(list(customers)))
    session.execute(stmt)


def _pieces(s: int, e: int) -> list[tuple[str, int, int]]:
    """Cover minutes ``[s, e)`` with whole hours and ragged minute ends."""
    h0 = -(-s // 60) * 60
    h1 = e - e % 60
    if h0 >= h1:
        return [("m", s, e)]
    out = [("h", h0, h1)]
    if s < h0:
        out.append(("m", s, h0))
    if h1 < e:
        out.append(("m", h1, e))
    return out


def _range(res: str, lo: int, hi: int) -> Any:
    return and_(CounterRow.res == res, CounterRow.bucket >= lo, CounterRow.bucket < hi)


class SqlCounter:
    """:class:`ratecard.entitlements.rules.UsageCounter` over ``usage_counters``."""

    def __init__(self, session: Session, customer: str) -> None:
        self.session = session
        self.customer = customer

    def _where(self, meter: str) -> Any:
        return and_(CounterRow.customer == self.customer, CounterRow.meter == meter)

    def total(self, meter: str, start: datetime, end: datetime) -> Decimal:
        pieces = _pieces(to_minute(start), to_minute(end))
        cond = or_(*[_range(r, lo, hi) for r, lo, hi in pieces])
        row = self.session.execute(
            select(func.sum(CounterRow.units), func.sum(CounterRow.nanos))
            .where(self._where(meter), cond)
        ).first()
        return join(*(row or (0, 0)))

    def first(self, meter: str, start: datetime, end: datetime) -> datetime | None:
        s, e = to_minute(start), to_minute(end)
        b = self.session.scalar(
            select(func.min(CounterRow.bucket))
            .where(self._where(meter), _range("m", s, e),
                   or_(CounterRow.units != 0, CounterRow.nanos != 0))
        )
        return None if b is None else from_minute(int(b))

    def release(
        self, meter: str, start: datetime, end: datetime, excess: Decimal, strict: bool
    ) -> datetime | None:
        """Walk whole hours first, then the minutes of the hour where ``excess`` is reached."""
        s, e = to_minute(start), to_minute(end)
        cum = Decimal(0)

        def reached(total: Decimal) -> bool:
            return total > excess or (not strict and total >= excess)

        for res, lo, hi in sorted(_pieces(s, e), key=lambda p: p[1]):
            rows = self.session.execute(
                select(CounterRow.bucket, CounterRow.units, CounterRow.nanos)
                .where(self._where(meter), _range(res, lo, hi))
                .order_by(CounterRow.bucket)
            ).all()
            for b, u, n in rows:
                q = join(u, n)
                if q == 0:
                    continue
                if not reached(cum + q):
                    cum += q
                    continue
                if res == "m":
                    return from_minute(int(b))
                # the hour where the excess is reached: its minutes, in order
                for mb, mu, mn in self.session.execute(
                    select(CounterRow.bucket, CounterRow.units, CounterRow.nanos)
                    .where(self._where(meter), _range("m", int(b), int(b) + 60))
                    .order_by(CounterRow.bucket)
                ).all():
                    cum += join(mu, mn)
                    if reached(cum):
                        return from_minute(int(mb))
                return from_minute(int(b) + 59)  # pragma: no cover - hours equal their minutes
        return None


def counter_rows(session: Session, customer: str, meter: str) -> Sequence[tuple[str, int, Decimal]]:
    rows = session.execute(
        select(CounterRow.res, CounterRow.bucket, CounterRow.units, CounterRow.nanos)
        .where(CounterRow.customer == customer, CounterRow.meter == meter)
        .order_by(CounterRow.res, CounterRow.bucket)
    ).all()
    return [(r, int(b), join(u, n)) for r, b, u, n in rows]

