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
* :func:`usage_url_for` (a plain function, for fixtures that make stores themselves):
  a URL on the shared server or chdb, the same for the same folder.
* ``usage_url``: parametrised over ``duckdb``, ``clickhouse`` and ``chdb`` (the last
  two marked ``clickhouse``): a fresh usage store URL of each backend, so a test (or
  a fixture such as the contract's ``usage_store``) that asks for it runs on all three.

URLs carry ``settle=0``: a rollup is built without waiting for other writers, since
a test process is the only writer of its database.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


_SERVER: dict[str, Any] = {}


def shared_server() -> LocalClickHouse:
    """The test run's ClickHouse server, started on first use (stopped when pytest ends)."""
    if "server" not in _SERVER:
        server = LocalClickHouse(memory_bytes=2 * 1024**3)
        server.start()  # raises with the server's log: a test that needs it fails loudly
        _SERVER["server"] = server
    return _SERVER["server"]  # type: ignore[no-any-return]


def shared_chdb_folder() -> Path:
    """The test run's chdb data folder (chdb hosts one per process)."""
    if "chdb" not in _SERVER:
        _SERVER["chdb"] = Path(tempfile.mkdtemp(prefix="ratecard-chdb-"))
    return _SERVER["chdb"]  # type: ignore[no-any-return]


def usage_url_for(backend: str, folder: Path | None = None) -> str:
    """A usage store URL on ``clickhouse`` (the shared server) or ``chdb``.

    The same ``folder`` gives the same database (a test that reopens its store finds
    its events); ``None`` gives a fresh one.
    """
    if folder is None:
        db = _database()
    else:
        db = "f_" + hashlib.sha1(str(folder).encode()).hexdigest()[:16]
    if backend == "clickhouse":
        return shared_server().url(db) + "?settle=0"
    if backend == "chdb":
        return f"chdb://{shared_chdb_folder()}?database={db}&settle=0"
    raise ValueError(f"unknown ClickHouse backend {backend!r}")


def pytest_unconfigure(config: pytest.Config) -> None:
    server = _SERVER.pop("server", None)
    if server is not None:
        server.stop()
    folder = _SERVER.pop("chdb", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def clickhouse_server() -> LocalClickHouse:
    return shared_server()


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
def chdb_folder() -> Path:
    return shared_chdb_folder()


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
