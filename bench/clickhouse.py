"""ClickHouse beside DuckDB on the same events: ingest, the month, point queries, invoices.

``python bench/clickhouse.py [--events 10000000] [--repeat 3] [--samples 100] [--http N]``

On the shared synthetic data set (``bench/generate.py``), in one run, each step in its own
process (its own peak memory), with a ClickHouse server started for the run (Debian's
``clickhouse-server``, loopback, throwaway folder) and the embedded engine (chdb):

1. **Ingest** the JSONL through ``ratecard events ingest``'s code path into a fresh DuckDB
   store, the ClickHouse server and chdb, with the billing benchmark catalog's meters
   (rollups). Target: ClickHouse at least DuckDB's events per second.
2. **All-customer month**: every meter of the catalog for every customer over April
   (``aggregate``, what an invoice run reads), on each engine; beside ClickHouse's own
   GROUP BY over the same raw table with no deduplication (the floor), and two ways to
   deduplicate on read that the store does not use (``FINAL`` and ``argMax`` per event
   id), to show why it keeps retractions instead. Target: the store within 1.5x of the
   floor.
3. **Point query**: one customer's month of one meter, for the largest customers and a
   sample; p50/p99.
4. **Invoice run** at 2026-05-02 (the billing benchmark's plan, state on SQLite) reading
   usage from each store.
5. **HTTP ingest** (``--http N`` events, 0 to skip): ``ratecard serve --workers 2`` on
   ClickHouse, batches of 1,000 from 8 client threads.
6. **Storage**: bytes per stored event on the server (compressed, all tables).

Writes ``bench/results/clickhouse.json`` and prints a table. Margins (costs in SQL) run
on DuckDB only: the ClickHouse store does not cost events yet.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    DATA,
    machine,
    percentiles,
    phase_main,
    print_table,
    run_phase,
    timed,
    write_results,
)
from generate import dataset  # noqa: E402

APRIL_START = datetime(2026, 4, 1, tzinfo=UTC)


def _catalog() -> Any:
    import billing
    from ratecard.catalog.loader import parse_catalog_text

    return parse_catalog_text(billing.CATALOG)


def _april() -> Any:
    from ratecard.clock import Window

    return Window(APRIL_START, APRIL_START + timedelta(days=30))


def _open(url: str, read_only: bool = False) -> Any:
    from ratecard.store.usage import open_usage_store

    return open_usage_store(url, read_only=read_only)


# --------------------------------------------------------------------------- phases


def ingest(a: dict[str, Any]) -> dict[str, Any]:
    from ratecard.metering.events import EventRules
    from ratecard.metering.ingest import ingest_sources

    store = _open(a["url"])
    store.sync_meters(_catalog().meters)
    with timed() as t:
        report = ingest_sources(store, [a["jsonl"]], catalog=_catalog(),
                                rules=EventRules(late=timedelta(days=3650)),
                                now=lambda: datetime.fromisoformat(a["now"]))
    stats = store.stats()
    store.close()
    return {"accepted": report.accepted, "duplicates": report.duplicates,
            "rejected": report.rejected, "wall_s": t.wall, "cpu_s": t.cpu,
            "events_per_s": report.accepted / t.wall if t.wall else None,
            "stored": stats.get("events")}


def month(a: dict[str, Any]) -> dict[str, Any]:
    store = _open(a["url"], read_only=True)
    meters = _catalog().meters
    w = _april()
    times = []
    totals: dict[str, str] = {}
    for _ in range(a["repeat"]):
        with timed() as t:
            for name, meter in meters.items():
                got = store.aggregate(meter, window=w, key=name)
                totals[name] = str(sum(u.quantity for u in got.values()))
        times.append(t.wall)
    out: dict[str, Any] = {"runs_s": times, "median_s": statistics.median(times),
                           "totals": totals}
    if a.get("floors"):
        out["floors"] = _floors(store, a["repeat"])
    store.close()
    return out


def _floors(store: Any, repeat: int) -> dict[str, Any]:
    """ClickHouse's own GROUP BY over the raw events: plain, FINAL, argMax per id."""
    from ratecard.store.clickhouse_store import time_cond

    w = _april()
    ev = store.target.table("events")
    cond = time_cond(w.start, w.end)
    sums = ", ".join(f"sum(`p.num`[indexOf(`p.key`, '{p}')])" for p in (
        "input_tokens", "output_tokens", "cache_read_tokens"))
    model = "`p.text`[indexOf(`p.key`, 'model')]"
    queries = {
        "group_by": f"SELECT customer, {model} AS m, {sums}, count() FROM {ev} "
                    f"WHERE type = 'llm.request' AND {cond} GROUP BY customer, m",
        "final": f"SELECT customer, {model} AS m, {sums}, count() FROM {ev} FINAL "
                 f"WHERE type = 'llm.request' AND {cond} GROUP BY customer, m",
        "argmax": f"SELECT customer, m, sum(i), sum(o), sum(c), count() FROM ("
                  f"SELECT customer, event_id, argMax({model}, row_id) AS m, "
                  f"argMax(`p.num`[indexOf(`p.key`, 'input_tokens')], row_id) AS i, "
                  f"argMax(`p.num`[indexOf(`p.key`, 'output_tokens')], row_id) AS o, "
                  f"argMax(`p.num`[indexOf(`p.key`, 'cache_read_tokens')], row_id) AS c "
                  f"FROM {ev} WHERE type = 'llm.request' AND {cond} "
                  f"GROUP BY customer, event_id) GROUP BY customer, m",
    }
    out: dict[str, Any] = {}
    for name, sql in queries.items():
        times = []
        rows = 0
        for _ in range(repeat):
            with timed() as t:
                rows = len(store.engine.rows(sql))
            times.append(t.wall)
        out[name] = {"rows": rows, "median_s": statistics.median(times), "runs_s": times}
    return out


def point(a: dict[str, Any]) -> dict[str, Any]:
    store = _open(a["url"], read_only=True)
    meter = _catalog().meters["input_tokens"]
    w = _april()
    customers = store.customers(w)
    rng = random.Random(7)
    sample = customers[:10] + rng.sample(customers, min(a["samples"], len(customers)))
    times = []
    for c in sample:
        with timed() as t:
            store.aggregate(meter, window=w, customers=[c], key="input_tokens")
        times.append(t.wall * 1000)
    store.close()
    return {"ms": percentiles(times), "largest_ms": max(times[:10])}


def invoice(a: dict[str, Any]) -> dict[str, Any]:
    import billing
    from ratecard.billing import invoices as inv
    from ratecard.billing.usage import StoreUsage
    from ratecard.store.state import session_scope

    ds = dataset(a["events"], start=APRIL_START, quiet=True)
    store = _open(a["url"], read_only=True)
    usage = StoreUsage(store)
    url, _ = billing.state_db(ds, _catalog(), usage, None, False)
    with timed() as t:
        report = inv.run_invoices(lambda: session_scope(url), billing.RUN_AT, usage, chunk=500)
    store.close()
    assert not report.errors, report.errors[:3]
    totals = {}
    with session_scope(url) as s:
        from sqlalchemy import func, select

        from ratecard.store.models import InvoiceRow

        n, total = s.execute(select(func.count(), func.sum(InvoiceRow.total)).where(
            InvoiceRow.period_end == datetime(2026, 5, 1, tzinfo=UTC))).one()
        totals = {"invoices": n, "total": str(total)}
    return {"run_s": t.wall, "created": report.created, "finalized": report.finalized,
            **totals}


def storage(a: dict[str, Any]) -> dict[str, Any]:
    store = _open(a["url"], read_only=True)
    db = store.target.database
    rows = store.engine.rows(
        f"SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
        f"FROM system.parts WHERE database = '{db}' AND active GROUP BY table")
    events = store.stats()["events"]
    store.close()
    tables = {t: {"rows": int(r), "compressed": int(c), "uncompressed": int(u)}
              for t, r, c, u in rows}
    total = sum(v["compressed"] for v in tables.values())
    return {"tables": tables, "compressed_bytes": total, "events": events,
            "bytes_per_event": total / events if events else None}


def http(a: dict[str, Any]) -> dict[str, Any]:
    """``ratecard serve --workers 2`` on ClickHouse; 8 threads send batches of 1,000."""
    # bench/http.py would shadow the standard library's http package that httpx needs
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    if getattr(sys.modules.get("http"), "__file__", "") == str(HERE / "http.py"):
        del sys.modules["http"]
    import httpx

    from ratecard.store.clickhouse_server import free_port

    n = a["n"]
    tmp = Path(tempfile.mkdtemp(prefix="ratecard-http-"))
    env = {**os.environ, "RATECARD_HOME": str(tmp / "ws"), "RATECARD_USAGE_URL": a["url"],
           "RATECARD_DATABASE_URL": f"sqlite:///{tmp / 'state.db'}"}
    cli = [sys.executable, "-c", "import sys; from ratecard.cli import main; sys.exit(main())"]
    subprocess.run([*cli, "init"], env=env, check=True, capture_output=True)
    token = json.loads(subprocess.run([*cli, "keys", "create", "--role", "ingest", "--json"],
                                      env=env, check=True, capture_output=True,
                                      text=True).stdout)["token"]
    port = free_port()
    proc = subprocess.Popen([*cli, "serve", "--workers", "2", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        now = datetime.now(UTC) - timedelta(minutes=10)
        batches = []
        for b in range(0, n, 1000):
            batches.append([{"event_id": f"h{i}", "type": "llm.request",
                             "customer": f"cust-{i % 997:05d}",
                             "timestamp": (now + timedelta(microseconds=i)).isoformat(),
                             "properties": {"model": "glm-4-plus", "input_tokens": i % 5000,
                                            "output_tokens": i % 700}}
                            for i in range(b, min(n, b + 1000))])
        accepted = [0]
        lock = threading.Lock()
        latencies: list[float] = []

        def send(k: int) -> None:
            with httpx.Client(base_url=base, timeout=300,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                for batch in batches[k::8]:
                    t0 = time.perf_counter()
                    r = c.post("/v1/events", json=batch)
                    r.raise_for_status()
                    with lock:
                        accepted[0] += r.json()["accepted"]
                        latencies.append((time.perf_counter() - t0) * 1000)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
        with timed() as t:
            for th in threads:
                th.start()
            for th in threads:
                th.join()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"events": n, "accepted": accepted[0], "wall_s": t.wall,
            "events_per_s": accepted[0] / t.wall, "batch_ms": percentiles(latencies)}


PHASES = {"ingest": ingest, "month": month, "point": point, "invoice": invoice,
          "storage": storage, "http": http}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--http", type=int, default=200_000, help="events for the HTTP step")
    p.add_argument("--skip", nargs="*", default=[], help="engines to leave out: duckdb chdb")
    a = p.parse_args(argv)
    from ratecard.store.clickhouse_server import LocalClickHouse

    ds = dataset(a.events, start=APRIL_START)
    now = (ds.end + timedelta(hours=1)).isoformat()
    work = Path(tempfile.mkdtemp(prefix="ratecard-bench-ch-", dir=DATA))
    server = LocalClickHouse(memory_bytes=12 * 1024**3).start()
    urls = {"duckdb": f"duckdb:///{work / 'usage.duckdb'}",
            "clickhouse": server.url("bench"),
            "chdb": f"chdb://{work / 'chdb'}"}
    engines = [e for e in ("duckdb", "clickhouse", "chdb") if e not in a.skip]
    res: dict[str, Any] = {"benchmark": "clickhouse beside duckdb", "events": ds.events,
                           "customers": ds.customers, "machine": machine(),
                           "server_version": None, "engines": {}}
    try:
        for e in engines:
            r: dict[str, Any] = {}
            print(f"  {e}: ingest", file=sys.stderr, flush=True)
            r["ingest"] = run_phase(__file__, "ingest", {"url": urls[e], "jsonl": str(ds.jsonl),
                                                          "now": now})
            print(f"  {e}: month", file=sys.stderr, flush=True)
            r["month"] = run_phase(__file__, "month", {"url": urls[e], "repeat": a.repeat,
                                                        "floors": e != "duckdb"})
            print(f"  {e}: point queries", file=sys.stderr, flush=True)
            r["point"] = run_phase(__file__, "point", {"url": urls[e], "samples": a.samples})
            print(f"  {e}: invoice run", file=sys.stderr, flush=True)
            r["invoice"] = run_phase(__file__, "invoice", {"url": urls[e], "events": a.events})
            res["engines"][e] = r
        if "clickhouse" in engines:
            res["storage"] = run_phase(__file__, "storage", {"url": urls["clickhouse"]})
            if a.http:
                print("  clickhouse: HTTP ingest through 2 workers", file=sys.stderr,
                      flush=True)
                res["http"] = run_phase(__file__, "http", {"url": server.url("http"),
                                                            "n": a.http})
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    _verdicts(res)
    path = write_results("clickhouse", res)
    _table(res)
    print(f"\nwrote {path}")
    return res


def _verdicts(res: dict[str, Any]) -> None:
    eng = res["engines"]
    v: dict[str, Any] = {}
    if "duckdb" in eng and "clickhouse" in eng:
        d, c = eng["duckdb"]["ingest"]["events_per_s"], eng["clickhouse"]["ingest"][
            "events_per_s"]
        v["ingest_clickhouse_vs_duckdb"] = c / d if d else None
        v["ingest_target"] = ">= 1.0"
        same = all(eng[e]["month"]["totals"] == eng["duckdb"]["month"]["totals"]
                   for e in eng)
        v["same_totals_everywhere"] = same
    if "clickhouse" in eng:
        m = eng["clickhouse"]["month"]
        v["month_vs_group_by"] = m["median_s"] / m["floors"]["group_by"]["median_s"]
        v["month_target"] = "<= 1.5"
    res["verdicts"] = v


def _table(res: dict[str, Any]) -> None:
    rows = []
    for e, r in res["engines"].items():
        rows.append([e, r["ingest"]["events_per_s"], r["ingest"]["peak_rss_mb"],
                     r["month"]["median_s"], r["point"]["ms"].get("p50"),
                     r["point"]["ms"].get("p99"), r["invoice"]["run_s"]])
    print_table(f"{res['events']:,} events, {res['customers']:,} customers", rows,
                ["engine", "ingest ev/s", "ingest MB", "month s", "point p50 ms",
                 "point p99 ms", "invoice run s"])
    ch = res["engines"].get("clickhouse", {}).get("month", {}).get("floors")
    if ch:
        print_table("ClickHouse month: the store beside its own GROUP BY", [
            ["store (rollups + retractions)", res["engines"]["clickhouse"]["month"]["median_s"]],
            *[[k, v["median_s"]] for k, v in ch.items()]], ["query", "median s"])
    print(json.dumps(res.get("verdicts", {}), indent=1))


if __name__ == "__main__":
    if not phase_main(PHASES):
        main()
