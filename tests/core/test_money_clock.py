"""money and clock foundations."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ratecard.clock import Window, parse_duration, parse_time, period_containing, period_start
from ratecard.errors import InvalidAmount, TimeInvalid
from ratecard.money import D, allocate, minor_units, quantize


def test_d_refuses_float_and_garbage() -> None:
    with pytest.raises(InvalidAmount, match="float"):
        D(0.1)
    with pytest.raises(InvalidAmount):
        D("abc")
    with pytest.raises(InvalidAmount):
        D(True)
    with pytest.raises(InvalidAmount):
        D("NaN")
    assert D("1_000.50") == Decimal("1000.50") and D(3) == Decimal(3)


def test_minor_units_and_half_up() -> None:
    assert (minor_units("USD"), minor_units("JPY"), minor_units("CNY"),
            minor_units("KWD")) == (2, 0, 2, 3)
    assert quantize(D("2.345"), "USD") == D("2.35")
    assert quantize(D("2.5"), "JPY") == D("3")
    assert quantize(D("-2.345"), "USD") == D("-2.35")


def test_allocate_examples() -> None:
    assert allocate(D("100"), [1, 1, 1], "USD") == [D("33.34"), D("33.33"), D("33.33")]
    assert allocate(D("10"), [0, 0], "JPY") == [D(5), D(5)]
    assert allocate(D("-1"), [1, 2], "USD") == [D("-0.33"), D("-0.67")]


def test_parse_time() -> None:
    assert parse_time("2026-03-01T08:00:00+08:00") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_time("2026-03-01T00:00:00Z").tzinfo is not None
    with pytest.raises(TimeInvalid, match="no timezone offset"):
        parse_time("2026-03-01T00:00:00")
    with pytest.raises(TimeInvalid, match="not a timestamp"):
        parse_time("yesterday")
    assert parse_time("2026-03-01", default_tz="UTC") == datetime(2026, 3, 1, tzinfo=UTC)


def test_window_is_half_open() -> None:
    w = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert datetime(2026, 1, 1, tzinfo=UTC) in w
    assert datetime(2026, 2, 1, tzinfo=UTC) not in w
    with pytest.raises(TimeInvalid):
        Window(w.end, w.start)


def test_month_periods_clamp_and_do_not_drift() -> None:
    anchor = datetime(2026, 1, 31, tzinfo=UTC)
    starts = [period_start(anchor, "month", k) for k in range(4)]
    assert [s.date().isoformat() for s in starts] == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]


def test_periods_keep_local_midnight_across_dst() -> None:
    anchor = parse_time("2026-03-01T00:00:00-08:00")  # Los Angeles, before DST starts
    p = period_containing(anchor, "month", parse_time("2026-03-20T00:00:00Z"),
                          "America/Los_Angeles")
    assert p.start == parse_time("2026-03-01T08:00:00Z")
    assert p.end == parse_time("2026-04-01T07:00:00Z")  # PDT: midnight is 07:00 UTC


def test_durations() -> None:
    assert parse_duration("5h").total_seconds() == 5 * 3600
    with pytest.raises(TimeInvalid):
        parse_duration("5x")
