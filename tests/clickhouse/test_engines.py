"""The two ClickHouse engines the tests bracket, and what the store needs of them.

The server is Debian's package (an 18.x release, the oldest we support); chdb embeds
a current release. The store's schema must use only what both have: these tests
check by experiment that the old server lacks ``JSONExtract*``, ``DateTime64`` and
``Map`` (so a schema using them would fail there) and that the store's DDL uses
none of them.
"""

from __future__ import annotations

import pytest

from ratecard.errors import InvalidInput
from ratecard.store import clickhouse_store
from ratecard.store.clickhouse_server import LocalClickHouse
from ratecard.store.clickhouse_store import MIN_VERSION, ClickHouseUsageStore

pytestmark = pytest.mark.clickhouse

MISSING_IN_18 = {
    "JSONExtract": "SELECT JSONExtractString('{\"a\": \"b\"}', 'a')",
    "DateTime64": "SELECT toDateTime64('2026-01-01 00:00:00', 3)",
    "Map": "SELECT CAST((['a'], ['b']), 'Map(String, String)')",
}


def _version(store: ClickHouseUsageStore) -> tuple[int, ...]:
    return tuple(int(x) for x in store.server_version.split(".")[:2])


def test_the_server_is_the_oldest_supported_release_and_lacks_newer_types(
        clickhouse_usage_url: str) -> None:
    store = ClickHouseUsageStore.open(clickhouse_usage_url)
    try:
        assert _version(store)[0] == 18
        assert _version(store) >= MIN_VERSION
        for name, sql in MISSING_IN_18.items():
            with pytest.raises(InvalidInput, match="refused"):
                store.engine.rows(sql)
            assert name  # each feature is refused by the old server
    finally:
        store.close()


def test_chdb_is_a_current_engine_that_has_them(chdb_usage_url: str) -> None:
    store = ClickHouseUsageStore.open(chdb_usage_url)
    try:
        assert _version(store) >= (24, 0)
        for sql in MISSING_IN_18.values():
            assert store.engine.rows(sql)
    finally:
        store.close()


def test_the_schema_uses_none_of_them() -> None:
    target = clickhouse_store._Target("db", "c")
    ddl = " ".join(clickhouse_store._ddl(target) + clickhouse_store._dist_ddl(target))
    for word in ("JSONExtract", "DateTime64", " Map(", "LowCardinality", "Nullable"):
        assert word not in ddl


def test_the_server_runs_on_loopback_in_a_throwaway_folder(
        clickhouse_server: LocalClickHouse) -> None:
    assert clickhouse_server.root.exists()
    config = (clickhouse_server.root / "node1" / "config.xml").read_text()
    assert "<listen_host>127.0.0.1</listen_host>" in config
    assert f"<tcp_port>{clickhouse_server.port}</tcp_port>" in config
    assert str(clickhouse_server.root) in config
