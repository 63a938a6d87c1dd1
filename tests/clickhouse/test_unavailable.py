"""A ClickHouse that is down or does not answer: a clear error, never a hang or a traceback,
and nothing acknowledged that was not stored."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ratecard.catalog.schema import Meter
from ratecard.clock import Window
from ratecard.errors import Unavailable
from ratecard.metering.model import Event
from ratecard.store.clickhouse_server import LocalClickHouse, free_port
from ratecard.store.usage import open_usage_store

pytestmark = pytest.mark.clickhouse

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _within(seconds: float, fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn`` in a thread; fail the test if it has not returned (a hang)."""
    out: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as e:
            out[0] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds}s: a hang"
    return out[0]


def test_nothing_listening_is_unavailable_at_startup() -> None:
    url = f"clickhouse://127.0.0.1:{free_port()}/db?connect_timeout=1"
    err = _within(30, lambda: open_usage_store(url))
    assert isinstance(err, Unavailable)
    assert "unavailable" in str(err) and "RATECARD_USAGE_URL" in str(err)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(5)
    for c in held:
        c.close()
    srv.close()


def test_a_server_that_never_answers_is_unavailable_not_a_hang(silent_port: int) -> None:
    url = f"clickhouse://127.0.0.1:{silent_port}/db?connect_timeout=1&timeout=2"
    err = _within(60, lambda: open_usage_store(url))
    assert isinstance(err, Unavailable)


def test_a_server_killed_during_ingest_acknowledges_nothing_it_did_not_store() -> None:
    server = LocalClickHouse(memory_bytes=1024**3).start()
    try:
        url = server.url("crash") + "?settle=0&connect_timeout=1&timeout=5"
        store = open_usage_store(url)
        evs = [Event(f"e{i}", "llm.request", "acme", T0 + timedelta(seconds=i), {"n": 1})
               for i in range(20)]
        assert store.append(evs[:10]).accepted == 10
        server.kill()
        err = _within(60, lambda: store.append(evs[10:]))
        assert isinstance(err, Unavailable)
        err = _within(60, lambda: store.aggregate(
            Meter(event="llm.request", aggregation="count"),
            window=Window(T0, T0 + timedelta(days=1))))
        assert isinstance(err, Unavailable)
        server.restart()
        # what was acknowledged survived the crash; the refused batch is sent again
        again = store.append(evs)
        assert (again.accepted, again.duplicates) == (10, 10)
        got = store.aggregate(Meter(event="llm.request", aggregation="count"),
                              window=Window(T0, T0 + timedelta(days=1)))
        assert got["acme"].quantity == 20
        store.close()
    finally:
        server.stop()
