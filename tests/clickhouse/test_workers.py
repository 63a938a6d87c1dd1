"""``ratecard serve --workers 2`` on PostgreSQL + ClickHouse, driven at once.

Batches go to both worker processes at the same time, and every batch is sent twice
(whole, and shifted by half), so the same event ids reach different workers
concurrently. The usage store counts each event once; the answers say "accepted" once
per event across all requests; and the entitlement check, kept by the workers'
counters in PostgreSQL, says exactly what the usage store holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from ratecard.catalog.schema import Meter
from ratecard.clock import Window, iso, utc_now
from ratecard.store.clickhouse_server import LocalClickHouse, free_port
from ratecard.store.usage import open_usage_store

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]

CATALOG = """
currency: USD
meters:
  prompts: {event: coding.prompt, aggregation: count}
plans:
  lite:
    name: Lite
    base_fee: 20
    entitlements:
      prompts:
        meter: prompts
        limits: [{limit: 1000000, window: 5h}, {limit: 5000000, window: 7d}]
        hard: true
"""

N_EVENTS = 1200
BATCH = 100


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-c",
                          "import sys; from ratecard.cli import main; sys.exit(main())", *args],
                         env=env, check=True, capture_output=True, text=True, timeout=300)
    return out.stdout


@pytest.fixture
def served(tmp_path: Path, pg_cluster: Any, clickhouse_server: LocalClickHouse,
           ) -> Iterator[dict[str, Any]]:
    from ratecard.store import state

    db = pg_cluster.url(pg_cluster.create_database("workers"))
    state.migrate(db)
    state.dispose(db)
    # the default settle margin: concurrent writers agree on who stored an event first
    usage = clickhouse_server.url(f"workers_{os.getpid()}")
    env = {**os.environ, "RATECARD_HOME": str(tmp_path / "ws"), "RATECARD_DATABASE_URL": db,
           "RATECARD_USAGE_URL": usage}
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    start = iso(utc_now() - timedelta(days=1))
    script = "\n".join([
        "import json",
        "from ratecard.cli import main",
        "main(['init'])",
        f"assert main(['catalog', 'apply', {str(catalog)!r}]) == 0",
        "assert main(['customers', 'create', 'acme']) == 0",
        f"assert main(['subscriptions', 'create', '--customer', 'acme', '--plan', 'lite', "
        f"'--start', {start!r}]) == 0",
    ])
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True,
                   text=True, timeout=600)
    ingest = json.loads(_cli(env, "keys", "create", "--role", "ingest", "--json"))["token"]
    read = json.loads(_cli(env, "keys", "create", "--role", "read", "--json"))["token"]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ratecard.cli import main; sys.exit(main())",
         "serve", "--workers", "2", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ratecard serve exited: {proc.stderr.read()}")  # type: ignore
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("ratecard serve --workers 2 did not answer within 180 s")
    try:
        yield {"base": base, "ingest": ingest, "read": read, "usage": usage, "proc": proc,
               "port": clickhouse_server.port}
    finally:
        parent = psutil.Process(proc.pid)
        children = parent.children(recursive=True)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        for c in children:
            if c.is_running():
                c.kill()


def test_two_workers_count_overlapping_batches_once_and_checks_agree(
        served: dict[str, Any]) -> None:
    now = utc_now()
    events = [{"event_id": f"p{i}", "type": "coding.prompt", "customer": "acme",
               "timestamp": iso(now - timedelta(minutes=30, seconds=i))}
              for i in range(N_EVENTS)]
    batches = [events[i:i + BATCH] for i in range(0, N_EVENTS, BATCH)]
    batches += [events[i:i + BATCH] for i in range(BATCH // 2, N_EVENTS, BATCH)]
    batches += [events[i:i + BATCH] for i in range(0, N_EVENTS, BATCH)]  # plain resends
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def worker(k: int) -> None:
        # a client per thread: separate connections, spread over both worker processes
        with httpx.Client(base_url=served["base"], timeout=120,
                          headers={"Authorization": f"Bearer {served['ingest']}"}) as c:
            start.wait()
            for b in batches[k::6]:
                r = c.post("/v1/events", json=b)
                assert r.status_code == 200, r.text
                with lock:
                    answers.append(r.json())

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert len(answers) == len(batches)
    assert all(not a["rejected"] for a in answers)
    # every event answered "accepted" exactly once, every other copy "duplicate"
    assert sum(a["accepted"] for a in answers) == N_EVENTS
    assert sum(a["duplicates"] for a in answers) == sum(len(b) for b in batches) - N_EVENTS

    # both worker processes wrote to ClickHouse
    workers = psutil.Process(served["proc"].pid).children(recursive=True)
    talking = [w for w in workers if any(
        c.raddr and c.raddr.port == served["port"] for c in w.net_connections(kind="tcp"))]
    assert len(talking) >= 2, [(w.pid, w.name()) for w in workers]

    store = open_usage_store(served["usage"])
    try:
        meter = Meter(event="coding.prompt", aggregation="count")
        window = Window(now - timedelta(hours=5), now + timedelta(minutes=1))
        stored = store.aggregate(meter, window=window)["acme"].quantity
        assert stored == N_EVENTS
        assert sum(1 for _ in store.scan()) == N_EVENTS
    finally:
        store.close()
    r = httpx.get(f"{served['base']}/v1/customers/acme/entitlements/prompts", timeout=60,
                  headers={"Authorization": f"Bearer {served['read']}"})
    assert r.status_code == 200, r.text
    check = r.json()
    used = {w["window"]: w["used"] for w in check["windows"]}
    assert used == {"5h": str(N_EVENTS), "7d": str(N_EVENTS)}, check
    assert check["allowed"] is True
