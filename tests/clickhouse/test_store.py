"""The ClickHouse usage store against the in-memory meters, on a real server and on chdb.

Every test here runs on the ClickHouse server the test setup starts (Debian's 18.16)
and on the embedded current engine (chdb), most on DuckDB too (``usage_url``): the
same events must give the same quantities everywhere, before and after rollups,
voids, concurrent resends and merges.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ratecard.catalog.schema import Meter
from ratecard.clock import Window
from ratecard.errors import Conflict, EventInvalid, InvalidInput, NotFound
from ratecard.metering.meters import aggregate
from ratecard.metering.model import Event
from ratecard.store.clickhouse_store import ClickHouseUsageStore, encode_properties
from ratecard.store.usage import Line, open_usage_store

pytestmark = pytest.mark.clickhouse

T0 = datetime(2026, 3, 1, tzinfo=UTC)

METERS = {
    "requests": Meter(event="llm.request", aggregation="count"),
    "tokens": Meter(event="llm.request", aggregation="sum", property="tokens",
                    group_by=["model"]),
    "biggest": Meter(event="llm.request", aggregation="max", property="tokens"),
    "last": Meter(event="llm.request", aggregation="latest", property="tokens",
                  group_by=["model"]),
    "users": Meter(event="llm.request", aggregation="unique_count", property="user",
                   group_by=["model"]),
    "tasks": Meter(event="llm.request", aggregation="count", filter={"model": ["a", "b"]},
                   weights={"property": "cx", "values": {"simple": 1, "complex": "2.5"}}),
    "weighted": Meter(event="llm.request", aggregation="sum", property="tokens",
                      weights={"property": "cx", "values": {"simple": 1, "complex": "0.5"}}),
}

# a stream of events: tokens are integers, decimals, numeric strings or missing
_event = st.fixed_dictionaries({
    "customer": st.sampled_from(["c1", "c2", "c3"]),
    "minute": st.integers(0, 3 * 24 * 60),
    "model": st.sampled_from(["a", "b", "c", ""]),
    "tokens": st.one_of(st.none(), st.integers(0, 10**12),
                        st.decimals(0, 10**6, places=3, allow_nan=False).map(str),
                        st.decimals(0, 10**4, places=9, allow_nan=False)),
    "user": st.one_of(st.none(), st.sampled_from(["u1", "u2", 3, True])),
    "cx": st.sampled_from(["simple", "complex"]),
})

_run = itertools.count(1)


def _events(specs: list[dict[str, Any]], tag: str) -> list[Event]:
    out = []
    for i, s in enumerate(specs):
        props: dict[str, Any] = {"model": s["model"], "cx": s["cx"]}
        if s["tokens"] is not None:
            props["tokens"] = s["tokens"]
        if s["user"] is not None:
            props["user"] = s["user"]
        out.append(Event(f"{tag}-{i}", "llm.request", f"{tag}-{s['customer']}",
                         T0 + timedelta(minutes=s["minute"], microseconds=i), props))
    return out


def _expected(meter: Meter, name: str, events: list[Event], window: Window) -> dict[str, Any]:
    out = {}
    for c in sorted({e.customer for e in events}):
        u = aggregate(name, meter, [e for e in events if e.customer == c and e.timestamp in window])
        out[c] = u
    return out


def _same(store: Any, events: list[Event], window: Window, label: str) -> None:
    customers = sorted({e.customer for e in events})
    for name, meter in METERS.items():
        got = store.aggregate(meter, window=window, customers=customers, key=name)
        want = _expected(meter, name, events, window)
        for c in customers:
            assert got[c].quantity == want[c].quantity, (label, name, c)
            assert dict(got[c].groups) == dict(want[c].groups), (label, name, c)


WINDOWS = [
    Window(T0, T0 + timedelta(days=31)),
    Window(T0 + timedelta(hours=5, minutes=17, seconds=3, microseconds=9),
           T0 + timedelta(days=1, hours=20, minutes=1)),
]


@pytest.fixture(scope="module")
def shared_stores(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[dict[str, Any]]:
    """One store per engine, shared by the examples of the property test."""
    server = request.getfixturevalue("clickhouse_server")
    folder = request.getfixturevalue("chdb_folder")
    urls = {"clickhouse": server.url("prop") + "?settle=0",
            "chdb": f"chdb://{folder}?database=prop&settle=0"}
    stores = {k: ClickHouseUsageStore.open(u) for k, u in urls.items()}
    yield stores
    for s in stores.values():
        s.drop()
        s.close()


@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=st.lists(_event, min_size=1, max_size=40), cut=st.integers(0, 40),
       voids=st.sets(st.integers(0, 39), max_size=4))
def test_every_meter_matches_memory_before_and_after_rollups_voids_and_merges(
        shared_stores: dict[str, Any], specs: list[dict[str, Any]], cut: int,
        voids: set[int]) -> None:
    tag = f"p{next(_run)}"
    events = _events(specs, tag)
    for label, store in shared_stores.items():
        # two batches that overlap: the second resends the tail of the first
        first = store.append(events[: cut + 1])
        second = store.append(events[max(0, cut - 3):])
        assert first.accepted + second.accepted == len(events), label
        a, b = min(cut + 1, len(events)), min(max(0, cut - 3), len(events))
        assert second.duplicates == max(0, a - b), label
        live = list(events)
        for i in sorted(voids):
            if i < len(events):
                store.void(events[i].event_id, "test")
        live = [e for i, e in enumerate(events) if i not in voids]
        _same(store, live, WINDOWS[1], f"{label} raw")
        store.sync_meters(METERS)
        _same(store, live, WINDOWS[0], f"{label} rollups")
        if live:
            store.void(live[0].event_id, "after the rollup")
            live = live[1:]
        store.optimize()
        _same(store, live, WINDOWS[1], f"{label} merged")


def test_values_series_scan_and_get(usage_url: str) -> None:
    store = open_usage_store(usage_url)
    try:
        evs = [Event(f"e{i}", "llm.request", "acme", T0 + timedelta(hours=i, microseconds=i),
                     {"model": "a" if i % 2 else "b", "tokens": Decimal(i) / 4,
                      "user": f"u{i % 3}", "cx": "simple", "nested": {"x": [1, 2]}})
               for i in range(30)]
        assert store.append(evs).accepted == 30
        store.sync_meters(METERS)
        w = Window(T0, T0 + timedelta(days=2))
        got = store.aggregate(METERS["tokens"], window=w, values=True, key="tokens")["acme"]
        want = aggregate("tokens", METERS["tokens"], evs)
        assert got.values == want.values
        assert got.quantity == want.quantity == Decimal("108.75")
        series = store.series(METERS["requests"], window=w, grain="day")
        assert [(p.bucket, p.quantity) for p in series] == [
            (T0, Decimal(24)), (T0 + timedelta(days=1), Decimal(6))]
        hourly = store.series(METERS["tokens"], window=w, grain="hour")
        assert sum(p.quantity for p in hourly) == want.quantity
        assert {p.group for p in hourly} == {("a",), ("b",)}
        assert list(store.scan()) == evs
        assert store.customers() == ["acme"]
        got_ev = store.get("e7")
        assert got_ev is not None and got_ev.event == evs[7] and not got_ev.voided
        voided = store.void("e7", "sent twice by mistake")
        assert voided.voided and voided.void_reason == "sent twice by mistake"
        with pytest.raises(Conflict):
            store.void("e7", "again")
        with pytest.raises(NotFound):
            store.void("nope", "x")
        assert evs[7] not in list(store.scan())
        assert evs[7] in list(store.scan(include_voided=True))
        assert store.stats()["events"] == 30
    finally:
        store.close()


@pytest.fixture(params=["clickhouse", "chdb"])
def ch_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on the server, then on chdb."""
    return str(request.getfixturevalue(f"{request.param}_usage_url"))


def test_unreadable_values_raise_like_memory_and_a_void_clears_them(usage_url: str) -> None:
    store = open_usage_store(usage_url)
    try:
        evs = [Event("ok", "llm.request", "acme", T0, {"tokens": 5, "cx": "simple"}),
               Event("bad", "llm.request", "acme", T0 + timedelta(minutes=1),
                     {"tokens": "lots", "cx": "odd"})]
        store.append(evs)
        store.sync_meters(METERS)
        w = Window(T0, T0 + timedelta(days=1))
        meters = {**METERS, "per_task": Meter(
            event="llm.request", aggregation="count",
            weights={"property": "cx", "values": {"simple": 1, "complex": 3}})}
        store.sync_meters(meters)
        for name in ("tokens", "biggest", "last", "weighted", "per_task"):
            with pytest.raises(EventInvalid, match="'bad'"):
                aggregate(name, meters[name], evs)
            with pytest.raises(EventInvalid, match="'bad'"):
                store.aggregate(meters[name], window=w)
        store.void("bad", "garbage")
        assert store.aggregate(METERS["tokens"], window=w)["acme"].quantity == 5
        assert store.aggregate(METERS["tasks"], window=w) == {}
    finally:
        store.close()


def test_lines_are_validated_by_the_shared_rules(usage_url: str) -> None:
    store = open_usage_store(usage_url)
    try:
        now = T0 + timedelta(days=1)
        lines = [
            Line(1, '{"event_id": "a", "type": "t", "customer": "c", '
                    '"timestamp": "2026-03-01T10:00:00Z", "properties": {"n": 1.25}}'),
            Line(2, '{"event_id": "a", "type": "t", "customer": "c", '
                    '"timestamp": "2026-03-01T10:00:00Z"}'),
            Line(3, '{"event_id": "b", "type": "t"}'),
            Line(4, "not json"),
            Line(5, '{"event_id": "c", "type": "t", "customer": "c", '
                    '"timestamp": "2026-03-01T11:00:00.123456+01:00", '
                    '"properties": {"n": "12345678901234567890.5"}}'),
        ]
        r = store.append_lines(lines, now=now)
        assert (r.accepted, r.duplicates, [x.line for x in r.rejected]) == (2, 1, [3, 4])
        again = store.append_lines(lines, now=now)
        assert (again.accepted, again.duplicates) == (0, 3)
        m = Meter(event="t", aggregation="sum", property="n")
        got = store.aggregate(m, window=Window(T0, now))["c"].quantity
        assert got == Decimal("12345678901234567891.75")
        ev = store.get("c")
        assert ev is not None
        assert ev.event.timestamp == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    finally:
        store.close()


def test_concurrent_writers_with_overlapping_ids_count_each_event_once(usage_url: str) -> None:
    if usage_url.startswith("duckdb"):
        pytest.skip("DuckDB takes one writer process; its writes are serialised in-process")
    # writers wait `settle` seconds after their stamp, so exactly one answers "accepted"
    url = usage_url.replace("settle=0", "settle=1")
    stores = [ClickHouseUsageStore.open(url) for _ in range(3)]
    try:
        events = [Event(f"r{i}", "llm.request", f"c{i % 5}", T0 + timedelta(seconds=i),
                        {"tokens": i}) for i in range(300)]
        barrier = threading.Barrier(len(stores))
        accepted = [0] * len(stores)

        def send(k: int) -> None:
            for round_ in range(3):
                # every writer sends an overlapping slice at the same moment
                part = events[round_ * 100: round_ * 100 + 100]
                barrier.wait()
                accepted[k] += stores[k].append(part[k * 10:] + part[: k * 10]).accepted

        threads = [threading.Thread(target=send, args=(k,)) for k in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        m = Meter(event="llm.request", aggregation="sum", property="tokens")
        w = Window(T0, T0 + timedelta(days=1))
        total = sum(u.quantity for u in stores[0].aggregate(m, window=w).values())
        assert total == sum(range(300))
        assert sum(1 for _ in stores[0].scan()) == 300
        # every copy beyond the first was refused or retracted, and answered "duplicate"
        assert sum(accepted) == 300
    finally:
        for s in stores:
            s.close()


def test_a_copy_left_by_a_writer_that_stopped_is_settled(clickhouse_usage_url: str) -> None:
    store = ClickHouseUsageStore.open(clickhouse_usage_url)
    try:
        ev = Event("x1", "llm.request", "acme", T0, {"tokens": 7})
        store.append([ev])
        # a second writer inserted the same id and stopped before its check
        keys, texts, kinds, alts = encode_properties(ev.properties)
        store.engine.insert(store._events, ("customer", "type", "event_id", "ts", "us", "props",
                                            "p.key", "p.text", "p.kind", "p.alt", "row_id"),
                            [["acme"], ["llm.request"], ["x1"], [int(T0.timestamp())], [0],
                             ['{"tokens":7}'], [keys], [texts], [kinds], [alts], [5]],
                            ("String",) * 6 + ("Array(String)",) * 2 + ("Array(UInt8)",
                                                                       "Array(String)",
                                                                       "UInt64"))
        m = Meter(event="llm.request", aggregation="sum", property="tokens")
        w = Window(T0, T0 + timedelta(days=1))
        assert store.repair() == 1
        assert store.aggregate(m, window=w)["acme"].quantity == 7
        # a resend finds it stored (once) and counts a duplicate
        assert store.append([ev]).duplicates == 1
        store.optimize()
        assert store.aggregate(m, window=w)["acme"].quantity == 7
    finally:
        store.close()


def test_cluster_shards_by_customer_and_agrees_with_memory(
        clickhouse_cluster_usage_url: str, clickhouse_cluster: Any) -> None:
    store = ClickHouseUsageStore.open(clickhouse_cluster_usage_url)
    try:
        evs = [Event(f"e{i}", "llm.request", f"cust-{i % 13}", T0 + timedelta(minutes=7 * i),
                     {"model": "a" if i % 3 else "b", "tokens": i, "user": f"u{i % 4}",
                      "cx": "complex"}) for i in range(260)]
        store.append(evs[:200])
        store.sync_meters(METERS)
        assert store.append(evs[150:]).duplicates == 50
        store.void("e3", "wrong customer")
        live = [e for e in evs if e.event_id != "e3"]
        for w in WINDOWS:
            _same(store, live, w, "cluster")
        # both shards hold events, each customer on exactly one of them
        per_node = []
        for node in store.nodes:
            per_node.append(dict(node.rows(
                f"SELECT customer, count() FROM {store.target.local('events')} "
                f"GROUP BY customer")))
        assert all(per_node)
        assert not set(per_node[0]) & set(per_node[1])
        assert set(per_node[0]) | set(per_node[1]) == {e.customer for e in evs}
    finally:
        store.close()


def test_urls() -> None:
    with pytest.raises(InvalidInput):
        open_usage_store("chdb://relative/path")
    with pytest.raises(InvalidInput):
        open_usage_store("clickhouse://127.0.0.1:9000/bad-name!")
    with pytest.raises(InvalidInput):
        open_usage_store("clickhouse://127.0.0.1:notaport/db")


def test_property_encoding_matches_the_meters_reading() -> None:
    keys, texts, kinds, alts = encode_properties(
        {"a": 1, "b": "1e3", "c": True, "d": None, "e": Decimal("2.50"), "f": "x", "g": [1],
         "h": "0.0000000001"})
    assert keys == ["a", "b", "c", "e", "f", "g", "h"]
    assert texts == ["1", "1e3", "true", "2.5", "x", "[1]", "0.0000000001"]
    assert kinds == [1, 1, 2, 1, 2, 2, 2]
    assert alts == ["", "1000", "", "", "", "", ""]
