"""Fixtures for metering tests: usage stores of every backend, catalogs, event factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ratecard.store.usage import UsageStore, open_usage_store

# Backends the contract runs against. A new backend adds a name here and a branch in
# make_usage_store (the ClickHouse store will, under the `clickhouse` marker).
BACKENDS = [
    "duckdb",
    pytest.param("clickhouse", marks=pytest.mark.clickhouse),
    pytest.param("chdb", marks=pytest.mark.clickhouse),
]


def make_usage_store(backend: str, tmp: Path | None) -> UsageStore:
    if backend == "duckdb":
        url = f"duckdb:///{tmp / 'usage.duckdb'}" if tmp is not None else "duckdb://:memory:"
        return open_usage_store(url)
    from ratecard.store.clickhouse_testing import usage_url_for

    return open_usage_store(usage_url_for(backend, tmp))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def usage_store(backend: str, tmp_path: Path) -> Iterator[UsageStore]:
    store = make_usage_store(backend, tmp_path)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store_factory(backend: str) -> Iterator[Callable[[], UsageStore]]:
    """Fresh throwaway stores (for property tests: one per example)."""
    made: list[UsageStore] = []

    def make() -> UsageStore:
        s = make_usage_store(backend, None)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
