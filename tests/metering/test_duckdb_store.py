"""DuckDB-specific behaviour of the usage store: URLs, the one-writer lock, read-only
opening, rollup compaction and families, the Arrow usage table, threads, the ingest
service used by the API."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window
from ratecard.errors import InvalidInput, NotFound, Unavailable
from ratecard.metering.events import EventRules, PropertyChecks
from ratecard.metering.meters import aggregate
from ratecard.metering.model import Event
from ratecard.store.duckdb_store import DuckDBUsageStore, families_of, plan_segments
from ratecard.store.usage import Line, open_usage_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MONTH = Window(T0, datetime(2026, 4, 1, tzinfo=UTC))
INPUT = Meter(event="llm.request", aggregation="sum", property="tokens", group_by=["model"])
REQS = Meter(event="llm.request", aggregation="count", group_by=["model"])
PEAK = Meter(event="llm.request", aggregation="max", property="tokens", group_by=["model"])
SEATS = Meter(event="seat", aggregation="unique_count", property="user")
METERS = {"input": INPUT, "requests": REQS, "peak": PEAK, "seats": SEATS}


def ev(i: int, customer: str = "acme", *, minutes: float = 0, tokens: int = 1,
       model: str = "m") -> Event:
    return Event(f"e{i}", "llm.request", customer, T0 + timedelta(minutes=minutes),
                 {"tokens": tokens, "model": model})


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = open_usage_store("duckdb:///rel/usage.duckdb")
    s.close()
    assert (tmp_path / "rel" / "usage.duckdb").exists()
    s = open_usage_store(f"duckdb:///{tmp_path / 'abs.duckdb'}")
    s.close()
    assert (tmp_path / "abs.duckdb").exists()
    with pytest.raises(InvalidInput):
        open_usage_store("duckdb:/nope")
    with pytest.raises(InvalidInput):
        open_usage_store("mysql://x")
    with pytest.raises(NotFound):
        open_usage_store(f"duckdb:///{tmp_path / 'missing.duckdb'}", read_only=True)


def test_a_second_writer_process_is_refused(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'u.duckdb'}"
    s = open_usage_store(url)
    try:
        code = ("import sys; from ratecard.store.usage import open_usage_store\n"
                "from ratecard.errors import Unavailable\n"
                "try:\n    open_usage_store(sys.argv[1])\nexcept Unavailable as e:\n"
                "    print(e); sys.exit(5)\n")
        r = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 5, r.stderr
        assert "another process" in r.stdout
    finally:
        s.close()


def test_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'u.duckdb'}"
    s = open_usage_store(url)
    s.sync_meters(METERS)
    s.append([ev(1, tokens=3)])
    s.close()
    ro = open_usage_store(url, read_only=True)
    try:
        assert ro.aggregate(INPUT, window=MONTH)["acme"].quantity == 3
        with pytest.raises(Unavailable):
            ro.append([ev(2)])
    finally:
        ro.close()


def test_families_group_meters_by_type_filter_and_group_by() -> None:
    fams = families_of(METERS | {"in2": Meter(event="llm.request", aggregation="sum",
                                              property="tokens", group_by=["model"]),
                                 "eu": Meter(event="llm.request", aggregation="count",
                                             filter={"region": "eu"})})
    shapes = sorted((f.event, f.filter, f.group_by, len(f.meters)) for f in fams)
    # input/requests/peak (in2 is the same meter as input) share one family; the filtered
    # meter has its own; unique counts have none
    assert shapes == [("llm.request", (), ("model",), 3),
                      ("llm.request", (("region", ("eu",)),), (), 1)]


def test_plan_segments_cover_the_window_exactly() -> None:
    w = Window(datetime(2026, 3, 1, 10, 30, tzinfo=UTC), datetime(2026, 3, 4, 2, 15, tzinfo=UTC))
    segs = plan_segments(w)
    assert [k for k, _, _ in segs] == ["raw", "hour", "day", "hour", "raw"]
    assert segs[0] == ("raw", w.start, datetime(2026, 3, 1, 11, tzinfo=UTC))
    assert segs[-1] == ("raw", datetime(2026, 3, 4, 2, tzinfo=UTC), w.end)
    assert ("day", datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)) in segs
    for (_, _, e), (_, s, _) in itertools.pairwise(segs):
        assert e == s
    assert plan_segments(Window(T0, T0)) == []
    inner = Window(T0 + timedelta(minutes=5), T0 + timedelta(minutes=50))
    assert plan_segments(inner) == [("raw", inner.start, inner.end)]


def test_compaction_keeps_every_aggregate(tmp_path: Path) -> None:
    s = DuckDBUsageStore.open(f"duckdb:///{tmp_path / 'u.duckdb'}")
    try:
        s.sync_meters(METERS)
        events = [ev(i, f"c{i % 5}", minutes=i * 7, tokens=i % 13, model=f"m{i % 3}")
                  for i in range(600)]
        for k in range(0, 600, 50):  # many small appends: many partial rows per key
            s.append(events[k:k + 50])
        before = {m: s.aggregate(meter, window=MONTH) for m, meter in METERS.items()}
        rows = s.con.execute(f"SELECT count(*) FROM {s.families()[0].table('day')}").fetchall()
        assert s.compact(hourly=True) == 2
        after = {m: s.aggregate(meter, window=MONTH) for m, meter in METERS.items()}
        assert before == after
        rows2 = s.con.execute(f"SELECT count(*) FROM {s.families()[0].table('day')}").fetchall()
        assert rows2[0][0] < rows[0][0]
        for c in ("c0", "c3"):
            mine = [e for e in events if e.customer == c]
            assert after["input"][c].quantity == aggregate("", INPUT, mine).quantity
    finally:
        s.close()


def test_usage_table_matches_aggregate(usage_store_duckdb: DuckDBUsageStore) -> None:
    s = usage_store_duckdb
    s.sync_meters({"input": INPUT, "requests": REQS, "peak": PEAK})
    events = [ev(i, f"c{i % 3}", minutes=i * 31, tokens=i, model=f"m{i % 2}")
              for i in range(300)]
    s.append(events)
    w = Window(T0 + timedelta(minutes=45), T0 + timedelta(days=3, minutes=10))
    tab = s.usage_table({"input": INPUT, "requests": REQS, "peak": PEAK}, window=w)
    assert tab.column_names == ["customer", "model", "input", "requests", "peak"]
    agg = s.aggregate(INPUT, window=w)
    for row in tab.to_pylist():
        assert Decimal(row["input"]) == agg[row["customer"]].groups[(row["model"],)]
    one = s.usage_table({"input": INPUT}, window=w, customers=["c1"])
    assert set(one.column("customer").to_pylist()) == {"c1"}
    with pytest.raises(InvalidInput):
        s.usage_table({"seats": SEATS}, window=w)


@pytest.fixture
def usage_store_duckdb(tmp_path: Path) -> Iterator[DuckDBUsageStore]:
    s = DuckDBUsageStore.open(f"duckdb:///{tmp_path / 'u.duckdb'}")
    yield s
    s.close()


def test_threads_share_one_store(usage_store_duckdb: DuckDBUsageStore) -> None:
    s = usage_store_duckdb
    s.sync_meters({"input": INPUT})
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for k in range(10):
                s.append([ev(t * 1000 + k * 10 + i, f"c{t}", minutes=k, tokens=1)
                          for i in range(10)])
                s.aggregate(INPUT, window=MONTH, customers=[f"c{t}"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = s.aggregate(INPUT, window=MONTH)
    assert {c: u.quantity for c, u in got.items()} == {f"c{t}": 100 for t in range(4)}


def test_sync_meters_builds_from_existing_events_and_drops_unused(
        usage_store_duckdb: DuckDBUsageStore) -> None:
    s = usage_store_duckdb
    s.append([ev(i, tokens=2, minutes=i) for i in range(20)])
    s.sync_meters({"input": INPUT})
    assert len(s.families()) == 1
    assert s.aggregate(INPUT, window=MONTH)["acme"].quantity == 40
    s.sync_meters({"requests": Meter(event="llm.request", aggregation="count")})
    assert len(s.families()) == 1 and s.families()[0].group_by == ()
    # a meter without rollups is still exact (read from the raw events)
    assert s.aggregate(INPUT, window=MONTH)["acme"].quantity == 40


def test_ingest_table_uses_the_workspace_catalog(tmp_path: Path) -> None:
    """The API's path: a batch table in, the workspace's catalog and rules applied."""
    from ratecard.billing.catalogs import apply_catalog
    from ratecard.metering.service import ingest_table
    from ratecard.store.state import session_scope
    from ratecard.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", create=True)
    with session_scope(ws) as session:
        apply_catalog(session, Catalog(meters={"input": INPUT}))
    store = open_usage_store(ws.usage_url)
    try:
        now = datetime.now(UTC)
        good = ('{"event_id":"a","type":"llm.request","customer":"c","properties":'
                '{"model":"m","tokens":5}}')
        bad = ('{"event_id":"b","type":"llm.request","customer":"c","properties":'
               '{"model":"m","tokens":"five"}}')
        table = pa.table({"line": pa.array([1, 2], pa.int64()), "raw": [good, bad]})
        r = ingest_table(ws, store, table, source="api", now=now)
        assert r.accepted == 1 and [x.line for x in r.rejected] == [2]
        assert "tokens" in r.rejected[0].reason
        w = Window(now - timedelta(hours=1), now + timedelta(hours=1))
        assert store.aggregate(INPUT, window=w)["c"].quantity == 5
    finally:
        store.close()


def test_lines_api_with_rules(usage_store_duckdb: DuckDBUsageStore) -> None:
    s = usage_store_duckdb
    now = datetime(2026, 3, 10, tzinfo=UTC)
    line = ('{"event_id":"x","type":"llm.request","customer":"c",'
            '"timestamp":"2026-03-05T00:00:00Z"}')
    r = s.append_lines([Line(1, line)], rules=EventRules(late=timedelta(days=2)), now=now,
                       checks=PropertyChecks(None))
    assert r.accepted == 0 and "late-event window (2 days)" in r.rejected[0].reason


def test_compaction_rewrites_only_the_months_touched(
        usage_store_duckdb: DuckDBUsageStore) -> None:
    s = usage_store_duckdb
    s.sync_meters({"input": INPUT})
    march = [ev(i, minutes=i * 60, tokens=1) for i in range(30)]
    april = [Event(f"a{i}", "llm.request", "acme", datetime(2026, 4, 2, tzinfo=UTC)
                   + timedelta(hours=i), {"tokens": 2, "model": "m"}) for i in range(30)]
    s.append(march)
    s.append(april)
    assert s.compact() == 2
    assert s.compact() == 0
    s.append([Event("late", "llm.request", "acme", datetime(2026, 4, 3, tzinfo=UTC),
                    {"tokens": 5, "model": "m"})])
    assert s.compact() == 1
    april_w = Window(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    assert s.aggregate(INPUT, window=april_w)["acme"].quantity == 65
    assert s.aggregate(INPUT, window=MONTH)["acme"].quantity == 30
