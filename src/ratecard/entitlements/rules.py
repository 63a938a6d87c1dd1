"""Entitlement rules: resolve plan + overrides, count windows, answer a check (pure).

A check reads usage through a :class:`UsageCounter` (minute buckets per customer
and meter): the service passes one backed by the counter tables kept current at
ingestion; :class:`MemoryCounter` keeps the same buckets in memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from ratecard.catalog.schema import Meter, Metered, PlanCredits
from ratecard.clock import Window, ensure_utc, iso, parse_duration, period_containing, zone
from ratecard.entitlements.model import (
    BUCKET,
    CALENDAR_UNITS,
    CheckResult,
    Entitlement,
    LimitSpec,
    Override,
    WindowResult,
    WindowSpec,
)
from ratecard.errors import EventInvalid, InvalidAmount, InvalidInput
from ratecard.metering.model import Event
from ratecard.money import ZERO, D, to_str

# --------------------------------------------------------------------------- windows


@lru_cache(maxsize=256)
def parse_window(text: str) -> WindowSpec:
    """``day``/``week``/``month`` (calendar) or a duration like ``5h``/``7d`` (rolling)."""
    if text in CALENDAR_UNITS:
        return WindowSpec(text=text, kind="calendar", unit=text)
    length = parse_duration(text)
    if length % BUCKET:
        raise InvalidInput(f"window {text!r}: a rolling window is a whole number of minutes")
    return WindowSpec(text=text, kind="rolling", length=length)


def floor_minute(at: datetime) -> datetime:
    at = ensure_utc(at)
    return at.replace(second=0, microsecond=0)


_ANCHORS = {"day": (2000, 1, 1), "week": (2000, 1, 3), "month": (2000, 1, 1)}  # 2000-01-03: Mon


@lru_cache(maxsize=4096)
def _calendar_period(unit: str, tz: str, key: tuple[int, int, int, int]) -> Window:
    # key is the local (year, month, day, hour) of the instant; periods only depend on it
    y, m, d, h = key
    local = datetime(y, m, d, h, tzinfo=zone(tz))
    anchor = datetime(*_ANCHORS[unit], tzinfo=zone(tz))
    return period_containing(anchor, unit, local, tz)


def calendar_period(unit: str, at: datetime, tz: str = "UTC") -> Window:
    """The calendar ``day``/``week`` (Monday)/``month`` containing ``at`` in ``tz``."""
    at = ensure_utc(at)
    local = at.astimezone(zone(tz))
    p = _calendar_period(unit, tz, (local.year, local.month, local.day, local.hour))
    if at in p:
        return p
    # within an hour that straddles a DST change or a non-hour offset: compute exactly
    anchor = datetime(*_ANCHORS[unit], tzinfo=zone(tz))
    return period_containing(anchor, unit, at, tz)


def window_bounds(
    spec: WindowSpec, at: datetime, tz: str = "UTC"
) -> tuple[Window, datetime | None]:
    """The buckets a limit counts at ``at`` as a half-open span, and the calendar reset.

    Rolling ``d``: minutes ``(minute(at) - d, minute(at)]``; calendar: from the
    period start to the current minute; the second value is the next period start
    for calendar windows, None for rolling ones.
    """
    return _bounds(spec, floor_minute(at), tz)


@lru_cache(maxsize=8192)
def _bounds(spec: WindowSpec, minute: datetime, tz: str) -> tuple[Window, datetime | None]:
    end = minute + BUCKET
    if spec.kind == "rolling":
        assert spec.length is not None
        return Window(end - spec.length, end), None
    assert spec.unit is not None
    period = calendar_period(spec.unit, minute, tz)
    return Window(period.start, end), period.end


# --------------------------------------------------------------------------- counters


class UsageCounter(Protocol):
    """Usage of one customer per meter in minute buckets (``start``/``end`` on minutes)."""

    def total(self, meter: str, start: datetime, end: datetime) -> Decimal:
        """The usage in the buckets of ``[start, end)``."""
        ...

    def first(self, meter: str, start: datetime, end: datetime) -> datetime | None:
        """The oldest bucket of ``[start, end)`` with non-zero usage."""
        ...

    def release(
        self, meter: str, start: datetime, end: datetime, excess: Decimal, strict: bool
    ) -> datetime | None:
        """The oldest bucket ``b`` of ``[start, end)`` such that the usage of the buckets
        from ``start`` through ``b`` is ``>= excess`` (``> excess`` when ``strict``)."""
        ...


class MemoryCounter:
    """Minute buckets in memory: ``add(meter, at, quantity)``; implements UsageCounter."""

    def __init__(self) -> None:
        self._keys: dict[str, list[datetime]] = {}
        self._vals: dict[str, dict[datetime, Decimal]] = {}

    def add(self, meter: str, at: datetime, quantity: Decimal) -> None:
        b = floor_minute(at)
        vals = self._vals.setdefault(meter, {})
        if b not in vals:
            bisect.insort(self._keys.setdefault(meter, []), b)
            vals[b] = ZERO
        vals[b] += quantity

    def buckets(self, meter: str, start: datetime, end: datetime) -> list[tuple[datetime, Decimal]]:
        keys = self._keys.get(meter, [])
        lo = bisect.bisect_left(keys, start)
        hi = bisect.bisect_left(keys, end)
        vals = self._vals[meter] if keys else {}
        return [(k, vals[k]) for k in keys[lo:hi] if vals[k] != 0]

    def total(self, meter: str, start: datetime, end: datetime) -> Decimal:
        return sum((q for _, q in self.buckets(meter, start, end)), ZERO)

    def first(self, meter: str, start: datetime, end: datetime) -> datetime | None:
        b = self.buckets(meter, start, end)
        return b[0][0] if b else None

    def release(
        self, meter: str, start: datetime, end: datetime, excess: Decimal, strict: bool
    ) -> datetime | None:
        cum = ZERO
        for b, q in self.buckets(meter, start, end):
            cum += q
            if cum > excess or (not strict and cum >= excess):
                return b
        return None


# --------------------------------------------------------------------------- meters → counters


def _matches(filter_: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    for key, want in filter_.items():
        if key not in props:
            return False
        have = props[key]
        if isinstance(want, list):
            if not any(_same(have, w) for w in want):
                return False
        elif not _same(have, want):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b or str(a) == str(b)


def additive(meter: Meter) -> bool:
    """Meters whose windows can be summed from buckets (``count`` and ``sum``)."""
    return meter.aggregation in ("count", "sum")


def contribution(name: str, meter: Meter, event: Event) -> Decimal | None:
    """What one event adds to an additive meter (None: the event does not count).

    ``count`` adds 1 (or the event's weight), ``sum`` the property's value (times
    the weight). An unknown weight value or a non-numeric property is an
    :class:`EventInvalid` naming the event.
    """
    if event.type != meter.event or not additive(meter):
        return None
    props = event.properties
    if meter.filter and not _matches(meter.filter, props):
        return None
    weight = Decimal(1)
    if meter.weights is not None:
        raw = props.get(meter.weights.property)
        if raw is None or str(raw) not in meter.weights.values:
            raise EventInvalid(
                f"event {event.event_id}: meter {name!r} weighs by "
                f"{meter.weights.property!r}; value {raw!r} has no weight (known: "
                f"{', '.join(sorted(meter.weights.values))})"
            )
        weight = meter.weights.values[str(raw)]
    if meter.aggregation == "count":
        return weight
    assert meter.property is not None
    raw = props.get(meter.property)
    if raw is None:
        return None
    try:
        value = D(str(raw)) if isinstance(raw, float) else D(raw)
    except InvalidAmount:
        raise EventInvalid(
            f"event {event.event_id}: property {meter.property!r} of meter {name!r} is "
            f"{raw!r}, not a number"
        ) from None
    return value * weight


def bucket_deltas(
    events: Iterable[Event], meters: Mapping[str, Meter]
) -> dict[tuple[str, str, datetime], Decimal]:
    """Sum events into ``(customer, meter, minute) -> quantity`` for additive meters."""
    by_type: dict[str, list[tuple[str, Meter]]] = {}
    for name, m in meters.items():
        if additive(m):
            by_type.setdefault(m.event, []).append((name, m))
    out: dict[tuple[str, str, datetime], Decimal] = {}
    for ev in events:
        for name, m in by_type.get(ev.type, ()):
            q = contribution(name, m, ev)
            if q is None or q == 0:
                continue
            key = (ev.customer, name, floor_minute(ev.timestamp))
            out[key] = out.get(key, ZERO) + q
    return out


# --------------------------------------------------------------------------- resolution


def from_value(feature: str, value: Any, source: str = "") -> Entitlement:
    """An :class:`Entitlement` from a catalog value (bool, int, str, list or Metered)."""
    if isinstance(value, Metered):
        limits = tuple(LimitSpec(limit=lim.limit, window=parse_window(lim.window))
                       for lim in value.limits)
        return Entitlement(feature=feature, kind="metered", meter=value.meter, limits=limits,
                           hard=value.hard, overage_unit_price=value.overage_unit_price,
                           source=source)
    if isinstance(value, bool):
        return Entitlement(feature=feature, kind="boolean", value=value, source=source)
    if isinstance(value, int | str | list | tuple | Decimal):
        v = list(value) if isinstance(value, tuple) else value
        return Entitlement(feature=feature, kind="config", value=v, source=source)
    raise InvalidInput(f"entitlement {feature!r}: unsupported value {value!r}")


def parse_value(feature: str, value: Any) -> Any:
    """An entitlement value from JSON/YAML data (bool, int, text, list or a metered dict)."""
    from pydantic import TypeAdapter, ValidationError

    from ratecard.catalog.schema import EntitlementValue

    try:
        return TypeAdapter(EntitlementValue).validate_python(value)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in (
            "metered", "boolean", "list", "number", "text"))
        raise InvalidInput(
            f"entitlement {feature!r}: {first.get('msg')}"
            + (f" at {where}" if where else "")
            + "; give true/false, a number, text, a list, or "
            '{"meter": M, "limits": [{"limit": N, "window": "5h"}]}'
        ) from None


def active_override(overrides: Iterable[Override], feature: str, at: datetime) -> Override | None:
    """The override in force for ``feature`` at ``at``: the latest to start wins."""
    best: Override | None = None
    for o in overrides:
        if o.feature != feature or not o.active_at(at):
            continue
        if best is None or (o.starts_at, o.created_at or o.starts_at, o.id) > (
                best.starts_at, best.created_at or best.starts_at, best.id):
            best = o
    return best


def resolve(
    feature: str,
    plan_entitlements: Mapping[str, Any],
    overrides: Iterable[Override],
    at: datetime,
    plan_code: str = "",
) -> Entitlement | None:
    """The entitlement in force: an active override, else the plan's value, else None."""
    o = active_override(overrides, feature, at)
    if o is not None:
        return from_value(feature, o.value, f"override:{o.id}")
    if feature in plan_entitlements:
        return from_value(feature, plan_entitlements[feature], f"plan:{plan_code}")
    return None


# --------------------------------------------------------------------------- evaluation


def _window_result(
    lim: LimitSpec,
    counter: UsageCounter,
    meter: str,
    at: datetime,
    quantity: Decimal | None,
    tz: str,
    hard: bool,
) -> WindowResult:
    span, period_end = window_bounds(lim.window, at, tz)
    used = counter.total(meter, span.start, span.end)
    ask = quantity if quantity is not None else ZERO
    fits = used + ask <= lim.limit if quantity is not None else used < lim.limit
    remaining = max(lim.limit - used, ZERO)
    overage = max(used + ask - lim.limit, ZERO)
    resets_at: datetime | None
    retry_at: datetime | None = None
    possible = ask <= lim.limit if quantity is not None else lim.limit > 0
    if lim.window.kind == "calendar":
        resets_at = period_end
        if not fits and possible:
            retry_at = period_end
    else:
        assert lim.window.length is not None
        resets_at = None
        if used > 0:
            oldest = counter.first(meter, span.start, span.end)
            if oldest is not None:
                resets_at = oldest + lim.window.length
            if not fits and possible:
                # the buckets that must leave: with a quantity, used - left + ask <= limit;
                # without, used - left < limit
                excess = used + ask - lim.limit
                b = counter.release(meter, span.start, span.end, excess,
                                    strict=quantity is None)
                if b is not None:
                    retry_at = b + lim.window.length
    return WindowResult(window=lim.window.text, limit=lim.limit, used=used, remaining=remaining,
                        start=span.start, end=span.end, resets_at=resets_at,
                        allowed=fits or not hard, overage=overage, retry_at=retry_at)


def _binding(windows: Sequence[WindowResult]) -> WindowResult:
    denied = [w for w in windows if not w.allowed]
    if denied:
        # the one denying longest: never (None) first, then the latest retry time
        return max(denied, key=lambda w: (w.retry_at is None,
                                          w.retry_at or datetime.min.replace(tzinfo=UTC)))
    far = datetime.max.replace(tzinfo=UTC)
    return min(windows, key=lambda w: (w.remaining, -(w.resets_at or far).timestamp()))


def evaluate(
    ent: Entitlement,
    counter: UsageCounter | None,
    at: datetime,
    *,
    quantity: Decimal | None = None,
    value: Any = None,
    tz: str = "UTC",
    customer: str = "",
) -> CheckResult:
    """Answer a check for one entitlement at ``at``; consumes nothing.

    Metered: with ``quantity`` every window must satisfy ``used + quantity <=
    limit``; without, ``used < limit``. A soft limit (``hard: false``) always
    allows and reports the overage. Boolean: the value. Config: allowed; with
    ``value`` (a list) the value must be in it; with ``quantity`` (a number) the
    quantity must not exceed it.
    """
    at = ensure_utc(at)
    q = D(quantity) if quantity is not None else None
    if q is not None and q < 0:
        raise InvalidAmount(f"quantity must not be negative (got {to_str(q)})")
    base: dict[str, Any] = {"feature": ent.feature, "customer": customer, "kind": ent.kind,
                            "quantity": q, "source": ent.source, "hard": ent.hard}
    if ent.kind == "boolean":
        on = bool(ent.value)
        return CheckResult(allowed=on, limit=None, used=None, remaining=None, resets_at=None,
                           reason="enabled" if on else f"{ent.feature} is not enabled",
                           value=on, **base)
    if ent.kind == "config":
        v = ent.value
        if value is not None:
            items = v if isinstance(v, list) else [v]
            ok = any(_same(value, x) for x in items)
            reason = (f"{value} is allowed" if ok else
                      f"{value} is not in {ent.feature} ({', '.join(map(str, items))})")
            return CheckResult(allowed=ok, limit=None, used=None, remaining=None, resets_at=None,
                               reason=reason, value=v, **base)
        if isinstance(v, int) and not isinstance(v, bool) and q is not None:
            lim = Decimal(v)
            ok = q <= lim
            return CheckResult(
                allowed=ok, limit=lim, used=None, remaining=lim, resets_at=None,
                reason="within the configured value" if ok else
                f"{to_str(q)} is above {ent.feature} = {v}", value=v, **base)
        return CheckResult(allowed=True, limit=None, used=None, remaining=None, resets_at=None,
                           reason="configured", value=v, **base)
    if ent.kind != "metered" or ent.meter is None or counter is None:
        raise InvalidInput(f"entitlement {ent.feature!r} cannot be evaluated")
    windows = tuple(_window_result(lim, counter, ent.meter, at, q, tz, ent.hard)
                    for lim in ent.limits)
    b = _binding(windows)
    all_fit = all(w.used + (q or ZERO) <= w.limit if q is not None else w.used < w.limit
                  for w in windows)
    overage = max((w.overage for w in windows), default=ZERO)
    if all_fit:
        reason = "within limits"
    elif ent.hard:
        when = f"; allowed again at {iso(b.retry_at)}" if b.retry_at else (
            "; the request alone is above the limit" if q is not None and q > b.limit else "")
        reason = (f"limit reached: {to_str(b.used)} of {to_str(b.limit)} {ent.meter} used in "
                  f"the {b.window} window" + when)
    else:
        reason = (f"over the soft limit of {to_str(b.limit)} {ent.meter} per {b.window}: "
                  f"allowed, {to_str(overage)} counted as overage")
    return CheckResult(
        allowed=all(w.allowed for w in windows), limit=b.limit, used=b.used,
        remaining=b.remaining, resets_at=b.resets_at, reason=reason,
        overage=overage if not ent.hard else ZERO, retry_at=b.retry_at if not b.allowed else None,
        windows=windows, **base)


def evaluate_credits(
    feature: str,
    pc: PlanCredits,
    balance: Decimal,
    *,
    quantity: Decimal | None = None,
    customer: str = "",
    source: str = "",
) -> CheckResult:
    """May ``quantity`` (default 1) of a credit meter be used with ``balance`` credits?

    ``block`` plans need the balance to cover ``quantity × burn rate``; ``overage``
    plans always allow (the shortfall is billed per credit). ``remaining`` is the
    balance in credits.
    """
    q = D(quantity) if quantity is not None else Decimal(1)
    need = q * pc.burn[feature]
    covered = balance >= need
    allowed = covered or pc.on_exhausted == "overage"
    if covered:
        reason = f"{to_str(need)} credits of {to_str(balance)} available"
    elif allowed:
        reason = (f"balance {to_str(balance)} credits, {to_str(need)} needed: the "
                  f"{to_str(need - max(balance, ZERO))} short is billed as overage")
    else:
        reason = (f"insufficient credits: {to_str(need)} needed, {to_str(balance)} available; "
                  "purchase or grant credits")
    return CheckResult(
        allowed=allowed, limit=None, used=None, remaining=balance, resets_at=None, reason=reason,
        feature=feature, customer=customer, kind="credits", quantity=quantity,
        value={"credits_required": need, "balance": balance, "on_exhausted": pc.on_exhausted},
        hard=pc.on_exhausted == "block",
        overage=max(need - balance, ZERO) if pc.on_exhausted == "overage" else ZERO,
        source=source,
    )


def combine(first: CheckResult, second: CheckResult) -> CheckResult:
    """Both answers must allow: the denying one leads (else the first), windows merged."""
    lead = second if (first.allowed and not second.allowed) else first
    other = first if lead is second else second
    reason = lead.reason
    if not lead.allowed and not other.allowed:
        reason = f"{lead.reason}; {other.reason}"
    return CheckResult(
        allowed=first.allowed and second.allowed, limit=lead.limit, used=lead.used,
        remaining=lead.remaining, resets_at=lead.resets_at, reason=reason, feature=lead.feature,
        customer=lead.customer, kind=f"{first.kind}+{second.kind}", value=lead.value,
        quantity=lead.quantity, hard=lead.hard, overage=max(lead.overage, other.overage),
        retry_at=lead.retry_at, source=lead.source, windows=first.windows + second.windows,
    )


def overage_amount(ent: Entitlement, used: Decimal, window: str | None = None) -> Decimal:
    """Money for usage above a soft limit: ``(used - limit) × overage_unit_price``
    for the limit on ``window`` (default: the first)."""
    if ent.kind != "metered" or not ent.limits:
        return ZERO
    lim = next((x for x in ent.limits if window is None or x.window.text == window), None)
    if lim is None or ent.overage_unit_price is None:
        return ZERO
    return max(used - lim.limit, ZERO) * ent.overage_unit_price


def rolling_span(length: timedelta, at: datetime) -> Window:
    """The span of event timestamps a rolling window of ``length`` counts at ``at``."""
    end = floor_minute(at) + BUCKET
    return Window(end - length, end)
