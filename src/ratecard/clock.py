"""Time: aware UTC inside, half-open windows, calendar period arithmetic.

* :func:`utc_now` is the one clock; tests and simulations replace it with
  :func:`set_clock` (or the :func:`frozen` context manager).
* :class:`Window` is a half-open interval ``[start, end)`` of aware datetimes.
* Billing periods are anchored on a subscription's start, in the customer's
  timezone: period ``k`` starts at ``anchor + k * interval`` computed from the
  anchor each time (so a 31st anchor gives Jan 31, Feb 28, Mar 31, never drifting),
  which keeps local wall-clock midnight across daylight-saving changes.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ratecard.errors import TimeInvalid

Interval = Literal["day", "week", "month", "quarter", "year"]
INTERVAL_MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}

_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def utc_now() -> datetime:
    return _clock()


def set_clock(fn: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the real one)."""
    global _clock
    _clock = fn if fn is not None else (lambda: datetime.now(UTC))


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    global _clock
    old = _clock
    fixed = ensure_utc(at)
    _clock = lambda: fixed  # noqa: E731
    try:
        yield
    finally:
        _clock = old


def ensure_utc(dt: datetime) -> datetime:
    """An aware datetime converted to UTC; a naive one is refused."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise TimeInvalid(f"{dt.isoformat()} has no timezone offset; add one like +00:00 or Z")
    return dt.astimezone(UTC)


def parse_time(text: str, *, field: str = "time", default_tz: str | None = None) -> datetime:
    """Parse RFC 3339 / ISO 8601 into aware UTC.

    A bare date (``2026-01-31``) means midnight; a value without an offset is an
    error unless ``default_tz`` is given (the CLI passes UTC for dates).
    """
    if not isinstance(text, str) or not text.strip():
        raise TimeInvalid(f"{field}: expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z")
    raw = text.strip()
    s = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            dt = datetime.combine(date.fromisoformat(s), datetime.min.time())
        else:
            dt = datetime.fromisoformat(s)
    except ValueError:
        raise TimeInvalid(
            f"{field}: {raw!r} is not a timestamp; use RFC 3339 like 2026-01-31T12:00:00Z"
        ) from None
    if dt.tzinfo is None:
        if default_tz is None:
            raise TimeInvalid(
                f"{field}: {raw!r} has no timezone offset; add one like Z or +08:00"
            )
        dt = dt.replace(tzinfo=zone(default_tz))
    return dt.astimezone(UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeInvalid(
            f"{name!r} is not an IANA timezone; use a name like UTC, Europe/Paris or Asia/Shanghai"
        ) from None


def iso(dt: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``."""
    return ensure_utc(dt).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, order=True)
class Window:
    """A half-open time interval ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start))
        object.__setattr__(self, "end", ensure_utc(self.end))
        if self.end < self.start:
            raise TimeInvalid(
                f"window ends ({iso(self.end)}) before it starts ({iso(self.start)})"
            )

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlaps(self, other: Window) -> bool:
        return self.start < other.end and other.start < self.end

    def intersect(self, other: Window) -> Window | None:
        s, e = max(self.start, other.start), min(self.end, other.end)
        return Window(s, e) if s < e else None


def add_months(dt: datetime, months: int, anchor_day: int | None = None) -> datetime:
    """``dt`` moved by whole months on the wall clock, clamping the day to the month."""
    day = anchor_day if anchor_day is not None else dt.day
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return dt.replace(year=year, month=month, day=min(day, last))


def period_start(anchor: datetime, interval: str, k: int, tz: str = "UTC") -> datetime:
    """Start of the ``k``-th period after ``anchor`` (k may be negative), in UTC.

    Computed on the wall clock of ``tz`` from the anchor itself, so periods keep
    local midnight across daylight-saving changes and never drift.
    """
    local = ensure_utc(anchor).astimezone(zone(tz)).replace(tzinfo=None)
    if interval in INTERVAL_MONTHS:
        moved = add_months(local, k * INTERVAL_MONTHS[interval], anchor_day=local.day)
    elif interval == "week":
        moved = local + timedelta(days=7 * k)
    elif interval == "day":
        moved = local + timedelta(days=k)
    else:
        raise TimeInvalid(f"unknown interval {interval!r}; use day, week, month, quarter or year")
    return _localize(moved, tz)


def _localize(naive_local: datetime, tz: str) -> datetime:
    """Attach ``tz`` to a wall-clock time; a time in a DST gap moves forward."""
    z = zone(tz)
    aware = naive_local.replace(tzinfo=z, fold=0)
    back = aware.astimezone(UTC).astimezone(z).replace(tzinfo=None)
    if back != naive_local:  # in a gap: take the first valid instant after it
        aware = naive_local.replace(tzinfo=z, fold=1)
    return aware.astimezone(UTC)


def period_containing(anchor: datetime, interval: str, at: datetime, tz: str = "UTC") -> Window:
    """The billing period ``[start, end)`` anchored on ``anchor`` that contains ``at``."""
    at = ensure_utc(at)
    anchor = ensure_utc(anchor)
    # estimate k, then correct
    months = INTERVAL_MONTHS.get(interval)
    if months:
        k = ((at.year - anchor.year) * 12 + (at.month - anchor.month)) // months
    elif interval == "week":
        k = (at - anchor).days // 7
    else:
        k = (at - anchor).days
    while period_start(anchor, interval, k, tz) > at:
        k -= 1
    while period_start(anchor, interval, k + 1, tz) <= at:
        k += 1
    return Window(period_start(anchor, interval, k, tz), period_start(anchor, interval, k + 1, tz))


def periods(anchor: datetime, interval: str, window: Window, tz: str = "UTC") -> list[Window]:
    """Every anchored period overlapping ``window``."""
    out: list[Window] = []
    p = period_containing(anchor, interval, window.start, tz)
    while p.start < window.end:
        out.append(p)
        p = Window(p.end, period_start_after(anchor, interval, p.end, tz))
    return out


def period_start_after(anchor: datetime, interval: str, start: datetime, tz: str) -> datetime:
    return period_containing(anchor, interval, start, tz).end


_DURATION = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")


def parse_duration(text: str) -> timedelta:
    """``90m``, ``5h``, ``7d``, ``2w`` → timedelta."""
    m = _DURATION.match(str(text))
    if not m:
        raise TimeInvalid(f"{text!r} is not a duration; use a number and a unit: 90m, 5h, 7d, 2w")
    n, unit = int(m.group(1)), m.group(2)
    if n <= 0:
        raise TimeInvalid(f"{text!r}: a duration must be positive")
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n),
            "w": timedelta(weeks=n)}[unit]
