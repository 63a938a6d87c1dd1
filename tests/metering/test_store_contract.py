"""The UsageStore contract, run against every backend (``usage_store`` fixture).

The central property: whatever a store computes its aggregates from (raw events,
rollups, both), they agree exactly with the in-memory meters over the same events,
with voids and late events included.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window
from ratecard.errors import Conflict, EventInvalid, NotFound
from ratecard.metering.events import EventRules, PropertyChecks, parse_event
from ratecard.metering.meters import aggregate
from ratecard.metering.model import Event
from ratecard.store.usage import Line, UsageStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 20, tzinfo=UTC)
MONTH = Window(T0, datetime(2026, 4, 1, tzinfo=UTC))


def ev(eid: str, customer: str = "acme", *, minutes: float = 0, type_: str = "llm.request",
       **props: Any) -> Event:
    return Event(eid, type_, customer, T0 + timedelta(minutes=minutes), props)


def lines(*objs: Any) -> list[Line]:
    return [Line(i + 1, o if isinstance(o, str) else json.dumps(o)) for i, o in enumerate(objs)]


INPUT = Meter(event="llm.request", aggregation="sum", property="tokens", group_by=["model"])
COUNT = Meter(event="llm.request", aggregation="count", group_by=["model"])
LATEST = Meter(event="llm.request", aggregation="latest", property="tokens")
MAXM = Meter(event="llm.request", aggregation="max", property="tokens", group_by=["model"])
USERS = Meter(event="llm.request", aggregation="unique_count", property="user")
CAT = Catalog(meters={"input": INPUT, "requests": COUNT, "latest": LATEST, "peak": MAXM,
                      "users": USERS})


def same(store: UsageStore, meter: Meter, events: list[Event], window: Window,
         group_by: list[str] | None = None) -> None:
    """The store's aggregate equals the in-memory meter, customer by customer."""
    got = store.aggregate(meter, window=window, group_by=group_by, values=True)
    customers = sorted({e.customer for e in events})
    for c in customers:
        mine = [e for e in events if e.customer == c and e.timestamp in window]
        want = aggregate("", meter, mine, group_by=group_by)
        have = got.get(c)
        if have is None:
            assert want.quantity == 0 and not want.groups, (c, want)
            continue
        assert have.quantity == want.quantity, (c, have, want)
        assert dict(have.groups) == dict(want.groups), (c, have.groups, want.groups)
        if meter.aggregation == "sum":
            assert have.values == want.values
    assert set(got) <= set(customers)


# --------------------------------------------------------------------------- append


def test_append_deduplicates_on_event_id(usage_store: UsageStore) -> None:
    events = [ev("a", tokens=1, model="m"), ev("b", tokens=2, model="m"),
              ev("a", tokens=100, model="m")]  # in-batch duplicate: the first wins
    r = usage_store.append(events)
    assert (r.accepted, r.duplicates) == (2, 1)
    r2 = usage_store.append(events)
    assert (r2.accepted, r2.duplicates) == (0, 3)
    u = usage_store.aggregate(INPUT, window=MONTH)["acme"]
    assert u.quantity == 3
    stored = usage_store.get("a")
    assert stored is not None and stored.event.properties["tokens"] == 1


def test_append_lines_validates_and_keeps_good_events(usage_store: UsageStore) -> None:
    good = {"event_id": "g1", "type": "llm.request", "customer": "acme",
            "timestamp": "2026-03-19T10:00:00Z", "properties": {"model": "m", "tokens": 5}}
    batch = lines(
        good,
        "not json",
        {**good, "event_id": ""},
        {**good, "event_id": "g2", "timestamp": "2026-03-19T10:00:00"},
        {**good, "event_id": "g3", "timestamp": "2026-03-20T00:06:00Z"},
        {**good, "event_id": "g4", "timestamp": "2026-01-01T00:00:00Z"},
        {**good, "event_id": "g5", "properties": [1]},
        {**good, "event_id": "g6", "properties": {"model": "m", "tokens": "lots"}},
        {**good, "event_id": "g7", "properties": {"model": "m", "blob": "x" * 70000}},
        {**good, "event_id": "g8", "properties": {"model": "m", "tokens": "2.5"}},
        {**good, "event_id": "g1"},
        "   ",
    )
    r = usage_store.append_lines(batch, checks=PropertyChecks(CAT), now=NOW)
    assert r.accepted == 2
    assert r.duplicates == 1
    assert [x.line for x in r.rejected] == [2, 3, 4, 5, 6, 7, 8, 9]
    reasons = {x.line: x.reason for x in r.rejected}
    assert "JSON" in reasons[2]
    assert "event_id is blank" in reasons[3]
    assert "offset" in reasons[4]
    assert "future" in reasons[5]
    assert "late-event window" in reasons[6]
    assert "properties must be a JSON object" in reasons[7]
    assert "tokens" in reasons[8]
    assert "64 KiB" in reasons[9]
    assert {x.event_id for x in r.rejected if x.line == 8} == {"g6"}
    assert usage_store.aggregate(INPUT, window=MONTH)["acme"].quantity == Decimal("7.5")


def test_without_a_catalog_wrong_kinds_are_stored_and_named_on_aggregate(
        usage_store: UsageStore) -> None:
    ok = {"event_id": "a", "type": "llm.request", "customer": "acme",
          "timestamp": "2026-03-02T00:00:00Z", "properties": {"model": "m", "tokens": 3}}
    bad = {**ok, "event_id": "b", "properties": {"model": "m", "tokens": "n/a"}}
    r = usage_store.append_lines(lines(ok, bad), now=NOW)
    assert r.accepted == 2 and not r.rejected
    with pytest.raises(EventInvalid, match="'b'"):
        usage_store.aggregate(INPUT, window=MONTH)
    with pytest.raises(EventInvalid, match="'b'"):
        aggregate("", INPUT, list(usage_store.scan()))
    # counting is unaffected; voiding the bad event repairs the sum
    assert usage_store.aggregate(COUNT, window=MONTH)["acme"].quantity == 2
    usage_store.void("b", "sender bug")
    assert usage_store.aggregate(INPUT, window=MONTH)["acme"].quantity == 3


def test_acknowledged_events_survive_reopening(tmp_path: Any, backend: str) -> None:
    from tests.metering.conftest import make_usage_store

    s = make_usage_store(backend, tmp_path)
    s.sync_meters({"input": INPUT})
    s.append([ev("a", tokens=4, model="m")])
    s.close()
    s2 = make_usage_store(backend, tmp_path)
    try:
        assert s2.aggregate(INPUT, window=MONTH)["acme"].quantity == 4
        assert s2.append([ev("a", tokens=4, model="m")]).duplicates == 1
    finally:
        s2.close()


# --------------------------------------------------------------------------- voids, late events


def test_void_keeps_marks_and_excludes(usage_store: UsageStore) -> None:
    usage_store.sync_meters(CAT.meters)
    events = [ev("a", tokens=5, model="m", minutes=10), ev("b", tokens=7, model="m", minutes=20)]
    usage_store.append(events)
    assert usage_store.aggregate(LATEST, window=MONTH)["acme"].quantity == 7
    got = usage_store.void("b", "duplicate charge")
    assert got.voided and got.void_reason == "duplicate charge"
    assert usage_store.aggregate(INPUT, window=MONTH)["acme"].quantity == 5
    assert usage_store.aggregate(LATEST, window=MONTH)["acme"].quantity == 5
    assert usage_store.aggregate(MAXM, window=MONTH)["acme"].quantity == 5
    assert [e.event_id for e in usage_store.scan()] == ["a"]
    assert [e.event_id for e in usage_store.scan(include_voided=True)] == ["a", "b"]
    stored = usage_store.get("b")
    assert stored is not None and stored.voided
    # a voided event stays a duplicate
    assert usage_store.append([events[1]]).duplicates == 1
    with pytest.raises(Conflict):
        usage_store.void("b", "again")
    with pytest.raises(NotFound):
        usage_store.void("zzz", "no such event")


def test_late_event_lands_in_its_own_period(usage_store: UsageStore) -> None:
    usage_store.sync_meters(CAT.meters)
    march = MONTH
    april = Window(march.end, datetime(2026, 5, 1, tzinfo=UTC))
    usage_store.append([ev("apr", tokens=1, model="m", minutes=60 * 24 * 31 + 5)])
    usage_store.append([ev("late", tokens=10, model="m", minutes=60 * 24 * 3)])
    assert usage_store.aggregate(INPUT, window=march)["acme"].quantity == 10
    assert usage_store.aggregate(INPUT, window=april)["acme"].quantity == 1


def test_windows_are_half_open_and_split_across_edges(usage_store: UsageStore) -> None:
    usage_store.sync_meters(CAT.meters)
    events = [ev(f"e{i}", tokens=i, model="m", minutes=i * 17.5) for i in range(200)]
    usage_store.append(events)
    for w in (Window(T0 + timedelta(minutes=35), T0 + timedelta(minutes=35 * 50)),
              Window(T0 + timedelta(minutes=17.5 * 3), T0 + timedelta(minutes=17.5 * 3)),
              Window(T0 + timedelta(hours=2, seconds=1), T0 + timedelta(days=2, minutes=7)),
              MONTH):
        for m in (INPUT, COUNT, LATEST, MAXM, USERS):
            same(usage_store, m, events, w)


# --------------------------------------------------------------------------- reads


def test_series_per_hour_and_day(usage_store: UsageStore) -> None:
    usage_store.sync_meters(CAT.meters)
    events = [ev(f"e{i}", tokens=1, model="a" if i % 2 else "b", minutes=i * 45)
              for i in range(100)]
    usage_store.append(events)
    w = Window(T0 + timedelta(minutes=30), T0 + timedelta(days=2))
    for grain, step in (("hour", timedelta(hours=1)), ("day", timedelta(days=1))):
        pts = usage_store.series(INPUT, window=w, grain=grain, group_by=[])
        assert sum(p.quantity for p in pts) == usage_store.aggregate(
            INPUT, window=w)["acme"].quantity
        for p in pts:
            bucket = Window(max(p.bucket, w.start), min(p.bucket + step, w.end))
            want = aggregate("", INPUT, [e for e in events if e.timestamp in bucket], group_by=[])
            assert p.quantity == want.quantity
        grouped = usage_store.series(COUNT, window=w, grain=grain)
        assert {p.group for p in grouped} == {("a",), ("b",)}
        assert sum(p.quantity for p in grouped) == len([e for e in events if e.timestamp in w])


def test_scan_orders_and_filters(usage_store: UsageStore) -> None:
    events = [ev("b", "x", minutes=1), ev("a", "x", minutes=1), ev("c", "y", minutes=0),
              ev("d", "x", minutes=5, type_="other", n=Decimal("0.1"))]
    usage_store.append(events)
    assert [e.event_id for e in usage_store.scan()] == ["c", "a", "b", "d"]
    assert [e.event_id for e in usage_store.scan(customers=["x"], types=["llm.request"])] == [
        "a", "b"]
    w = Window(T0 + timedelta(minutes=1), T0 + timedelta(minutes=5))
    assert [e.event_id for e in usage_store.scan(window=w)] == ["a", "b"]
    d = next(e for e in usage_store.scan() if e.event_id == "d")
    assert d.properties == {"n": Decimal("0.1")} and d.timestamp.tzinfo is not None
    assert usage_store.customers() == ["x", "y"]


def test_point_query_for_listed_customers_fills_zeros(usage_store: UsageStore) -> None:
    usage_store.append([ev("a", "x", tokens=2, model="m")])
    got = usage_store.aggregate(INPUT, window=MONTH, customers=["x", "nobody"], values=True)
    assert got["x"].quantity == 2 and got["nobody"].quantity == 0
    assert got["nobody"].values == ()


def test_exact_numbers_beyond_binary_floats(usage_store: UsageStore) -> None:
    usage_store.sync_meters(CAT.meters)
    raw = ['{"event_id":"a","type":"llm.request","customer":"c","timestamp":'
           '"2026-03-02T00:00:00Z","properties":{"model":"m","tokens":0.1}}',
           '{"event_id":"b","type":"llm.request","customer":"c","timestamp":'
           '"2026-03-02T00:00:00Z","properties":{"model":"m","tokens":0.2}}',
           '{"event_id":"c","type":"llm.request","customer":"c","timestamp":'
           '"2026-03-02T00:00:00Z","properties":{"model":"m","tokens":12345678901234567.5}}',
           '{"event_id":"d","type":"llm.request","customer":"c","timestamp":'
           '"2026-03-02T00:00:00Z","properties":{"model":"m","tokens":"99999999999999999999.000000001"}}']
    r = usage_store.append_lines([Line(i + 1, t) for i, t in enumerate(raw)],
                                 checks=PropertyChecks(CAT), now=NOW)
    assert r.accepted == 4, r.rejected
    want = (Decimal("0.3") + Decimal("12345678901234567.5")
            + Decimal("99999999999999999999.000000001"))
    assert usage_store.aggregate(INPUT, window=MONTH)["c"].quantity == want
    events = list(usage_store.scan())
    assert aggregate("", INPUT, events).quantity == want


# --------------------------------------------------------------------------- agreement


props_values = st.one_of(
    st.none(),
    st.integers(-5, 10**6),
    st.decimals(min_value=Decimal(-1000), max_value=Decimal(1000), places=3,
                allow_nan=False, allow_infinity=False),
    st.sampled_from(["1.5", "7", "x", "", "2e2", "1e-12", True, False, "-0.25"]),
)
groups = st.sampled_from(["a", "b", "c", 1, True, None, "b"])


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(0, 40))
    out = []
    for i in range(n):
        props: dict[str, Any] = {}
        for key, strat in (("tokens", props_values), ("model", groups), ("region", groups),
                           ("user", groups), ("tier", st.sampled_from(["s", "m", "l", "?"]))):
            if draw(st.booleans()):
                props[key] = draw(strat)
        minutes = draw(st.integers(0, 60 * 24 * 3)) + draw(st.sampled_from([0, 0.5]))
        out.append(Event(f"e{draw(st.integers(0, 30)) if i % 7 == 6 else i}",
                         draw(st.sampled_from(["llm.request", "llm.request", "other"])),
                         draw(st.sampled_from(["c1", "c2", "c3"])),
                         T0 + timedelta(minutes=minutes), props))
    return out


@st.composite
def meters(draw: st.DrawFn) -> Meter:
    agg = draw(st.sampled_from(["count", "sum", "max", "latest", "unique_count"]))
    kw: dict[str, Any] = {"event": "llm.request", "aggregation": agg}
    if agg != "count":
        kw["property"] = "user" if agg == "unique_count" else "tokens"
    kw["group_by"] = draw(st.sampled_from([[], ["model"], ["model", "region"]]))
    if draw(st.booleans()):
        kw["filter"] = draw(st.sampled_from([{"region": "a"}, {"model": ["a", 1, True]}]))
    if agg in ("count", "sum") and draw(st.booleans()):
        kw["weights"] = {"property": "tier", "values": {"s": 1, "m": "2.5", "l": 10, "?": 0}}
    return Meter(**kw)


windows = st.sampled_from([
    MONTH,
    Window(T0 + timedelta(minutes=30), T0 + timedelta(days=2, hours=5, minutes=1)),
    Window(T0 + timedelta(hours=5), T0 + timedelta(hours=6)),
    Window(T0 + timedelta(days=1), T0 + timedelta(days=2)),
])


def _first_wins(events: list[Event]) -> list[Event]:
    seen: dict[str, Event] = {}
    for e in events:
        seen.setdefault(e.event_id, e)
    return list(seen.values())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(events=event_lists(), meter=meters(), window=windows, rollups=st.booleans(),
       split=st.integers(0, 40), voids=st.lists(st.integers(0, 40), max_size=3),
       group_by=st.sampled_from([None, [], ["region"]]))
def test_store_agrees_with_in_memory_meters(
    store_factory: Callable[[], UsageStore], events: list[Event], meter: Meter, window: Window,
    rollups: bool, split: int, voids: list[int], group_by: list[str] | None,
) -> None:
    store = store_factory()
    try:
        if rollups:
            store.sync_meters({"m": meter})
        # two appends (the second holds late events for the first's buckets), then voids
        store.append(events[:split])
        store.append(events[split:])
        kept = _first_wins(events)
        for i in voids:
            if i < len(kept) and store.get(kept[i].event_id) is not None:
                stored = store.get(kept[i].event_id)
                assert stored is not None
                if not stored.voided:
                    store.void(kept[i].event_id, "test")
        live = [e for e in kept if not store.get(e.event_id).voided]  # type: ignore[union-attr]
        try:
            want_error = None
            for c in {e.customer for e in live}:
                aggregate("", meter, [e for e in live if e.customer == c and e.timestamp in window],
                          group_by=group_by)
        except EventInvalid as e:
            want_error = e
        if want_error is not None:
            with pytest.raises(EventInvalid):
                store.aggregate(meter, window=window, group_by=group_by, values=True)
            return
        same(store, meter, live, window, group_by)
    finally:
        store.close()


# --------------------------------------------------------------------------- ingest parity

messy_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d.adjusted()) < 40),
    st.text(max_size=6),
    st.sampled_from(["12.5", "1e3", "0.0000000001", "1_000", " 7", "-0", "99999999999999999999"]),
)


def _num_text(d: Decimal) -> str:
    return str(d) if d.is_finite() else "0"


@st.composite
def raw_lines(draw: st.DrawFn) -> str:
    obj: dict[str, Any] = {}
    for key, strat in (
        ("event_id", st.one_of(st.text(max_size=5), st.integers(0, 99), st.none(),
                               st.sampled_from(["e1", "e2", " ", "\t"]))),
        ("type", st.sampled_from(["llm.request", "llm.request", "", 3, None])),
        ("customer", st.one_of(st.sampled_from(["c1", "c2", "", "\u3000"]), st.integers(0, 3))),
        ("timestamp", st.one_of(
            st.none(),
            st.datetimes(min_value=datetime(2026, 2, 1), max_value=datetime(2026, 3, 21)).map(
                lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"),
            st.sampled_from(["2026-03-10T10:00:00+05:30", "2026-03-10 10:00:00Z",
                             "2026-03-10T10:00:00", "2026-02-30T00:00:00Z",
                             "2026-03-10T10:00:00.1234567Z", "2026-03-10t10:00:00z",
                             "2026-03-19T23:59:60Z", "yesterday"]))),
    ):
        if draw(st.integers(0, 5)):
            obj[key] = draw(strat)
    if draw(st.integers(0, 4)):
        props = {k: draw(messy_values) for k in draw(st.lists(
            st.sampled_from(["tokens", "model", "user", "x"]), max_size=4, unique=True))}
        obj["properties"] = draw(st.sampled_from([props, props, props, [1], "p"]))
    text = json.dumps(obj, default=_num_text)
    return draw(st.sampled_from([text, text, text, text[:-1], "[" + text + "]"]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(batch=st.lists(raw_lines(), min_size=1, max_size=25), catalog=st.booleans())
def test_bulk_ingest_follows_parse_event(
    store_factory: Callable[[], UsageStore], batch: list[str], catalog: bool,
) -> None:
    """Every line is accepted or rejected exactly as parse_event says, and stored as it
    parses (the vectorised path never accepts what parse_event refuses)."""
    from ratecard.metering.events import EventRejected, loads

    checks = PropertyChecks(CAT) if catalog else None
    rules = EventRules()
    store = store_factory()
    try:
        r = store.append_lines([Line(i + 1, t) for i, t in enumerate(batch)], checks=checks,
                               rules=rules, now=NOW)
        expected: dict[str, Event] = {}
        rejected: set[int] = set()
        for i, text in enumerate(batch):
            try:
                e = parse_event(loads(text), line=i + 1, now=NOW, rules=rules, checks=checks,
                                size=len(text.encode()))
            except (EventRejected, ValueError, ArithmeticError):
                rejected.add(i + 1)
                continue
            expected.setdefault(e.event_id, e)
        assert {x.line for x in r.rejected} == rejected
        assert r.accepted == len(expected)
        stored = {e.event_id: e for e in store.scan()}
        assert set(stored) == set(expected)
        for eid, e in expected.items():
            s = stored[eid]
            assert (s.type, s.customer, s.timestamp) == (e.type, e.customer, e.timestamp)
            assert _norm(s.properties) == _norm(loads(_props_json(e.properties)))
    finally:
        store.close()


def _norm(v: Any) -> Any:
    """Numbers compared by value (a JSON reader may write 1.50 as 1.5)."""
    from ratecard.metering.values import plain

    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | Decimal):
        return ("number", plain(Decimal(v)))
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _props_json(props: Any) -> str:
    from ratecard.metering.events import properties_json

    return properties_json(props)
