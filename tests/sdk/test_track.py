"""``Client.track``: background batches, flush, safe retries, flush at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
from sdk_support import Live

from ratecard.client import Client

ROOT = Path(__file__).resolve().parents[2]


class LosingTransport(httpx.BaseTransport):
    """Delivers every request, but loses the answer of the first ``lose`` event batches
    (as a network cut after the server committed would)."""

    def __init__(self, lose: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = lose
        self.sent = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/events":
            response.read()
            with self.lock:
                self.sent += 1
                if self.lose > 0:
                    self.lose -= 1
                    raise httpx.ReadError("connection reset", request=request)
        return response


def test_track_batches_and_flush(server: Live) -> None:
    batches: list[int] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/events":
                batches.append(request.content.count(b'"event_id"'))
            return super().handle_request(request)

    with Client(server.url, server.tokens["ingest"], batch_size=50, flush_interval=5,
                transport=Counting()) as c:
        ids = [c.track({"type": "ticket.closed", "customer": "cust-a"}) for _ in range(120)]
        assert c.flush(timeout=30)
        assert c.accepted == 120 and c.duplicates == 0
    assert len(set(ids)) == 120
    assert sum(batches) == 120 and max(batches) <= 50 and len(batches) >= 3


def test_retries_after_a_lost_answer_count_once(server: Live) -> None:
    transport = LosingTransport(lose=2)
    with Client(server.url, server.tokens["ingest"], batch_size=100, backoff=0.01,
                transport=transport) as c:
        for i in range(100):
            c.track({"event_id": f"r-{i}", "type": "ticket.closed", "customer": "cust-a"})
        assert c.flush(timeout=30)
        # the batch reached the server three times; the 2nd and 3rd were duplicates
        assert transport.sent == 3
        assert (c.accepted, c.duplicates) == (0, 100)
        assert list(c.failed) == []
        answer = c.send([{"event_id": f"r-{i}", "type": "ticket.closed", "customer": "cust-a"}
                         for i in range(100)])
        assert (answer["accepted"], answer["duplicates"]) == (0, 100)


def test_rejected_events_and_failed_batches_are_reported(server: Live) -> None:
    seen: list[Any] = []
    with Client(server.url, server.tokens["ingest"], on_rejected=seen.append) as c:
        c.track({"type": "ticket.closed", "customer": "cust-a", "timestamp": "2001-01-01Z"})
        c.flush(timeout=30)
    assert len(seen) == 1 and "timestamp" in seen[0]["reason"]
    failed: list[Any] = []
    with Client(server.url, "rck_x_bad", on_error=failed.append, backoff=0.01) as c:
        c.track({"type": "t", "customer": "c"})
        c.flush(timeout=30)
    assert len(failed) == 1 and "401" in str(failed[0].error)


def test_events_are_flushed_at_exit(server: Live, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        from ratecard.client import Client
        c = Client({server.url!r}, {server.tokens['ingest']!r}, flush_interval=60)
        for i in range(25):
            c.track({{"event_id": f"x-{{i}}", "type": "ticket.closed", "customer": "cust-b"}})
        # no flush, no close: the interpreter exits with 25 events queued
    """))
    subprocess.run([sys.executable, str(script)], check=True, timeout=120, cwd=str(ROOT))
    with Client(server.url, server.tokens["ingest"]) as c:
        answer = c.send([{"event_id": f"x-{i}", "type": "ticket.closed", "customer": "cust-b"}
                         for i in range(25)])
    assert (answer["accepted"], answer["duplicates"]) == (0, 25)
