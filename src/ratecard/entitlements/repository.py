"""SQL of entitlements: who the customer is and on which plan version, overrides, counters.

Counters live in ``usage_counters``: per customer and meter, buckets of 1, 5, 30,
180 and 1440 minutes (``lvl``), ``bucket`` = the bucket's first minute since the Unix
epoch (UTC). A window sum reads coarse buckets for its middle and finer ones for its
ragged ends (:func:`pieces`): a 7-day window reads at most about 50 rows and a month
about 75, whatever the traffic. The hot path reads through the session's own DBAPI
connection in one statement per entitlement.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select
from sqlalchemy.orm import Session

from ratecard.catalog.schema import Meter, Plan
from ratecard.entitlements.model import Override
from ratecard.errors import NotFound
from ratecard.store.credits_models import CounterRow, OverrideRow
from ratecard.store.models import (
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
    overrides: int = 0


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


def _plan_sql(ph: str) -> str:
    return (
        "SELECT c.id, c.timezone, c.currency, p.plan_code, p.plan_version, p.anchor, "
        "v.digest, v.id, (SELECT COUNT(*) FROM entitlement_overrides o "
        f"WHERE o.customer = c.external_id AND o.feature = {ph} AND o.starts_at <= {ph} "
        f"AND (o.ends_at IS NULL OR o.ends_at > {ph})) "
        "FROM customers c "
        f"LEFT JOIN subscriptions s ON s.customer_id = c.id AND s.started_at <= {ph} "
        f"AND (s.ends_at IS NULL OR s.ends_at > {ph}) "
        "LEFT JOIN subscription_phases p ON p.subscription_id = s.id "
        f"AND p.starts_at <= {ph} "
        "LEFT JOIN plan_versions v ON v.plan_code = p.plan_code AND v.version = p.plan_version "
        f"WHERE c.external_id = {ph} "
        "ORDER BY CASE WHEN p.starts_at IS NULL THEN 1 ELSE 0 END, p.starts_at DESC LIMIT 1"
    )


_PLAN_SQL = {"?": _plan_sql("?"), "%s": _plan_sql("%s")}


def db_time(dialect: str, at: datetime) -> Any:
    """A UTC instant as the state database stores it (what ``UTCDateTime`` binds)."""
    if dialect == "sqlite":
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return at


def _read_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def customer_plan(
    session: Session, customer: str, at: datetime, feature: str | None = None,
) -> CustomerPlan:
    """The customer and the plan version of its subscription at ``at``.

    Raises :class:`NotFound` for an unknown customer. The version is the one the
    subscription is on (a grandfathered version keeps its entitlements). With
    ``feature``, ``overrides`` counts the overrides of that feature active at ``at``
    (one statement for both: this is the hot path of a check).
    """
    raw, ph, dialect = _dbapi(session)
    t = db_time(dialect, at)
    cur = raw.cursor()
    try:
        cur.execute(_PLAN_SQL[ph], [feature or "", t, t, t, t, t, customer])
        row = cur.fetchone()
    finally:
        cur.close()
    if row is None:
        raise NotFound(
            f"no customer {customer!r}; create it with `ratecard customers create {customer}`"
        )
    cid, tz, currency, code, version, anchor, digest, vid, n_over = row
    if code is None or digest is None:
        return CustomerPlan(cid, customer, tz, currency, overrides=int(n_over or 0))
    plan, meters = _plan_of(session, digest, vid)
    return CustomerPlan(cid, customer, tz, currency, code, int(version), plan, meters,
                        _read_time(anchor), int(n_over or 0))


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

LEVELS: tuple[int, ...] = (1, 5, 30, 180, 1440)
"""Bucket sizes in minutes. Each usage is added to its bucket at every level."""


def to_minute(at: datetime) -> int:
    """Minutes since the epoch of the minute containing ``at``."""
    return int((at - EPOCH).total_seconds()) // 60


def from_minute(m: int) -> datetime:
    return EPOCH + timedelta(minutes=m)


def join(units: int | Decimal | None, nanos: int | Decimal | None) -> Decimal:
    return Decimal(int(units or 0)) + Decimal(int(nanos or 0)) / _NANO_D


def pieces(s: int, e: int) -> list[tuple[int, int, int]]:
    """Cover the minutes ``[s, e)`` with as few buckets as the levels allow.

    Returns ``(level, lo, hi)`` ranges in time order: the buckets of ``level`` whose
    first minute is in ``[lo, hi)``. Coarse buckets fill the middle, finer ones the
    ragged ends, so a range reads at most 2 × (4 + 5 + 5 + 7) buckets plus its days.
    """
    left: list[tuple[int, int, int]] = []
    right: list[tuple[int, int, int]] = []
    lo, hi = s, e
    for size, coarser in itertools.pairwise(LEVELS):
        a = -(-lo // coarser) * coarser
        b = hi - hi % coarser
        if a >= b:
            return [*left, (size, lo, hi), *reversed(right)] if lo < hi else [
                *left, *reversed(right)]
        if lo < a:
            left.append((size, lo, a))
        if b < hi:
            right.append((size, b, hi))
        lo, hi = a, b
    return [*left, (LEVELS[-1], lo, hi), *reversed(right)]


def _dbapi(session: Session) -> tuple[Any, str, str]:
    """The session's own DBAPI connection (same transaction), its placeholder, dialect."""
    conn = session.connection()
    name = conn.dialect.name
    return conn.connection.dbapi_connection, ("?" if name == "sqlite" else "%s"), name


def add_counts(session: Session, deltas: Mapping[tuple[str, str, int], int]) -> int:
    """Add ``(customer, meter, epoch minute) -> billionths`` to the buckets of every level.

    Rows are written in key order, so concurrent ingests lock them in the same order.
    """
    rows: dict[tuple[str, str, int, int], int] = {}
    for (customer, meter, m), n in deltas.items():
        for size in LEVELS:
            key = (customer, meter, size, m - m % size)
            rows[key] = rows.get(key, 0) + n
    if not rows:
        return 0
    raw, ph, dialect = _dbapi(session)
    sql = (f"INSERT INTO usage_counters (customer, meter, lvl, bucket, units, nanos) "
           f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
           "ON CONFLICT (customer, meter, lvl, bucket) DO UPDATE SET "
           "units = usage_counters.units + excluded.units, "
           "nanos = usage_counters.nanos + excluded.nanos")
    items = sorted(rows.items()) if dialect == "postgresql" else rows.items()
    values = [(c, mt, lv, b, n // NANO, n % NANO) for (c, mt, lv, b), n in items]
    cur = raw.cursor()
    try:
        cur.executemany(sql, values)
    finally:
        cur.close()
    return len(values)


def minute_deltas(
    deltas: Mapping[tuple[str, str, datetime], Decimal],
) -> dict[tuple[str, str, int], int]:
    """``(customer, meter, minute datetime) -> quantity`` as epoch minutes and billionths."""
    out: dict[tuple[str, str, int], int] = {}
    for (c, m, at), q in deltas.items():
        key = (c, m, to_minute(at))
        out[key] = out.get(key, 0) + int((q * _NANO_D).to_integral_value())
    return out


def clear_counts(
    session: Session, customers: Iterable[str] | None = None, *, since: datetime | None = None,
) -> None:
    """Delete counter rows (of ``customers``; with buckets starting at or after ``since``)."""
    stmt = delete(CounterRow)
    if customers is not None:
        stmt = stmt.where(CounterRow.customer.in_(list(customers)))
    if since is not None:
        stmt = stmt.where(CounterRow.bucket >= to_minute(since))
    session.execute(stmt)


_sql_cache: dict[tuple[str, tuple[int, ...], int], str] = {}


def _window_sql(ph: str, npieces: tuple[int, ...], nfirst: int) -> str:
    key = (ph, npieces, nfirst)
    hit = _sql_cache.get(key)
    if hit is not None:
        return hit
    part = (f"SELECT {{w}} AS w, units AS u, nanos AS n FROM usage_counters WHERE customer = {ph}"
            f" AND meter = {ph} AND lvl = {ph} AND bucket >= {ph} AND bucket < {ph}")
    inner = " UNION ALL ".join(part.format(w=w) for w, n in enumerate(npieces) for _ in range(n))
    sql = (f"SELECT w, SUM(u), SUM(n) FROM ({inner}) AS p GROUP BY w" if inner
           else "SELECT 0, 0, 0 WHERE 1 = 0")
    for i in range(nfirst):
        sql += (f" UNION ALL SELECT {1000 + i}, (SELECT MIN(bucket) FROM usage_counters "
                f"WHERE customer = {ph} AND meter = {ph} AND lvl = 1 AND bucket >= {ph} AND "
                f"bucket < {ph} AND (units <> 0 OR nanos <> 0)), 0")
    _sql_cache[key] = sql
    return sql


class SqlCounter:
    """:class:`ratecard.entitlements.rules.UsageCounter` over ``usage_counters``.

    :meth:`prefetch` reads the totals (and oldest buckets) of several windows in one
    statement; :meth:`total` and :meth:`first` answer from it when they can.
    """

    def __init__(self, session: Session, customer: str) -> None:
        self.session = session
        self.customer = customer
        self._totals: dict[tuple[str, int, int], Decimal] = {}
        self._firsts: dict[tuple[str, int, int], datetime | None] = {}

    def prefetch(
        self, meter: str, spans: Sequence[tuple[datetime, datetime]],
        firsts: Sequence[tuple[datetime, datetime]] = (),
    ) -> None:
        raw, ph, _ = _dbapi(self.session)
        ranges = [(to_minute(s), to_minute(e)) for s, e in spans]
        fr = [(to_minute(s), to_minute(e)) for s, e in firsts]
        plan = [pieces(s, e) for s, e in ranges]
        sql = _window_sql(ph, tuple(len(p) for p in plan), len(fr))
        params: list[Any] = []
        for p in plan:
            for lvl, lo, hi in p:
                params += [self.customer, meter, lvl, lo, hi]
        for s, e in fr:
            params += [self.customer, meter, s, e]
        cur = raw.cursor()
        try:
            cur.execute(sql, params)
            rows = cur.fetchall()
        finally:
            cur.close()
        got = {int(w): (u, n) for w, u, n in rows}
        for i, (s, e) in enumerate(ranges):
            u, n = got.get(i, (0, 0))
            self._totals[(meter, s, e)] = join(u, n)
        for i, (s, e) in enumerate(fr):
            b = got.get(1000 + i, (None, 0))[0]
            self._firsts[(meter, s, e)] = None if b is None else from_minute(int(b))

    def total(self, meter: str, start: datetime, end: datetime) -> Decimal:
        key = (meter, to_minute(start), to_minute(end))
        if key not in self._totals:
            self.prefetch(meter, [(start, end)])
        return self._totals[key]

    def first(self, meter: str, start: datetime, end: datetime) -> datetime | None:
        key = (meter, to_minute(start), to_minute(end))
        if key not in self._firsts:
            self.prefetch(meter, [], [(start, end)])
        return self._firsts[key]

    def release(
        self, meter: str, start: datetime, end: datetime, excess: Decimal, strict: bool
    ) -> datetime | None:
        """Walk the window's buckets in time order (one statement), then descend into the
        bucket where ``excess`` is reached, level by level down to the minute. Sums are
        kept in exact billionths."""
        limit = excess * _NANO_D

        def reached(total: int) -> bool:
            return total > limit or (not strict and total >= limit)

        raw, ph, _ = _dbapi(self.session)
        plan = pieces(to_minute(start), to_minute(end))
        if not plan:
            return None
        part = (f"SELECT lvl, bucket, units, nanos FROM usage_counters WHERE customer = {ph} "
                f"AND meter = {ph} AND lvl = {ph} AND bucket >= {ph} AND bucket < {ph}")
        sql = " UNION ALL ".join([part] * len(plan)) + " ORDER BY 2, 1 DESC"
        params: list[Any] = []
        for lvl, lo, hi in plan:
            params += [self.customer, meter, lvl, lo, hi]
        cur = raw.cursor()
        try:
            cur.execute(sql, params)
            rows = [(int(lv), int(b), int(u) * NANO + int(n)) for lv, b, u, n in cur.fetchall()]
            cum = 0
            while rows:
                for lvl, b, q in rows:
                    if q == 0:
                        continue
                    if not reached(cum + q):
                        cum += q
                        continue
                    if lvl == 1:
                        return from_minute(b)
                    finer = LEVELS[LEVELS.index(lvl) - 1]
                    cur.execute(
                        f"SELECT bucket, units, nanos FROM usage_counters WHERE customer = {ph} "
                        f"AND meter = {ph} AND lvl = {ph} AND bucket >= {ph} AND bucket < {ph} "
                        "ORDER BY bucket", [self.customer, meter, finer, b, b + lvl])
                    rows = [(finer, int(fb), int(u) * NANO + int(n))
                            for fb, u, n in cur.fetchall()]
                    break
                else:
                    return None
        finally:
            cur.close()
        return None

def counter_rows(session: Session, customer: str, meter: str) -> Sequence[tuple[int, int, Decimal]]:
    rows = session.execute(
        select(CounterRow.lvl, CounterRow.bucket, CounterRow.units, CounterRow.nanos)
        .where(CounterRow.customer == customer, CounterRow.meter == meter)
        .order_by(CounterRow.lvl, CounterRow.bucket)
    ).all()
    return [(int(r), int(b), join(u, n)) for r, b, u, n in rows]
