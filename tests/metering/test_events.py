"""parse_event: every rejection rule, exact numbers, the stored JSON form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ratecard.catalog.schema import Catalog, Meter
from ratecard.metering.events import (
    EventRejected,
    EventRules,
    loads,
    parse_event,
    properties_json,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CAT = Catalog(meters={
    "input": Meter(event="llm.request", aggregation="sum", property="input_tokens",
                   group_by=["model"]),
    "tasks": Meter(event="agent.task", aggregation="count",
                   weights={"property": "complexity", "values": {"simple": 1, "hard": 5}}),
    "resolved_value": Meter(event="ticket", aggregation="sum", property="value",
                            filter={"outcome": "resolved"}),
})


def good(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event_id": "e1", "type": "llm.request", "customer": "acme",
                            "timestamp": "2026-03-10T11:00:00Z",
                            "properties": {"model": "m", "input_tokens": 12}}
    base.update(kw)
    return base


def reject(obj: Any, **kw: Any) -> str:
    kw.setdefault("now", NOW)
    with pytest.raises(EventRejected) as e:
        parse_event(obj, line=7, **kw)
    assert e.value.line == 7
    assert str(e.value).startswith("line 7")
    return e.value.reason


def test_a_good_event() -> None:
    e = parse_event(good(), now=NOW, checks=CAT)
    assert e.event_id == "e1" and e.customer == "acme" and e.type == "llm.request"
    assert e.timestamp == datetime(2026, 3, 10, 11, tzinfo=UTC)
    assert e.properties == {"model": "m", "input_tokens": 12}


def test_absent_timestamp_is_now_and_offsets_convert_to_utc() -> None:
    assert parse_event(good(timestamp=None), now=NOW).timestamp == NOW
    e = parse_event(good(timestamp="2026-03-10T19:30:00+08:00"), now=NOW)
    assert e.timestamp == datetime(2026, 3, 10, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize("obj,needle", [
    ([1, 2], "JSON object"),
    ("text", "JSON object"),
    ({"type": "t", "customer": "c"}, "event_id is missing"),
    ({"event_id": "  ", "type": "t", "customer": "c"}, "event_id is blank"),
    ({"event_id": 1.5, "type": "t", "customer": "c"}, "event_id must be a string"),
    ({"event_id": "x" * 300, "type": "t", "customer": "c"}, "longer than"),
    ({"event_id": "e", "customer": "c"}, "type is missing"),
    ({"event_id": "e", "type": "t", "customer": ""}, "customer is blank"),
    ({"event_id": "e", "type": "t", "customer": "c", "timestamp": "yesterday"}, "RFC 3339"),
    ({"event_id": "e", "type": "t", "customer": "c", "timestamp": "2026-03-10T11:00:00"},
     "offset"),
    ({"event_id": "e", "type": "t", "customer": "c", "timestamp": "2026-02-30T11:00:00Z"},
     "not a valid date"),
    ({"event_id": "e", "type": "t", "customer": "c", "timestamp": 1700000000}, "RFC 3339"),
    ({"event_id": "e", "type": "t", "customer": "c", "timestamp": "2026-03-10T12:06:00Z"},
     "in the future"),
    ({"event_id": "e", "type": "t", "customer": "c", "timestamp": "2026-02-01T11:00:00Z"},
     "late-event window"),
    ({"event_id": "e", "type": "t", "customer": "c", "properties": [1]}, "must be a JSON object"),
    ({"event_id": "e", "type": "t", "customer": "c", "properties": "x"}, "must be a JSON object"),
])
def test_rejections(obj: Any, needle: str) -> None:
    assert needle in reject(obj)


def test_time_limits_are_inclusive_and_configurable() -> None:
    ok_future = good(timestamp="2026-03-10T12:05:00Z")
    assert parse_event(ok_future, now=NOW).timestamp == NOW + timedelta(minutes=5)
    edge = good(timestamp="2026-02-03T12:00:00Z")  # exactly 35 days
    assert parse_event(edge, now=NOW)
    rules = EventRules.from_settings(late_days=3, future_minutes=0)
    assert "late-event window (3 days)" in reject(good(timestamp="2026-03-07T11:00:00Z"),
                                                  rules=rules)
    assert "future" in reject(good(timestamp="2026-03-10T12:00:01Z"), rules=rules)


def test_size_limit() -> None:
    big = good(properties={"blob": "x" * 70_000})
    assert "64 KiB" in reject(big)
    assert "64 KiB" in reject(good(), size=65_537)
    assert parse_event(good(), now=NOW, size=65_536)


def test_catalog_property_kinds() -> None:
    bad = good(properties={"model": "m", "input_tokens": "lots"})
    reason = reject(bad, checks=CAT)
    assert "input_tokens" in reason and "input" in reason
    # without a catalog the same event is stored
    assert parse_event(bad, now=NOW).properties["input_tokens"] == "lots"
    # numeric strings are fine; missing values are fine
    assert parse_event(good(properties={"input_tokens": "12.5"}), now=NOW, checks=CAT)
    assert parse_event(good(properties={}), now=NOW, checks=CAT)
    # grouping by an object is not
    assert "model" in reject(good(properties={"model": {"a": 1}}), checks=CAT)
    # weights: unknown or missing values
    task = {"event_id": "t", "type": "agent.task", "customer": "c"}
    assert "'complexity' is missing" in reject(task, checks=CAT)
    assert "'epic'" in reject({**task, "properties": {"complexity": "epic"}}, checks=CAT)
    assert parse_event({**task, "properties": {"complexity": "hard"}}, now=NOW, checks=CAT)
    # filtered-out events are not checked
    t = {"event_id": "t", "type": "ticket", "customer": "c"}
    assert parse_event({**t, "properties": {"outcome": "open", "value": "n/a"}}, now=NOW,
                       checks=CAT)
    assert "value" in reject({**t, "properties": {"outcome": "resolved", "value": "n/a"}},
                             checks=CAT)


def test_json_numbers_are_exact() -> None:
    obj = loads('{"event_id": 42, "type": "t", "customer": 7, "properties": '
                '{"a": 0.1, "b": 12345678901234567.5, "c": 1e3, "d": 123456789012345678901}}')
    e = parse_event(obj, now=NOW)
    assert e.event_id == "42" and e.customer == "7"
    assert e.properties["a"] == Decimal("0.1")
    assert e.properties["b"] == Decimal("12345678901234567.5")
    text = properties_json(e.properties)
    # long numbers are stored as exact decimal strings, short ones as numbers
    assert text == ('{"a":0.1,"b":"12345678901234567.5","c":1000,'
                    '"d":"123456789012345678901"}')
