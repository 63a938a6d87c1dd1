"""pytest fixtures for the ClickHouse usage store (a plugin the test suite registers).

* ``clickhouse_server`` (session): a real ClickHouse server started for this test run
  (:class:`ratecard.store.clickhouse_server.LocalClickHouse`: Debian's
  ``clickhouse-server``, loopback, throwaway folder, removed at the end). When it
  cannot start, every test that needs it fails with the server's log: no silent skip.
* ``clickhouse_cluster`` (session): two such servers forming the cluster
  ``ratecard_test`` (one shard each), for Distributed tables.
* ``clickhouse_usage_url``, ``clickhouse_cluster_usage_url``, ``chdb_usage_url``: a
  fresh, empty database for one test on the server, on the cluster, and in the
  embedded engine (chdb hosts one data folder per process: every test gets its own
  database in the session's folder). Each is dropped after the test.
* ``usage_url``: parametrised over ``duckdb``, ``clickhouse`` and ``chdb`` (the last
  two marked ``clickhouse``): a fresh usage store URL of each backend, so a test (or
  a fixture such as the contract's ``usage_store``) that asks for it runs on all three.

URLs carry ``settle=0``: a rollup is built without waiting for other writers, since
a test process is the only writer of its database.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratecard.store.clickhouse_server import LocalClickHouse

_names = itertools.count(1)

USAGE_BACKENDS = [
    "duckdb",
    pytest.param("clickhouse", marks=pytest.mark.clickhouse),
    pytest.param("chdb", marks=pytest.mark.clickhouse),
]
"""The params of :func:`usage_url`: reuse them to parametrise another fixture."""


def _database() -> str:
    return f"t_{os.getpid()}_{next(_names)}"


def _drop(url: str) -> None:
    from ratecard.store.clickhouse_store import ClickHouseUsageStore

    try:
        store = ClickHouseUsageStore.open(url)
    except Exception:  # the test may have stopped the server on purpose
        return
    try:
        store.drop()
    finally:
        store.close()


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[LocalClickHouse]:
    server = LocalClickHouse(memory_bytes=2 * 1024**3)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def clickhouse_cluster() -> Iterator[LocalClickHouse]:
    cluster = LocalClickHouse(shards=2, memory_bytes=1024**3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def clickhouse_usage_url(clickhouse_server: LocalClickHouse) -> Iterator[str]:
    url = clickhouse_server.url(_database()) + "?settle=0"
    yield url
    _drop(url)


@pytest.fixture
def clickhouse_cluster_usage_url(clickhouse_cluster: LocalClickHouse) -> Iterator[str]:
    url = clickhouse_cluster.url(_database(), cluster=True) + "&settle=0"
    yield url
    _drop(url)


@pytest.fixture(scope="session")
def chdb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def chdb_usage_url(chdb_folder: Path) -> Iterator[str]:
    url = f"chdb://{chdb_folder}?database={_database()}&settle=0"
    yield url
    _drop(url)


@pytest.fixture(params=USAGE_BACKENDS)
def usage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh usage store URL on DuckDB, the ClickHouse server and chdb."""
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'usage.duckdb'}"
    return str(request.getfixturevalue(f"{request.param}_usage_url"))
