"""HTTP load on a real server: event ingest in batches of 1,000, and the check endpoint.

The body of ``bench/http.py`` (which runs this file as a script: see there why).

``python bench/http.py [--events 300000] [--batch 1000] [--connections 4]
[--check-rate 500] [--check-seconds 10]``

The server is ``ratecard serve`` in its own process on a free loopback port, over a
fresh workspace (SQLite state, DuckDB usage store) holding the coding-plan example
catalog and 200 customers on its Pro plan (a 5-hour and a 7-day prompt limit). This
process is the load generator:

1. **Ingest**: ``--events`` ``coding.prompt`` events, pre-serialised as NDJSON bodies of
   ``--batch`` events, sent over ``--connections`` keep-alive connections; a share of
   the batches (``--resend``, 2%) is sent a second time, as a client retrying after a
   lost answer would. Reported: events per second, and the latency of each request.
   Target: at least 50,000 events/s on 2 cores.
2. **Check**: ``GET /v1/customers/{c}/entitlements/prompts?quantity=1`` at a fixed rate
   (``--check-rate`` per second, open loop: each request has a scheduled time and its
   latency counts from then, so a slow server cannot hide its queue) for
   ``--check-seconds``. Target: p99 under 10 ms at 500 requests/s.
3. **Integrity**: after the server stops, the usage store must hold exactly the events
   the server acknowledged as accepted, every resent batch must have come back as
   duplicates, and no event may be lost or stored twice.

Writes ``bench/results/http.json``.
"""
# ruff: noqa: E402

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py is named like the standard library's ``http`` package, and this
# script's folder is first on sys.path: take it off before importing http.client
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import http.client
import json
import math
import os
import platform
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
CUSTOMERS = 200
MODELS = ("glm-4.6", "glm-4-flash")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 3), "p90_ms": round(pct(ms, 90), 3),
            "p99_ms": round(pct(ms, 99), 3), "max_ms": round(max(ms), 3) if ms else 0.0,
            "mean_ms": round(statistics.fmean(ms), 3) if ms else 0.0}


# --------------------------------------------------------------------------- setup


def build_workspace(path: Path) -> tuple[str, str]:
    """The workspace the server serves: catalog, customers, subscriptions, keys."""
    from ratecard.api.keys import create_key
    from ratecard.billing.catalogs import apply_catalog
    from ratecard.billing.customers import create_customer
    from ratecard.billing.subscriptions import create_subscription
    from ratecard.catalog import load_catalog
    from ratecard.store.state import dispose, session_scope
    from ratecard.workspace import Workspace

    ws = Workspace.open(path, create=True)
    catalog_file = ROOT / "examples" / "coding_plan.yaml"
    start = datetime.now(UTC) - timedelta(days=10)
    with session_scope(ws) as s:
        apply_catalog(s, load_catalog(catalog_file), catalog_file.read_text())
        for i in range(CUSTOMERS):
            cid = f"dev-{i:04d}"
            create_customer(s, cid, currency="CNY")
            create_subscription(s, cid, "pro", start=start)
        ingest = create_key(s, "ingest", "bench").token
        read = create_key(s, "read", "bench").token
    dispose()
    return ingest, read


def make_bodies(n_events: int, batch: int, seed: int) -> list[bytes]:
    """NDJSON bodies of ``batch`` events each; timestamps spread over the last 4 hours."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies = []
    run = f"{seed}-{int(time.time())}"
    for b in range(0, n_events, batch):
        lines = []
        for i in range(b, min(n_events, b + batch)):
            ts = now - timedelta(seconds=rng.randint(60, 4 * 3600))
            ev = {
                "event_id": f"bench-{run}-{i}",
                "type": "coding.prompt",
                "customer": f"dev-{rng.randrange(CUSTOMERS):04d}",
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "properties": {"model": MODELS[i % 2], "input_tokens": rng.randint(100, 9000),
                               "output_tokens": rng.randint(10, 2000)},
            }
            lines.append(json.dumps(ev, separators=(",", ":")))
        bodies.append(("\n".join(lines) + "\n").encode())
    return bodies


class Server:
    """``ratecard serve`` in a subprocess."""

    def __init__(self, workspace: Path, port: int) -> None:
        self.port = port
        env = dict(os.environ)
        env.pop("RATECARD_DATABASE_URL", None)
        env.pop("RATECARD_USAGE_URL", None)
        self.log = open(workspace / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from ratecard.cli import entry; entry()", "serve",
             "--workspace", str(workspace),
             "--port", str(port), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: see {self.log.name}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v1/health")
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not answer within two minutes")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------------- ingest


@dataclass
class IngestStats:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    per_batch: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post(conn: http.client.HTTPConnection, path: str, body: bytes,
         headers: dict[str, str]) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


def run_ingest(port: int, token: str, bodies: list[bytes], resend: list[int],
               connections: int) -> tuple[IngestStats, float]:
    work: queue.Queue[tuple[int, bytes, bool]] = queue.Queue()
    for i, b in enumerate(bodies):
        work.put((i, b, False))
        if i in resend:
            work.put((i, b, True))  # a client that lost the answer sends it again
    stats = IngestStats()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            try:
                i, body, _again = work.get_nowait()
            except queue.Empty:
                break
            t = time.perf_counter()
            try:
                status, data = post(conn, "/v1/events", body, headers)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                with stats.lock:
                    stats.errors.append(f"batch {i}: {e}")
                continue
            dt = time.perf_counter() - t
            with stats.lock:
                stats.requests += 1
                stats.latencies.append(dt)
                if status != 200:
                    stats.errors.append(f"batch {i}: HTTP {status} {data[:200]!r}")
                    continue
                answer = json.loads(data)
                stats.accepted += answer["accepted"]
                stats.duplicates += answer["duplicates"]
                stats.rejected += len(answer["rejected"])
                stats.per_batch.setdefault(i, []).append(
                    (answer["accepted"], answer["duplicates"]))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats, time.perf_counter() - t0


# --------------------------------------------------------------------------- check


def run_checks(port: int, token: str, rate: float, seconds: float,
               threads: int = 8) -> dict[str, Any]:
    """Open-loop load: request k is due at ``start + k / rate``; latency counts from then."""
    total = int(rate * seconds)
    due: queue.Queue[tuple[float, str] | None] = queue.Queue()
    latencies: list[float] = []
    service: list[float] = []
    errors: list[str] = []
    allowed = [0, 0]
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(11)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            item = due.get()
            if item is None:
                break
            at, path = item
            sent = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    errors.append(str(e))
                continue
            end = time.perf_counter()
            with lock:
                latencies.append(end - at)
                service.append(end - sent)
                if r.status != 200:
                    errors.append(f"HTTP {r.status} {data[:200]!r}")
                else:
                    allowed[0 if json.loads(data)["allowed"] else 1] += 1
        conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    start = time.perf_counter() + 0.2
    for k in range(total):
        at = start + k / rate
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        path = f"/v1/customers/dev-{rng.randrange(CUSTOMERS):04d}/entitlements/prompts?quantity=1"
        due.put((at, path))
    for _ in pool:
        due.put(None)
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    return {"requests": total, "rate_target": rate, "rate_achieved": round(len(latencies)
                                                                            / elapsed, 1),
            "latency_from_schedule": summary_ms(latencies),
            "latency_on_the_wire": summary_ms(service),
            "allowed": allowed[0], "denied": allowed[1], "errors": errors[:10],
            "error_count": len(errors)}


# --------------------------------------------------------------------------- main


def server_cpu(server: Server) -> float:
    """CPU seconds the server process (and its threads) used so far."""
    import psutil

    t = psutil.Process(server.proc.pid).cpu_times()
    return float(t.user + t.system)


def stored_count(workspace: Path) -> int:
    from ratecard.store.usage import open_usage_store
    from ratecard.workspace import Workspace

    ws = Workspace.open(workspace)
    store = open_usage_store(ws.usage_url, read_only=True)
    try:
        return sum(1 for _ in store.scan())
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--resend", type=float, default=0.02, help="share of batches sent twice")
    p.add_argument("--check-rate", type=float, default=500.0)
    p.add_argument("--check-seconds", type=float, default=10.0)
    p.add_argument("--keep", action="store_true", help="keep the workspace")
    p.add_argument("--out", type=Path, default=RESULTS / "http.json")
    a = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ratecard-bench-http-"))
    workspace = tmp / "ws"
    print(f"workspace {workspace}", file=sys.stderr)
    ingest_key, read_key = build_workspace(workspace)
    bodies = make_bodies(a.events, a.batch, seed=7)
    rng = random.Random(3)
    resend = set(rng.sample(range(len(bodies)), max(1, int(len(bodies) * a.resend))))
    port = _free_port()
    server = Server(workspace, port)
    try:
        server.wait_ready()
        # warm up: the first request pays one-time imports and the first meter rollups
        warm = make_bodies(a.batch, a.batch, seed=99)
        stats_w, _ = run_ingest(port, ingest_key, warm, set(), 1)
        if stats_w.errors:
            raise RuntimeError(f"warm-up failed: {stats_w.errors[:3]}")
        cpu0 = server_cpu(server)
        load0 = os.getloadavg()
        stats, seconds = run_ingest(port, ingest_key, bodies, resend, a.connections)
        ingest_cpu = server_cpu(server) - cpu0
        sent = a.events + sum(bodies[i].count(b"\n") for i in resend)
        print(f"ingest: {a.events:,} events in {seconds:.2f}s = "
              f"{a.events / seconds:,.0f} events/s; {stats.duplicates:,} duplicates, "
              f"{stats.rejected} rejected, {len(stats.errors)} errors", file=sys.stderr)
        cpu0 = server_cpu(server)
        checks = run_checks(port, read_key, a.check_rate, a.check_seconds)
        checks["server_cpu_ms_per_request"] = round(
            (server_cpu(server) - cpu0) * 1000 / max(1, checks["requests"]), 3)
        load1 = os.getloadavg()
        print(f"check: p50 {checks['latency_from_schedule']['p50_ms']} ms, "
              f"p99 {checks['latency_from_schedule']['p99_ms']} ms at "
              f"{checks['rate_achieved']}/s", file=sys.stderr)
    finally:
        server.stop()
    stored = stored_count(workspace) - stats_w.accepted
    # each batch stored once: a batch sent twice (both may be in flight at once) has
    # its events accepted by one send and answered as duplicates by the other
    exact = all(
        sum(acc for acc, _ in stats.per_batch.get(i, [])) == bodies[i].count(b"\n")
        and sum(dup for _, dup in stats.per_batch.get(i, []))
        == (bodies[i].count(b"\n") if i in resend else 0)
        and len(stats.per_batch.get(i, [])) == (2 if i in resend else 1)
        for i in range(len(bodies)))
    integrity = {
        "sent": sent,
        "acknowledged_accepted": stats.accepted,
        "acknowledged_duplicates": stats.duplicates,
        "rejected": stats.rejected,
        "stored": stored,
        "resent_batches": len(resend),
        "every_batch_stored_once": exact,
        "ok": (stored == stats.accepted == a.events and stats.rejected == 0 and exact
               and stats.accepted + stats.duplicates == sent and not stats.errors),
    }
    eps = a.events / seconds
    result = {
        "benchmark": "http",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_before": [round(x, 2) for x in load0],
                    "load_avg_after": [round(x, 2) for x in load1],
                    "platform": platform.platform()},
        "ingest": {
            "events": a.events, "batch": a.batch, "connections": a.connections,
            "format": "application/x-ndjson", "seconds": round(seconds, 3),
            "events_per_second": round(eps, 1), "requests": stats.requests,
            "request_latency": summary_ms(stats.latencies), "errors": stats.errors[:10],
            "server_cpu_seconds": round(ingest_cpu, 2),
            "server_cpu_us_per_event": round(ingest_cpu * 1e6 / sent, 1),
            "target_events_per_second": 50_000, "meets_target": eps >= 50_000,
        },
        "check": {**checks, "target_p99_ms": 10.0,
                  "meets_target": checks["latency_from_schedule"]["p99_ms"] < 10.0
                  and checks["error_count"] == 0},
        "integrity": integrity,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"ingest_events_per_s": round(eps), "check_p99_ms":
                      checks["latency_from_schedule"]["p99_ms"], "integrity": integrity["ok"]}),
          file=sys.stderr)
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    # the speed targets are reported; losing or doubling an event fails the benchmark
    return 0 if integrity["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
