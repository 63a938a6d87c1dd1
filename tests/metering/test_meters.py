"""The in-memory meters: every aggregation, filters, weights, groups, values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window
from ratecard.errors import EventInvalid
from ratecard.metering.meters import aggregate, usage_snapshot
from ratecard.metering.model import Event

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def ev(eid: str, props: dict[str, Any] | None = None, *, type_: str = "llm.request",
       customer: str = "acme", minutes: int = 0) -> Event:
    return Event(eid, type_, customer, T0 + timedelta(minutes=minutes), props or {})


def meter(**kw: Any) -> Meter:
    kw.setdefault("event", "llm.request")
    return Meter(**kw)


def test_count_counts_matching_events_only() -> None:
    m = meter(aggregation="count")
    events = [ev("a"), ev("b"), ev("c", type_="other")]
    u = aggregate("requests", m, events)
    assert u.quantity == 2
    assert u.meter == "requests"
    assert u.values is None


def test_no_events_is_zero() -> None:
    for agg, prop in (("count", None), ("sum", "x"), ("max", "x"), ("latest", "x"),
                      ("unique_count", "x")):
        u = aggregate("m", meter(aggregation=agg, property=prop, group_by=["model"]), [])
        assert u.quantity == 0
        assert u.groups == {}


def test_sum_is_exact_and_skips_missing_values() -> None:
    m = meter(aggregation="sum", property="x")
    events = [ev("a", {"x": Decimal("0.1")}, minutes=2), ev("b", {"x": "0.2"}, minutes=1),
              ev("c", {}), ev("d", {"x": None}), ev("e", {"x": 7})]
    u = aggregate("m", m, events)
    assert u.quantity == Decimal("7.3")
    # values in (timestamp, event_id) order: e(0), b(1), a(2)
    assert u.values == (Decimal(7), Decimal("0.2"), Decimal("0.1"))


def test_sum_rejects_a_non_number_naming_event_and_property() -> None:
    m = meter(aggregation="sum", property="x")
    for bad in ("twelve", True, {"a": 1}, "1_000", " 12", "0.0000000001"):
        with pytest.raises(EventInvalid) as e:
            aggregate("m", m, [ev("a", {"x": 1}), ev("bad-1", {"x": bad})])
        assert "bad-1" in str(e.value) and "'x'" in str(e.value)


def test_numeric_strings_are_exact() -> None:
    m = meter(aggregation="sum", property="x")
    u = aggregate("m", m, [ev("a", {"x": "12.5"}), ev("b", {"x": "1e3"}), ev("c", {"x": "-0.5"})])
    assert u.quantity == Decimal("1012.0")


def test_max_and_latest() -> None:
    events = [ev("a", {"gb": 5}, minutes=0), ev("b", {"gb": "9"}, minutes=1),
              ev("c", {"gb": 3}, minutes=2), ev("d", {}, minutes=3)]
    assert aggregate("m", meter(aggregation="max", property="gb"), events).quantity == 9
    # newest event with a value is c (d has none)
    assert aggregate("m", meter(aggregation="latest", property="gb"), events).quantity == 3


def test_latest_ties_go_to_the_larger_event_id() -> None:
    events = [ev("b", {"gb": 2}), ev("c", {"gb": 7}), ev("a", {"gb": 1})]
    m = meter(aggregation="latest", property="gb")
    assert aggregate("m", m, events).quantity == 7
    assert aggregate("m", m, list(reversed(events))).quantity == 7


def test_unique_count_compares_text() -> None:
    m = meter(aggregation="unique_count", property="user", group_by=["team"])
    events = [ev("a", {"user": "u1", "team": "x"}), ev("b", {"user": "u1", "team": "y"}),
              ev("c", {"user": 1, "team": "x"}), ev("d", {"user": "1", "team": "x"}),
              ev("e", {"team": "x"})]
    u = aggregate("m", m, events)
    assert u.quantity == 2  # u1 and 1
    assert u.groups == {("x",): Decimal(2), ("y",): Decimal(1)}


def test_filter_equals_or_in_list() -> None:
    m = meter(aggregation="count", filter={"outcome": "resolved"})
    events = [ev("a", {"outcome": "resolved"}), ev("b", {"outcome": "escalated"}), ev("c")]
    assert aggregate("m", m, events).quantity == 1
    m2 = meter(aggregation="count", filter={"outcome": ["resolved", "escalated"], "tier": 1})
    events2 = [ev("a", {"outcome": "resolved", "tier": 1}),
               ev("b", {"outcome": "escalated", "tier": "1"}),
               ev("c", {"outcome": "resolved", "tier": 2})]
    assert aggregate("m", m2, events2).quantity == 2


def test_weighted_count_and_sum() -> None:
    w = {"property": "complexity", "values": {"simple": 1, "medium": 3, "complex": "10"}}
    m = meter(aggregation="count", weights=w)
    events = [ev("a", {"complexity": "simple"}), ev("b", {"complexity": "complex"}),
              ev("c", {"complexity": "medium"})]
    assert aggregate("m", m, events).quantity == 14
    ms = meter(aggregation="sum", property="n", weights=w)
    events2 = [ev("a", {"complexity": "medium", "n": "2.5"}), ev("b", {"complexity": "simple"})]
    u = aggregate("m", ms, events2)
    assert u.quantity == Decimal("7.5")
    assert u.values == (Decimal("7.5"),)


def test_unknown_or_missing_weight_is_an_error() -> None:
    m = meter(aggregation="count", weights={"property": "c", "values": {"s": 1}})
    with pytest.raises(EventInvalid, match=r"'bad'.*'c'"):
        aggregate("m", m, [ev("bad", {"c": "huge"})])
    with pytest.raises(EventInvalid, match="missing"):
        aggregate("m", m, [ev("bad", {})])


def test_group_by_splits_and_missing_is_empty() -> None:
    m = meter(aggregation="sum", property="t", group_by=["model", "region"])
    events = [ev("a", {"t": 1, "model": "m1", "region": "eu"}), ev("b", {"t": 2, "model": "m1"}),
              ev("c", {"t": 4, "model": "m1", "region": "eu"}), ev("d", {"t": 8, "region": True})]
    u = aggregate("m", m, events)
    assert u.quantity == 15
    assert u.group_by == ("model", "region")
    assert u.groups == {("m1", "eu"): 5, ("m1", ""): 2, ("", "true"): 8}
    # group_by overrides the meter's
    u2 = aggregate("m", m, events, group_by=["region"])
    assert u2.groups == {("eu",): 5, ("",): 2, ("true",): 8}
    u3 = aggregate("m", m, events, group_by=[])
    assert u3.groups == {} and u3.quantity == 15


def test_max_and_latest_per_group() -> None:
    events = [ev("a", {"v": 5, "g": "x"}, minutes=5), ev("b", {"v": 9, "g": "x"}, minutes=1),
              ev("c", {"v": 1, "g": "y"}, minutes=9)]
    mx = aggregate("m", meter(aggregation="max", property="v", group_by=["g"]), events)
    assert mx.quantity == 9 and mx.groups == {("x",): 9, ("y",): 1}
    lt = aggregate("m", meter(aggregation="latest", property="v", group_by=["g"]), events)
    assert lt.quantity == 1 and lt.groups == {("x",): 5, ("y",): 1}


def test_usage_snapshot_every_meter_for_a_customer_and_window() -> None:
    cat = Catalog(meters={
        "input": Meter(event="llm.request", aggregation="sum", property="in", group_by=["model"]),
        "requests": Meter(event="llm.request", aggregation="count"),
        "seats": Meter(event="seat", aggregation="unique_count", property="user"),
    })
    events = [ev("a", {"in": 10, "model": "m1"}), ev("b", {"in": 5, "model": "m2"}, minutes=60),
              ev("c", {"in": 99, "model": "m1"}, customer="other"),
              ev("d", {"in": 1000, "model": "m1"}, minutes=60 * 24),
              ev("e", {"user": "u"}, type_="seat")]
    w = Window(T0, T0 + timedelta(days=1))
    snap = usage_snapshot(cat, events, customer="acme", window=w)
    assert set(snap) == {"input", "requests", "seats"}
    assert snap["input"].quantity == 15
    assert snap["input"].groups == {("m1",): 10, ("m2",): 5}
    assert snap["requests"].quantity == 2
    assert snap["seats"].quantity == 1
    snap2 = usage_snapshot(cat, events, group_by={"input": []})
    assert snap2["input"].groups == {} and snap2["input"].quantity == 1114
