"""Checks against the state database: counters kept at ingestion, overrides, plan versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratecard.clock import Window
from ratecard.entitlements import repository as repo
from ratecard.entitlements import service as ent
from ratecard.entitlements.rules import (
    MemoryCounter,
    bucket_deltas,
    calendar_period,
    floor_minute,
    parse_window,
)
from ratecard.errors import InvalidInput, NotFound, TimeInvalid
from ratecard.metering.meters import aggregate
from ratecard.metering.model import Event

from .conftest import CATALOG, Env

MON = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
D = Decimal


def prompts(cid: str, n: int, start: datetime, every: timedelta, tag: str) -> list[Event]:
    return [Event(f"{tag}{i}", "coding.prompt", cid, start + i * every, {"tokens": 10})
            for i in range(n)]


def test_check_reads_counters_kept_at_ingestion(env: Env) -> None:
    env.customer("dev1")
    env.subscribe("dev1", "lite", MON - timedelta(days=1))
    env.run(ent.on_events_ingested, prompts("dev1", 120, MON, MIN, "a"), env.catalog)
    r = env.run(ent.check, "dev1", "prompts", at=MON + timedelta(hours=2))
    assert not r.allowed and (r.limit, r.used, r.remaining) == (120, 120, 0)
    assert r.resets_at == MON + timedelta(hours=5)
    assert "limit reached" in r.reason
    r = env.run(ent.check, "dev1", "prompts", at=MON + timedelta(hours=5), quantity=1)
    assert r.allowed and r.used == 119
    # a check consumes nothing
    r2 = env.run(ent.check, "dev1", "prompts", at=MON + timedelta(hours=5), quantity=1)
    assert r2.used == 119
    r = env.run(ent.check, "dev1", "prompts", at=MON + timedelta(hours=5), quantity=10)
    assert not r.allowed and r.retry_at == MON + timedelta(hours=5, minutes=9)
    d = r.to_dict()
    assert d["resets_at"] == "2026-03-02T13:01:00Z" and d["windows"][1]["window"] == "7d"


def test_boolean_config_unknown_feature_and_customer(env: Env) -> None:
    env.customer("dev1")
    env.subscribe("dev1", "lite", MON)
    at = MON + timedelta(hours=1)
    assert not env.run(ent.check, "dev1", "sso", at=at).allowed
    r = env.run(ent.check, "dev1", "models", at=at, value="plus")
    assert r.allowed and r.kind == "config"
    assert not env.run(ent.check, "dev1", "models", at=at, value="ultra").allowed
    assert not env.run(ent.check, "dev1", "integrations", at=at, quantity=4).allowed
    # a feature of another plan: not included; a feature nobody defines: an error
    r = env.run(ent.check, "dev1", "premium_requests", at=at)
    assert not r.allowed and "not included in plan lite" in r.reason
    with pytest.raises(NotFound, match="unknown feature 'teleport'"):
        env.run(ent.check, "dev1", "teleport", at=at)
    with pytest.raises(NotFound, match="no customer 'ghost'"):
        env.run(ent.check, "ghost", "prompts", at=at)
    env.customer("nosub")
    r = env.run(ent.check, "nosub", "sso", at=at)
    assert not r.allowed and "no active subscription" in r.reason


def test_overrides_with_start_and_end(env: Env) -> None:
    env.customer("dev1")
    env.subscribe("dev1", "lite", MON - timedelta(days=1))
    env.run(ent.on_events_ingested, prompts("dev1", 150, MON, timedelta(seconds=30), "a"),
            env.catalog)
    at = MON + timedelta(hours=2)
    assert not env.run(ent.check, "dev1", "prompts", at=at).allowed
    o = env.run(ent.set_override, "dev1", "prompts",
                {"meter": "prompts", "limits": [{"limit": 500, "window": "5h"}]},
                starts_at=MON, ends_at=MON + timedelta(days=1), at=MON)
    r = env.run(ent.check, "dev1", "prompts", at=at)
    assert r.allowed and r.limit == 500 and r.source == f"override:{o.id}"
    assert env.run(ent.check, "dev1", "prompts", at=MON + timedelta(days=1)).limit == 120
    env.run(ent.set_override, "dev1", "sso", True, starts_at=MON, at=MON)
    assert env.run(ent.check, "dev1", "sso", at=at).allowed
    env.run(ent.end_override, o.id, at=MON + timedelta(hours=1))
    assert env.run(ent.check, "dev1", "prompts", at=at).limit == 120
    assert [x.feature for x in env.run(ent.list_overrides, "dev1")] == ["prompts", "sso"]
    with pytest.raises(TimeInvalid):
        env.run(ent.set_override, "dev1", "sso", True, starts_at=at, ends_at=MON)
    with pytest.raises(InvalidInput):
        env.run(ent.set_override, "dev1", "prompts", {"meter": "prompts"})


def test_grandfathered_version_keeps_its_limits(env: Env) -> None:
    env.customer("old")
    env.subscribe("old", "lite", MON - timedelta(days=1))
    env.apply(CATALOG.replace("{limit: 120, window: 5h}", "{limit: 60, window: 5h}"))
    env.customer("new")
    env.subscribe("new", "lite", MON - timedelta(days=1))
    at = MON + timedelta(hours=1)
    assert env.run(ent.check, "old", "prompts", at=at).windows[0].limit == 120
    assert env.run(ent.check, "new", "prompts", at=at).windows[0].limit == 60


def test_credit_meter_check_block_and_overage(env: Env) -> None:
    env.customer("i1")
    env.subscribe("i1", "individual", MON)
    at = MON + timedelta(hours=1)
    r = env.run(ent.check, "i1", "ai_credits", at=at, quantity=500)
    assert r.allowed and r.remaining == 500 and r.kind == "credits"
    events = [Event(f"x{i}", "ai.action", "i1", MON + timedelta(minutes=i), {"kind": "agent"})
              for i in range(24)]  # 24 × 20 = 480 credits
    fx = env.run(ent.on_events_ingested, events, env.catalog)
    assert sum(b.covered for b in fx.burns) == 480
    r = env.run(ent.check, "i1", "ai_credits", at=at, quantity=21)
    assert not r.allowed and r.remaining == 20 and "insufficient credits" in r.reason
    env.customer("t1")
    env.subscribe("t1", "team", MON)
    r = env.run(ent.check, "t1", "ai_credits", at=at, quantity=5000)
    assert r.allowed and r.overage == 2000


def test_rebuild_matches_incremental_and_nanos_stay_exact(env: Env) -> None:
    env.customer("c")
    env.subscribe("c", "lite", MON - timedelta(days=1))
    evs = [Event(f"e{i}", "coding.prompt", "c", MON + timedelta(seconds=37 * i),
                 {"tokens": "0.000000001" if i % 2 else "12345678901.5"}) for i in range(300)]
    for i in range(0, 300, 70):
        env.run(ent.on_events_ingested, evs[i:i + 70], env.catalog)
    inc = env.run(repo.counter_rows, "c", "tokens")
    env.run(ent.rebuild_counters, evs, env.catalog, customers=["c"])
    assert env.run(repo.counter_rows, "c", "tokens") == inc
    total = env.run(ent.window_usage, "c", "tokens", MON, MON + timedelta(days=1))
    assert total == D("12345678901.5") * 150 + D("0.000000001") * 150


# --------------------------------------------------------------------------- agreement

WINDOWS = ["30m", "5h", "7d", "day", "week", "month"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_counters_agree_with_aggregating_the_events(sqlite_env: Env, data: Any) -> None:
    _agreement(sqlite_env, data)


@pytest.mark.postgres
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_counters_agree_on_postgres(env_pg: Env, data: Any) -> None:
    _agreement(env_pg, data)


@pytest.fixture
def env_pg(postgres_url: str) -> Env:
    from ratecard.billing.catalogs import current_catalog
    from ratecard.store import state

    with state.session_scope(postgres_url) as s:
        applied = current_catalog(s) is not None
    e = Env.__new__(Env)
    e.url = postgres_url
    if not applied:
        e = Env(postgres_url)
    else:
        from ratecard.catalog.loader import parse_catalog_text

        e.catalog = parse_catalog_text(CATALOG)
    return e


_seq = iter(range(10**9))


def _agreement(e: Env, data: Any) -> None:
    cid = f"agree{next(_seq)}"
    tz = data.draw(st.sampled_from(["UTC", "Asia/Kolkata", "America/New_York"]))
    e.customer(cid, timezone=tz)
    base = datetime(2026, 2, 25, tzinfo=UTC)
    offsets = data.draw(st.lists(st.integers(0, 60 * 24 * 12 * 60), max_size=60))
    events = [Event(f"{cid}-{i}", "coding.prompt", cid, base + timedelta(seconds=s),
                    {"tokens": data.draw(st.sampled_from([1, 7, "2.5", "0.125", 1000]))})
              for i, s in enumerate(offsets)]
    order = data.draw(st.permutations(range(len(events))))
    shuffled = [events[i] for i in order]
    cut = data.draw(st.integers(0, len(events)))
    e.run(ent.on_events_ingested, shuffled[:cut], e.catalog)
    e.run(ent.on_events_ingested, shuffled[cut:], e.catalog)
    for _ in range(4):
        now = base + timedelta(seconds=data.draw(st.integers(0, 60 * 24 * 13 * 60)))
        window = parse_window(data.draw(st.sampled_from(WINDOWS)))
        end = floor_minute(now) + MIN
        if window.kind == "rolling":
            assert window.length is not None
            span = Window(end - window.length, end)
        else:
            assert window.unit is not None
            span = Window(calendar_period(window.unit, now, tz).start, end)
        inside = [ev for ev in events if ev.timestamp in span]
        for meter in ("prompts", "tokens"):
            expected = aggregate(meter, e.catalog.meters[meter], inside).quantity
            got = e.run(ent.window_usage, cid, meter, span.start, span.end)
            assert got == expected, (meter, span)
        # the oldest counted minute and the release walk agree with minute buckets in memory
        mem = MemoryCounter()
        for (_, meter, minute), q in bucket_deltas(events, e.catalog.meters).items():
            mem.add(meter, minute, q)
        excess = D(data.draw(st.integers(0, 40)))
        strict = data.draw(st.booleans())
        with e.session() as s:
            sql = repo.SqlCounter(s, cid)
            assert sql.first("prompts", span.start, span.end) == mem.first(
                "prompts", span.start, span.end)
            assert sql.release("prompts", span.start, span.end, excess, strict) == mem.release(
                "prompts", span.start, span.end, excess, strict)


def test_a_voided_event_leaves_the_counters(env: Env) -> None:
    env.customer("dev1")
    env.subscribe("dev1", "lite", MON - timedelta(days=1))
    evs = prompts("dev1", 120, MON, MIN, "a")
    env.run(ent.on_events_ingested, evs, env.catalog)
    at = MON + timedelta(hours=3)
    assert not env.run(ent.check, "dev1", "prompts", at=at).allowed
    env.run(ent.on_event_voided, evs[5], env.catalog)
    r = env.run(ent.check, "dev1", "prompts", at=at)
    assert r.allowed and r.used == 119
    assert env.run(ent.window_usage, "dev1", "tokens", MON, at) == 1190


def test_an_arrow_batch_of_stored_rows_feeds_the_counters(env: Env) -> None:
    import json

    import pyarrow as pa

    env.customer("dev1")
    env.subscribe("dev1", "lite", MON - timedelta(days=1))
    evs = prompts("dev1", 30, MON, MIN, "t")
    table = pa.table({
        "event_id": [e.event_id for e in evs] + ["x"],
        "type": [e.type for e in evs] + ["other.type"],
        "customer": [e.customer for e in evs] + ["dev1"],
        "ts": pa.array([e.timestamp for e in evs] + [MON], pa.timestamp("us", tz="UTC")),
        "properties": [json.dumps(e.properties) for e in evs] + ["{}"],
    })
    env.run(ent.on_table_ingested, table, env.catalog)
    r = env.run(ent.check, "dev1", "prompts", at=MON + timedelta(hours=1))
    assert r.used == 30
    assert env.run(ent.window_usage, "dev1", "tokens", MON, MON + timedelta(hours=1)) == 300


@pytest.fixture
def duck_store(tmp_path: Any, sqlite_env: Env) -> Any:
    from ratecard.store.usage import open_usage_store

    store = open_usage_store(f"duckdb:///{tmp_path / 'usage.duckdb'}")
    store.sync_meters(sqlite_env.catalog.meters)
    yield store
    store.close()


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_counters_agree_with_the_duckdb_usage_store(
    sqlite_env: Env, duck_store: Any, data: Any
) -> None:
    """The check's counters and the usage store's own aggregation give the same usage."""
    store = duck_store
    cid = f"duck{next(_seq)}"
    sqlite_env.customer(cid)
    base = datetime(2026, 2, 25, tzinfo=UTC)
    offsets = data.draw(st.lists(st.integers(0, 60 * 24 * 10 * 60), max_size=50))
    events = [Event(f"{cid}-{i}", "coding.prompt", cid, base + timedelta(seconds=s),
                    {"tokens": data.draw(st.sampled_from([1, 3, "2.5", "0.001"]))})
              for i, s in enumerate(offsets)]
    half = len(events) // 2
    for chunk in (events[:half], events[half:]):
        result = store.append(chunk)
        assert result.accepted == len(chunk)
        sqlite_env.run(ent.on_events_ingested, chunk, sqlite_env.catalog)
    for _ in range(2):
        now = base + timedelta(seconds=data.draw(st.integers(0, 60 * 24 * 11 * 60)))
        window = parse_window(data.draw(st.sampled_from(WINDOWS)))
        end = floor_minute(now) + MIN
        if window.kind == "rolling":
            assert window.length is not None
            span = Window(end - window.length, end)
        else:
            assert window.unit is not None
            span = Window(calendar_period(window.unit, now).start, end)
        for meter in ("prompts", "tokens"):
            got = store.aggregate(sqlite_env.catalog.meters[meter], window=span,
                                  customers=[cid], key=meter)[cid].quantity
            assert sqlite_env.run(ent.window_usage, cid, meter, span.start,
                                  span.end) == got, (meter, span)
