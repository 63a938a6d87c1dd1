"""The usage event on the wire: parsing, the rejection rules, and the stored JSON form.

An event is a JSON object::

    {"event_id": "req-8812", "type": "llm.request", "customer": "acme",
     "timestamp": "2026-03-01T12:00:00Z",
     "properties": {"model": "gpt-4o", "input_tokens": 1200, "output_tokens": 300}}

:func:`parse_event` is the one definition of what is accepted (the bulk ingest of
the usage store runs the same rules vectorised and hands every doubtful row to
this function, so reasons always come from here). An event is rejected, with a
reason, when:

* it is not a JSON object, or is larger than :data:`MAX_EVENT_BYTES` (64 KiB);
* ``event_id`` is missing, blank, not a string (integers are read as their digits)
  or longer than :data:`MAX_ID_CHARS`;
* ``type`` or ``customer`` is missing, blank or not a string (a customer may be an
  integer, read as its digits) or longer than :data:`MAX_ID_CHARS`;
* ``timestamp`` is not RFC 3339 with an offset (``2026-03-01T12:00:00Z``,
  ``...+08:00``), is more than the future tolerance (5 minutes) ahead of now, or is
  older than the late-event window (35 days); an absent timestamp means now;
* ``properties`` is present and not an object;
* a meter of the catalog reads a property of this event type and the value has the
  wrong kind (see :func:`ratecard.metering.meters.property_problem`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import utc_now
from ratecard.errors import EventInvalid
from ratecard.metering.meters import meter_needs, property_problem
from ratecard.metering.model import Event
from ratecard.metering.values import plain, storable

MAX_EVENT_BYTES = 64 * 1024
MAX_ID_CHARS = 256
DEFAULT_LATE_DAYS = 35
DEFAULT_FUTURE_MINUTES = 5

RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@dataclass(frozen=True)
class EventRules:
    """Time limits applied on ingest (the workspace's ``[events]`` settings)."""

    late: timedelta = timedelta(days=DEFAULT_LATE_DAYS)
    future: timedelta = timedelta(minutes=DEFAULT_FUTURE_MINUTES)

    @classmethod
    def from_settings(cls, late_days: Any = None, future_minutes: Any = None) -> EventRules:
        late = DEFAULT_LATE_DAYS if late_days is None else late_days
        fut = DEFAULT_FUTURE_MINUTES if future_minutes is None else future_minutes
        if isinstance(late, bool) or not isinstance(late, int | float) or late <= 0:
            raise EventInvalid(f"events.late_event_days must be a positive number, not {late!r}")
        if isinstance(fut, bool) or not isinstance(fut, int | float) or fut < 0:
            raise EventInvalid(
                f"events.future_tolerance_minutes must be a number >= 0, not {fut!r}"
            )
        return cls(late=timedelta(days=late), future=timedelta(minutes=fut))


class EventRejected(EventInvalid):
    """One event refused on ingest: where it was (``line``), its id when known, and why."""

    def __init__(self, reason: str, *, line: int | None = None, event_id: str | None = None):
        self.reason = reason
        self.line = line
        self.event_id = event_id
        where = []
        if line is not None:
            where.append(f"line {line}")
        if event_id is not None:
            where.append(f"event {event_id!r}")
        super().__init__((": ".join(where) + ": " if where else "") + reason)


class PropertyChecks:
    """The catalog's meters indexed by event type, to check property kinds on ingest."""

    def __init__(self, catalog: Catalog | None) -> None:
        self.catalog = catalog
        self.by_type: dict[str, list[tuple[str, Meter]]] = meter_needs(catalog)

    def problem(self, type_: str, props: Mapping[str, Any]) -> str | None:
        for name, meter in self.by_type.get(type_, ()):
            p = property_problem(name, meter, props)
            if p is not None:
                return p
        return None


def loads(text: str | bytes) -> Any:
    """Parse JSON exactly: non-integer numbers become Decimal, never binary floats."""
    return json.loads(text, parse_float=Decimal)


def parse_timestamp(value: Any) -> datetime:
    """RFC 3339 with an offset into aware UTC (fractions beyond microseconds are cut)."""
    if not isinstance(value, str) or not RFC3339_RE.fullmatch(value):
        raise ValueError(
            f"timestamp {_short(value)} is not RFC 3339 with an offset; "
            "write it like 2026-03-01T12:00:00Z or 2026-03-01T20:00:00+08:00"
        )
    text = value
    m = RFC3339_RE.fullmatch(value)
    assert m is not None
    frac = m.group(1)
    if frac and len(frac) > 7:
        text = value[: m.start(1)] + frac[:7] + value[m.end(1):]
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {_short(value)} is not a valid date and time") from None
    return dt.astimezone(UTC)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ident(obj: Mapping[str, Any], key: str, *, allow_int: bool) -> str:
    v = obj.get(key)
    if v is None:
        raise ValueError(f"{key} is missing")
    if allow_int and isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str):
        raise ValueError(f"{key} must be a string, not {type(v).__name__}")
    if not v.strip():
        raise ValueError(f"{key} is blank")
    if len(v) > MAX_ID_CHARS:
        raise ValueError(f"{key} is longer than {MAX_ID_CHARS} characters")
    return v


def parse_event(
    obj: Any,
    *,
    line: int | None = None,
    now: datetime | None = None,
    rules: EventRules | None = None,
    checks: PropertyChecks | Catalog | None = None,
    size: int | None = None,
) -> Event:
    """Validate one decoded JSON event and return it, or raise :class:`EventRejected`.

    ``size`` is the event's size in bytes as received (computed from ``obj`` when not
    given); ``now`` defaults to :func:`ratecard.clock.utc_now`; ``checks`` (or a
    catalog) adds the property-kind checks of the catalog's meters.
    """
    if not isinstance(obj, Mapping):
        kind = "a list" if isinstance(obj, list) else type(obj).__name__
        raise EventRejected(f"an event must be a JSON object, not {kind}", line=line)
    raw_id = obj.get("event_id")
    shown_id = raw_id if isinstance(raw_id, str) else None
    if size is None:
        size = len(dumps_event_obj(obj).encode("utf-8"))
    if size > MAX_EVENT_BYTES:
        raise EventRejected(
            f"event is {size} bytes, over the {MAX_EVENT_BYTES // 1024} KiB limit; "
            "move large payloads out of the event",
            line=line, event_id=shown_id,
        )
    try:
        event_id = _ident(obj, "event_id", allow_int=True)
    except ValueError as e:
        raise EventRejected(f"{e}; every event needs a unique event_id", line=line) from None
    try:
        type_ = _ident(obj, "type", allow_int=False)
        customer = _ident(obj, "customer", allow_int=True)
    except ValueError as e:
        raise EventRejected(str(e), line=line, event_id=event_id) from None
    rules = rules or EventRules()
    now = now or utc_now()
    ts_raw = obj.get("timestamp")
    if ts_raw is None:
        ts = now
    else:
        try:
            ts = parse_timestamp(ts_raw)
        except ValueError as e:
            raise EventRejected(str(e), line=line, event_id=event_id) from None
        if ts > now + rules.future:
            raise EventRejected(
                f"timestamp {ts_raw} is more than {_minutes(rules.future)} in the future; "
                "check the sender's clock",
                line=line, event_id=event_id,
            )
        if ts < now - rules.late:
            raise EventRejected(
                f"timestamp {ts_raw} is older than the late-event window "
                f"({rules.late.days} days); raise events.late_event_days to accept it",
                line=line, event_id=event_id,
            )
    props = obj.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, Mapping):
        raise EventRejected(
            f"properties must be a JSON object, not {type(props).__name__}",
            line=line, event_id=event_id,
        )
    if isinstance(checks, Catalog):
        checks = PropertyChecks(checks)
    if checks is not None:
        problem = checks.problem(type_, props)
        if problem is not None:
            raise EventRejected(problem, line=line, event_id=event_id)
    clean = {str(k): _normal(v) for k, v in props.items()}
    return Event(event_id=event_id, type=type_, customer=customer, timestamp=ts,
                 properties=clean)


def _minutes(td: timedelta) -> str:
    m = int(td.total_seconds() // 60)
    return f"{m} minute{'s' if m != 1 else ''}"


def _normal(v: Any) -> Any:
    """Top-level property values as meters read them (floats become exact Decimals)."""
    if isinstance(v, float):
        return Decimal(repr(v))
    return v


# --------------------------------------------------------------------------- JSON form


def _encode(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, Decimal):
        out.append(plain(v) if v.is_finite() else json.dumps(str(v)))
    elif isinstance(v, float):
        out.append(plain(Decimal(repr(v))))
    elif isinstance(v, str):
        out.append(json.dumps(v, ensure_ascii=False))
    elif isinstance(v, Mapping):
        out.append("{")
        for i, (k, item) in enumerate(v.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(k), ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(v, list | tuple):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(v, datetime):
        out.append(json.dumps(v.isoformat()))
    else:
        out.append(json.dumps(str(v), ensure_ascii=False))


def dumps_json(value: Any) -> str:
    """Compact JSON with Decimals written exactly as numbers."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def dumps_event_obj(obj: Mapping[str, Any]) -> str:
    return dumps_json(obj)


def properties_json(props: Mapping[str, Any]) -> str:
    """The stored JSON text of an event's properties.

    Top-level numbers with more than 15 significant digits are written as decimal
    strings so that every JSON reader (the store's included) keeps them exact.
    """
    return dumps_json({k: storable(v) for k, v in props.items()})


def event_to_json(ev: Event) -> dict[str, Any]:
    """An event as a JSON-ready dict (the wire form, timestamps in UTC with ``Z``)."""
    return {
        "event_id": ev.event_id,
        "type": ev.type,
        "customer": ev.customer,
        "timestamp": ev.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "properties": dict(ev.properties),
    }
