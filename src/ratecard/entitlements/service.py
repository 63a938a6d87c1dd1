"""May this customer do this? Checks, overrides, and the counters kept at ingestion.

* :func:`check` answers ``{allowed, limit, used, remaining, resets_at, reason}`` for
  one customer and feature at one instant, optionally for a requested quantity,
  consuming nothing. It reads the plan version of the customer's subscription (a
  grandfathered version keeps its limits), active overrides and the usage counters:
  never the events.
* :func:`on_events_ingested` is called by the ingest path with the events it has
  just stored: it adds them to the minute/hour counters and burns the credits that
  credit meters cost under each customer's plan.
* :func:`rebuild_counters` recomputes counters from events (after a meter changed,
  or to backfill).

Every function takes a session and never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ratecard.catalog.schema import Catalog, Meter, Plan
from ratecard.clock import ensure_utc, iso, utc_now
from ratecard.entitlements import repository as repo
from ratecard.entitlements import rules
from ratecard.entitlements.model import CheckResult, Entitlement, Override
from ratecard.errors import EventInvalid, InvalidInput, NotFound, TimeInvalid
from ratecard.metering.model import Event
from ratecard.money import D
from ratecard.store.credits_models import OverrideRow

# --------------------------------------------------------------------------- check


def check(
    session: Session,
    customer: str,
    feature: str,
    *,
    quantity: Decimal | int | str | None = None,
    value: Any = None,
    at: datetime | None = None,
) -> CheckResult:
    """Answer "may ``customer`` use ``feature`` (``quantity`` more of it) at ``at``?".

    Raises :class:`NotFound` for an unknown customer, or for a feature that no plan
    and no override defines. A feature of other plans only answers ``allowed:
    false`` with the reason.
    """
    at = ensure_utc(at or utc_now())
    q = D(quantity) if quantity is not None else None
    cp = repo.customer_plan(session, customer, at, feature)
    plan = cp.plan
    overrides = repo.active_overrides(session, customer, feature, at) if cp.overrides else []
    ent = rules.resolve(feature, plan.entitlements if plan is not None else {}, overrides, at,
                        f"{cp.plan_code} v{cp.plan_version}" if plan is not None else "")
    pc = plan.credits if plan is not None else None
    credit_meter = pc is not None and feature in pc.burn
    if ent is None and not credit_meter:
        return _not_included(session, cp, feature, q, at)
    result: CheckResult | None = None
    if ent is not None:
        if ent.kind == "metered":
            _check_meter(session, ent, cp.meters)
        counter = None
        if ent.kind == "metered":
            counter = repo.SqlCounter(session, customer)
            spans = [rules.window_bounds(lim.window, at, cp.timezone)[0] for lim in ent.limits]
            counter.prefetch(ent.meter or "", [(w.start, w.end) for w in spans],
                             [(w.start, w.end) for w, lim in zip(spans, ent.limits, strict=True)
                              if lim.window.kind == "rolling"])
        result = rules.evaluate(ent, counter, at, quantity=q, value=value, tz=cp.timezone,
                                customer=customer)
    if credit_meter:
        assert pc is not None
        from ratecard.credits import service as credits

        balance = credits.available(session, customer, at=at)
        cr = rules.evaluate_credits(feature, pc, balance, quantity=q, customer=customer,
                                    source=f"plan:{cp.plan_code} v{cp.plan_version}")
        result = cr if result is None else rules.combine(result, cr)
    assert result is not None
    return result


def _check_meter(session: Session, ent: Entitlement, meters: Mapping[str, Meter] | None) -> None:
    meter = (meters or {}).get(ent.meter or "")
    if meter is None:
        from ratecard.billing.catalogs import current_catalog

        cat = current_catalog(session)
        meter = cat.meters.get(ent.meter or "") if cat is not None else None
    if meter is None:
        raise NotFound(f"entitlement {ent.feature!r} counts meter {ent.meter!r}, which no "
                       "catalog defines; add the meter or fix the entitlement")
    if not rules.additive(meter):
        raise InvalidInput(
            f"entitlement {ent.feature!r} limits meter {ent.meter!r} ({meter.aggregation}); "
            "windows are counted for count and sum meters only"
        )


_features: dict[str, frozenset[str]] = {}


def known_features(session: Session) -> frozenset[str]:
    """Every entitlement and credit meter of every stored plan version (cached per state)."""
    from sqlalchemy import func

    from ratecard.store.models import PlanVersionRow

    key_row = session.execute(select(func.count(PlanVersionRow.id),
                                     func.max(PlanVersionRow.id))).first()
    key = f"{session.get_bind().engine.url}:{tuple(key_row or ())}"
    hit = _features.get(key)
    if hit is not None:
        return hit
    names: set[str] = set()
    for definition in session.scalars(select(PlanVersionRow.definition)):
        p = definition.get("plan", {})
        names.update(p.get("entitlements", {}) or {})
        names.update((p.get("credits") or {}).get("burn") or {})
    out = frozenset(names)
    _features[key] = out
    return out


def _not_included(
    session: Session, cp: repo.CustomerPlan, feature: str, q: Decimal | None, at: datetime,
) -> CheckResult:
    if feature not in known_features(session):
        have = sorted((cp.plan.entitlements if cp.plan else {}).keys())
        raise NotFound(
            f"unknown feature {feature!r}: no plan defines it"
            + (f"; plan {cp.plan_code} has {', '.join(have)}" if have else "")
        )
    if cp.plan is None:
        reason = f"customer {cp.customer!r} has no active subscription at {iso(at)}"
    else:
        reason = f"{feature} is not included in plan {cp.plan_code} (v{cp.plan_version})"
    return CheckResult(allowed=False, limit=None, used=None, remaining=None, resets_at=None,
                       reason=reason, feature=feature, customer=cp.customer, kind="none",
                       quantity=q, source=f"plan:{cp.plan_code}" if cp.plan_code else "")


def entitlements_of(session: Session, customer: str, *, at: datetime | None = None) -> dict[
        str, Entitlement]:
    """Every entitlement in force for a customer (plan values with overrides applied)."""
    at = ensure_utc(at or utc_now())
    cp = repo.customer_plan(session, customer, at)
    plan: Plan | None = cp.plan
    base = dict(plan.entitlements) if plan is not None else {}
    overrides = [repo.to_override(r) for r in repo.overrides_of(session, customer)]
    features = set(base) | {o.feature for o in overrides if o.active_at(at)}
    out = {}
    for f in sorted(features):
        e = rules.resolve(f, base, overrides, at, f"{cp.plan_code} v{cp.plan_version}")
        if e is not None:
            out[f] = e
    return out


# --------------------------------------------------------------------------- overrides


def set_override(
    session: Session,
    customer: str,
    feature: str,
    value: Any,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    note: str = "",
    at: datetime | None = None,
) -> Override:
    """Give one customer a different entitlement for ``feature`` in ``[starts_at, ends_at)``."""
    at = ensure_utc(at or utc_now())
    start = ensure_utc(starts_at) if starts_at is not None else at
    end = ensure_utc(ends_at) if ends_at is not None else None
    if end is not None and end <= start:
        raise TimeInvalid(f"override end {iso(end)} is not after its start {iso(start)}")
    if not feature or not feature.strip():
        raise InvalidInput("an override needs a feature name")
    parsed = rules.parse_value(feature, value)
    rules.from_value(feature, parsed)  # refuses what cannot be evaluated (windows, types)
    cp = repo.customer_plan(session, customer, at)
    stored = parsed.model_dump(mode="json", exclude_none=True) if hasattr(
        parsed, "model_dump") else parsed
    if isinstance(stored, dict):
        stored.pop("limit", None)
        stored.pop("window", None)
    row = OverrideRow(id=f"ovr-{uuid.uuid4().hex[:12]}", customer_id=cp.customer_id,
                      customer=customer, feature=feature, value=stored, starts_at=start,
                      ends_at=end, note=note, created_at=at)
    session.add(row)
    session.flush()
    return repo.to_override(row)


def end_override(session: Session, override_id: str, *, at: datetime | None = None) -> Override:
    """End an override now (or at ``at``); an override that already ended is refused."""
    at = ensure_utc(at or utc_now())
    row = repo.override_row(session, override_id)
    if row.ends_at is not None and row.ends_at <= at:
        from ratecard.errors import Conflict

        raise Conflict(f"override {override_id} already ended at {iso(row.ends_at)}")
    row.ends_at = max(at, row.starts_at)
    session.flush()
    return repo.to_override(row)


def list_overrides(session: Session, customer: str) -> list[Override]:
    repo.customer_plan(session, customer, utc_now())  # NotFound for an unknown customer
    return [repo.to_override(r) for r in repo.overrides_of(session, customer)]


# --------------------------------------------------------------------------- ingestion


@dataclass
class IngestEffects:
    """What :func:`on_events_ingested` did: counter rows touched, credit burns, problems."""

    counter_rows: int = 0
    burns: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_NANO = 10**9
_MINUTE = timedelta(minutes=1)


def _contributors(meters: Mapping[str, Meter]) -> dict[str, list[tuple[str, Meter, bool]]]:
    """Per event type, the additive meters reading it (flag: a plain count, 1 per event)."""
    by_type: dict[str, list[tuple[str, Meter, bool]]] = {}
    for name, m in meters.items():
        if rules.additive(m):
            plain = m.aggregation == "count" and not m.filter and m.weights is None
            by_type.setdefault(m.event, []).append((name, m, plain))
    return by_type


def _deltas(
    events: Iterable[Event], meters: Mapping[str, Meter], errors: list[str],
    *, track: frozenset[str] = frozenset(),
) -> tuple[dict[tuple[str, str, int], int], dict[tuple[str, str, int], tuple[datetime, str]]]:
    """Per (customer, meter, epoch minute): the quantity in billionths; for the meters in
    ``track``, also the latest event time and the first event id."""
    by_type = _contributors(meters)
    out: dict[tuple[str, str, int], int] = {}
    last: dict[tuple[str, str, int], tuple[datetime, str]] = {}
    for ev in events:
        found = by_type.get(ev.type)
        if not found:
            continue
        minute = (ev.timestamp - repo.EPOCH) // _MINUTE
        for name, m, plain in found:
            if plain:
                n = _NANO
            else:
                try:
                    q = rules.contribution(name, m, ev)
                except EventInvalid as e:
                    errors.append(str(e))
                    continue
                if q is None or q == 0:
                    continue
                n = int((q * _NANO).to_integral_value())
            key = (ev.customer, name, minute)
            out[key] = out.get(key, 0) + n
            if name in track:
                prev = last.get(key)
                last[key] = (ev.timestamp, ev.event_id) if prev is None else (
                    max(prev[0], ev.timestamp), min(prev[1], ev.event_id))
    return out, last


def credit_meters(session: Session) -> frozenset[str]:
    """Meters that burn credits in any stored plan version (cached per state)."""
    from sqlalchemy import func

    from ratecard.store.models import PlanVersionRow

    key_row = session.execute(select(func.count(PlanVersionRow.id),
                                     func.max(PlanVersionRow.id))).first()
    key = f"credits:{session.get_bind().engine.url}:{tuple(key_row or ())}"
    hit = _features.get(key)
    if hit is not None:
        return hit
    names: set[str] = set()
    for definition in session.scalars(select(PlanVersionRow.definition)):
        names.update((definition.get("plan", {}).get("credits") or {}).get("burn") or {})
    out = frozenset(names)
    _features[key] = out
    return out


def on_events_ingested(
    session: Session,
    events: Sequence[Event],
    catalog: Catalog,
    *,
    burn_credits: bool = True,
) -> IngestEffects:
    """Keep checks current with newly stored events (call once per stored batch).

    Adds each event to the counters of every count/sum meter of ``catalog`` it
    matches, and burns the credits of credit meters under each customer's plan at the
    event's time (partial burns: a shortfall is recorded for overage or blocking).
    Pass only events that were actually stored (not duplicates): counters add, they
    do not deduplicate. Problems (an unknown weight) are collected per event; the
    rest goes on.
    """
    effects = IngestEffects()
    track = credit_meters(session) if burn_credits else frozenset()
    deltas, last = _deltas(events, catalog.meters, effects.errors, track=track)
    effects.counter_rows = repo.add_counts(session, deltas)
    if track and last:
        effects.burns = _burn_credits(session, deltas, last, catalog)
    return effects


def on_table_ingested(
    session: Session, table: Any, catalog: Catalog, *, burn_credits: bool = True,
) -> IngestEffects:
    """:func:`on_events_ingested` for the rows a usage store just stored, as an Arrow table
    with ``event_id``, ``type``, ``customer``, ``ts`` (or ``timestamp``) and
    ``properties`` (JSON text). Rows of event types no count/sum meter reads are skipped
    without being parsed."""
    import json

    import pyarrow.compute as pc

    types = sorted({m.event for m in catalog.meters.values() if rules.additive(m)})
    if table.num_rows == 0 or not types:
        return IngestEffects()
    import pyarrow as pa

    table = table.filter(pc.is_in(table.column("type"), value_set=pa.array(types)))
    ts_col = "ts" if "ts" in table.column_names else "timestamp"
    events = [
        Event(eid, typ, cust, ts, json.loads(props, parse_float=Decimal) if props else {})
        for eid, typ, cust, ts, props in zip(
            table.column("event_id").to_pylist(), table.column("type").to_pylist(),
            table.column("customer").to_pylist(), table.column(ts_col).to_pylist(),
            table.column("properties").to_pylist(), strict=True)
    ]
    return on_events_ingested(session, events, catalog, burn_credits=burn_credits)


def on_event_voided(session: Session, event: Event, catalog: Catalog) -> int:
    """Take a voided (retracted) event back out of the counters. Credits it burned are
    not returned (grant them back with ``ratecard credits grant`` if due)."""
    errors: list[str] = []
    deltas, _ = _deltas([event], catalog.meters, errors)
    return repo.add_counts(session, {k: -v for k, v in deltas.items()})


def _burn_credits(
    session: Session,
    deltas: Mapping[tuple[str, str, int], int],
    last: Mapping[tuple[str, str, int], tuple[datetime, str]],
    catalog: Catalog,
) -> list[Any]:
    """One :func:`ratecard.credits.service.burn_many` per customer: a burn per meter and
    minute with usage, at the minute's latest event, under the plan in force then."""
    from ratecard.credits import service as credits
    from ratecard.credits.repository import customer_row

    by_customer: dict[str, list[tuple[str, str, int]]] = {}
    for key in last:
        by_customer.setdefault(key[0], []).append(key)
    burns: list[Any] = []
    for customer in sorted(by_customer):
        try:
            cust = customer_row(session, customer)
        except NotFound:
            continue  # events of a customer not created yet: counted, nothing to burn
        phases = repo.customer_phases(session, cust.id)
        if not any(ph.plan.credits is not None and ph.plan.credits.burn for ph in phases):
            continue
        usage = []
        for key in sorted(by_customer[customer], key=lambda k: (k[2], k[1])):
            _, meter, minute = key
            at, first_id = last[key]
            usage.append((at, meter, repo.join(0, deltas[key]),
                          f"ingest:{iso(repo.from_minute(minute))}:{first_id}:{meter}"))
        reqs = credits.usage_requests(phases, usage)
        burns.extend(credits.burn_many(session, customer, reqs, catalog=catalog))
    return burns


def rebuild_counters(
    session: Session,
    events: Iterable[Event],
    catalog: Catalog,
    *,
    customers: Iterable[str] | None = None,
    since: datetime | None = None,
    batch: int = 50_000,
) -> int:
    """Replace the counters (of ``customers``, or all; from ``since``, or all time) with
    those of ``events``, which must hold every stored event of that scope.

    ``since`` is moved back to its UTC midnight, so that every counter bucket is either
    wholly rebuilt or left alone. Burns nothing. Returns the number of events read.
    """
    wanted = set(customers) if customers is not None else None
    start = None
    if since is not None:
        since = ensure_utc(since)
        start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    repo.clear_counts(session, wanted, since=start)
    n = 0
    chunk: list[Event] = []
    errors: list[str] = []
    for ev in events:
        if wanted is not None and ev.customer not in wanted:
            continue
        if start is not None and ev.timestamp < start:
            continue
        chunk.append(ev)
        n += 1
        if len(chunk) >= batch:
            repo.add_counts(session, _deltas(chunk, catalog.meters, errors)[0])
            chunk = []
    if chunk:
        repo.add_counts(session, _deltas(chunk, catalog.meters, errors)[0])
    return n


def rebuild_from_store(
    session: Session,
    store: Any,
    catalog: Catalog,
    *,
    customers: Sequence[str] | None = None,
    since: datetime | None = None,
) -> int:
    """:func:`rebuild_counters` from a usage store's events (voided ones left out): the
    repair after a bulk file ingest or a void made outside the API."""
    from ratecard.clock import Window

    types = sorted({m.event for m in catalog.meters.values() if rules.additive(m)})
    if not types:
        return 0
    window = None
    if since is not None:
        start = ensure_utc(since).replace(hour=0, minute=0, second=0, microsecond=0)
        window = Window(start, datetime(9999, 1, 1, tzinfo=start.tzinfo))
    events = store.scan(window=window, customers=list(customers) if customers else None,
                        types=types)
    return rebuild_counters(session, events, catalog, customers=customers, since=since)


def window_usage(
    session: Session, customer: str, meter: str, start: datetime, end: datetime
) -> Decimal:
    """Counted usage of ``meter`` in the minute buckets of ``[start, end)``."""
    return repo.SqlCounter(session, customer).total(meter, ensure_utc(start), ensure_utc(end))
