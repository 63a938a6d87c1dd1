"""Durability and duplicates through the CLI on ClickHouse, as on DuckDB.

``ratecard events ingest`` is killed part way (SIGKILL): every event it acknowledged in
its commit log is stored, and ingesting the same file again adds exactly the rest,
counting the others as duplicates. A usage store that is down gets one clear line and
exit code 5, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from ratecard.clock import utc_now
from ratecard.store.clickhouse_server import free_port
from ratecard.store.usage import open_usage_store

pytestmark = pytest.mark.clickhouse

CMD = [sys.executable, "-c", "import sys; from ratecard.cli import main; sys.exit(main())"]


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {**os.environ, "RATECARD_HOME": str(tmp_path / "ws"), "RATECARD_USAGE_URL": url}
    env.pop("RATECARD_DATABASE_URL", None)
    return env


def _write(path: Path, n: int) -> None:
    day = utc_now().replace(microsecond=0) - timedelta(days=2)
    with path.open("w") as out:
        for i in range(n):
            at = (day + timedelta(seconds=i)).astimezone(UTC).isoformat().replace("+00:00", "Z")
            out.write(json.dumps({"event_id": f"e{i}", "type": "llm.request",
                                  "customer": f"c{i % 7}", "timestamp": at,
                                  "properties": {"model": "m", "input_tokens": i}}) + "\n")


def test_sigkill_loses_no_acknowledged_event_on_clickhouse(
        tmp_path: Path, clickhouse_usage_url: str) -> None:
    env = _env(tmp_path, clickhouse_usage_url)
    subprocess.run([*CMD, "init"], env=env, check=True, capture_output=True)
    n = 12_000
    f = tmp_path / "big.jsonl"
    _write(f, n)
    log = tmp_path / "commits.jsonl"
    proc = subprocess.Popen([*CMD, "events", "ingest", str(f), "--commit-log", str(log),
                             "--batch-mb", "0.05"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acks = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    assert acks, "the ingest acknowledged nothing before it was killed"
    last = acks[-1]["line"]
    acknowledged = sum(a["accepted"] for a in acks)
    assert last < n, "the ingest finished before it was killed; the test proves nothing"

    store = open_usage_store(clickhouse_usage_url)
    try:
        stored = {e.event_id for e in store.scan()}
    finally:
        store.close()
    assert {f"e{i}" for i in range(last)} <= stored
    assert len(stored) >= acknowledged

    done = subprocess.run([*CMD, "events", "ingest", str(f), "--json"], env=env, check=True,
                          capture_output=True, text=True)
    summary = json.loads(done.stdout)
    assert summary["accepted"] == n - len(stored)
    assert summary["duplicates"] == len(stored)
    store = open_usage_store(clickhouse_usage_url)
    try:
        assert sum(1 for _ in store.scan()) == n
        again = store.stats()
        assert again["events"] == n
    finally:
        store.close()


def test_a_usage_store_that_is_down_is_one_line_and_exit_5(tmp_path: Path) -> None:
    url = f"clickhouse://127.0.0.1:{free_port()}/db?connect_timeout=1"
    env = _env(tmp_path, url)
    subprocess.run([*CMD, "init"], env=env, check=False, capture_output=True)
    f = tmp_path / "few.jsonl"
    _write(f, 3)
    done = subprocess.run([*CMD, "events", "ingest", str(f)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 5
    assert "Traceback" not in done.stderr
    assert "unavailable" in done.stderr.lower()
    assert len(done.stderr.strip().splitlines()) == 1


def test_chdb_store_survives_a_killed_writer(tmp_path: Path) -> None:
    """The embedded engine too: acknowledged events are on disk after a SIGKILL."""
    url = f"chdb://{tmp_path / 'chdb'}?settle=0"
    env = _env(tmp_path, url)
    subprocess.run([*CMD, "init"], env=env, check=True, capture_output=True)
    f = tmp_path / "some.jsonl"
    _write(f, 4000)
    log = tmp_path / "commits.jsonl"
    proc = subprocess.Popen([*CMD, "events", "ingest", str(f), "--commit-log", str(log),
                             "--batch-mb", "0.05"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (log.exists() and len(log.read_text().splitlines()) >= 2) or proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acks = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    assert acks
    # read it back in a fresh process (chdb hosts one folder per process)
    check = ("import sys; from ratecard.store.usage import open_usage_store; "
             f"s = open_usage_store({url!r}); print(len({{e.event_id for e in s.scan()}}))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         check=True, timeout=300)
    assert int(out.stdout.strip()) >= sum(a["accepted"] for a in acks)
    assert int(out.stdout.strip()) >= acks[-1]["line"]


