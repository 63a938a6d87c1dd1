"""The entitlement check in-process: p50/p99 latency with 10 million events stored.

``python bench/check.py [--events 10000000] [--checks 20000] [--url URL]``

1. Takes the shared synthetic data set (``bench/generate.py``: llm.request events of
   10,000 Zipf-skewed customers over 30 days) and creates every customer on a plan with
   a 5-hour and a 7-day request limit, a monthly (soft) token limit and a boolean.
2. Loads the counters of every event (grouped with polars into the same bucket rows the
   ingestion hook writes), and separately times the hook itself
   (``entitlements.service.on_events_ingested``, batches of 50,000) on ``--hook-events``
   events in a scratch database.
3. Runs ``--checks`` checks at the end of the data (a random customer, weighted like the
   traffic, and a feature; with and without a quantity) and reports p50, p90, p99 and max
   for the check alone (one open session, as a request handler holds) and for a check
   that opens and closes its own session; also the CPU time of each check (the thread's
   own time, which waiting for a busy CPU does not inflate) and the load average, so a
   run on a shared machine can be read.

Writes ``bench/results/check.json``. The state database is cached in ``bench/data``
(``--rebuild`` to recreate it). Target: p99 under 1 ms for the check itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import dataset  # noqa: E402

from ratecard.catalog.loader import parse_catalog_text  # noqa: E402
from ratecard.metering.model import Event  # noqa: E402

CATALOG = """
currency: USD
meters:
  requests: {event: llm.request, aggregation: count}
  input_tokens: {event: llm.request, aggregation: sum, property: input_tokens}
plans:
  api:
    base_fee: 49
    entitlements:
      sso: true
      models: [glm-4-plus, glm-4-flash, gpt-4o]
      requests:
        meter: requests
        limits: [{limit: 2000, window: 5h}, {limit: 20000, window: 7d}]
      input_tokens:
        meter: input_tokens
        limit: 50000000
        window: month
        hard: false
        overage_unit_price: "0.000001"
"""


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def _summary(ns: list[int]) -> dict[str, float]:
    ms = [x / 1e6 for x in ns]
    return {"p50_ms": round(_pct(ms, 50), 4), "p90_ms": round(_pct(ms, 90), 4),
            "p99_ms": round(_pct(ms, 99), 4), "max_ms": round(max(ms), 4),
            "mean_ms": round(statistics.fmean(ms), 4), "n": len(ms)}


def load_counters(url: str, parquet: Path) -> dict[str, Any]:
    """Every event of the data set into ``usage_counters``: the minute quantities are
    grouped with polars, spread over the bucket levels and inserted in key order (the
    same rows the ingestion hook writes; a test holds the two to agreement)."""
    from ratecard.entitlements.repository import LEVELS
    from ratecard.store.state import session_scope

    t0 = time.perf_counter()
    lf = pl.scan_parquet(parquet).select(
        "customer",
        (pl.col("timestamp").dt.epoch("s") // 60).alias("minute"),
        pl.col("input_tokens"),
    )
    rows = 0
    with session_scope(url) as s:
        raw = s.connection().connection.dbapi_connection
        cur = raw.cursor()
        for meter, expr in (("requests", pl.len()), ("input_tokens", pl.col("input_tokens").sum())):
            for lvl in LEVELS:
                frame = (lf.with_columns((pl.col("minute") - pl.col("minute") % lvl)
                                         .alias("bucket"))
                         .group_by("customer", "bucket").agg(expr.alias("q"))
                         .sort("customer", "bucket").collect())
                data = [(c, meter, lvl, b, int(q), 0) for c, b, q in frame.iter_rows()]
                cur.executemany("INSERT INTO usage_counters (customer, meter, lvl, bucket, "
                                "units, nanos) VALUES (?, ?, ?, ?, ?, ?)", data)
                rows += len(data)
        cur.close()
    return {"counter_rows": rows, "load_s": round(time.perf_counter() - t0, 1)}


def hook_throughput(parquet: Path, catalog_text: str, n: int) -> dict[str, Any]:
    """The ingestion hook on the first ``n`` events, into a scratch database."""
    import tempfile

    from ratecard.entitlements.service import on_events_ingested
    from ratecard.store.state import dispose, session_scope

    catalog = parse_catalog_text(catalog_text)
    df = pl.read_parquet(parquet).slice(0, n)
    cols = ["event_id", "type", "customer", "timestamp", "input_tokens", "model"]
    events = [Event(eid, typ, cust, ts, {"input_tokens": tok, "model": model})
              for eid, typ, cust, ts, tok, model in df.select(cols).iter_rows()]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/hook.db"
        with session_scope(url):
            pass
        t0 = time.perf_counter()
        rows = 0
        for off in range(0, len(events), 50_000):
            with session_scope(url) as s:
                rows += on_events_ingested(s, events[off:off + 50_000], catalog).counter_rows
        took = time.perf_counter() - t0
        dispose(url)
    return {"events": len(events), "seconds": round(took, 2),
            "events_per_s": round(len(events) / took), "counter_rows_written": rows}


def build(url: str, parquet: Path, catalog_text: str) -> dict[str, Any]:
    from ratecard.billing.catalogs import apply_catalog
    from ratecard.billing.customers import create_customer
    from ratecard.billing.subscriptions import create_subscription
    from ratecard.store.state import session_scope

    catalog = parse_catalog_text(catalog_text)
    df = pl.read_parquet(parquet, columns=["customer", "timestamp"])
    customers = df["customer"].unique().sort().to_list()
    start = df["timestamp"].min()
    t0 = time.perf_counter()
    with session_scope(url) as s:
        apply_catalog(s, catalog, catalog_text)
        for c in customers:
            create_customer(s, c, currency="USD")
            create_subscription(s, c, "api", start=start - timedelta(days=1))
    out: dict[str, Any] = {"customers": len(customers),
                           "setup_s": round(time.perf_counter() - t0, 1)}
    out.update(load_counters(url, parquet))
    return out


def run_checks(url: str, parquet: Path, n: int, seed: int) -> dict[str, Any]:
    from ratecard.entitlements.service import check
    from ratecard.store.state import session_factory, session_scope

    df = pl.read_parquet(parquet, columns=["customer", "timestamp"])
    end = df["timestamp"].max()
    weights = df.group_by("customer").len().sort("customer")
    custs = weights["customer"].to_list()
    w = weights["len"].to_list()
    rng = random.Random(seed)
    plan = []
    for _ in range(n):
        c = rng.choices(custs, weights=w)[0]
        feature, q = rng.choice([("requests", None), ("requests", 1), ("requests", 50),
                                 ("input_tokens", 10_000), ("sso", None),
                                 ("models", None)])
        at = end - timedelta(seconds=rng.randint(0, 3600))
        plan.append((c, feature, q, at))
    factory = session_factory(url)
    # warm up: plan cache, statement cache, pages
    with session_scope(url) as s:
        for c, f, q, at in plan[:500]:
            check(s, c, f, quantity=q, at=at)
    session = factory()
    alone: list[int] = []
    cpu: list[int] = []
    allowed = 0
    load_before = os.getloadavg()
    try:
        for c, f, q, at in plan:
            t = time.perf_counter_ns()
            c0 = time.thread_time_ns()
            r = check(session, c, f, quantity=q, at=at)
            cpu.append(time.thread_time_ns() - c0)
            alone.append(time.perf_counter_ns() - t)
            allowed += r.allowed
    finally:
        session.rollback()
        session.close()
    with_session: list[int] = []
    for c, f, q, at in plan[: max(1, n // 4)]:
        t = time.perf_counter_ns()
        with session_scope(url) as s:
            check(s, c, f, quantity=q, at=at)
        with_session.append(time.perf_counter_ns() - t)
    return {"check": _summary(alone), "check_cpu_time": _summary(cpu),
            "check_with_session": _summary(with_session),
            "allowed_share": round(allowed / n, 3), "at": end.isoformat(),
            "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--checks", type=int, default=20_000)
    p.add_argument("--url", default=None, help="State database (default: a SQLite file in "
                                               "bench/data).")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--hook-events", type=int, default=200_000,
                   help="Also time the ingestion hook on this many events (0: skip).")
    a = p.parse_args(argv)
    ds = dataset(a.events)
    url = a.url
    built: dict[str, Any] | None = None
    if url is None:
        db = HERE / "data" / f"check-state-{a.events}.db"
        url = f"sqlite:///{db}"
        if a.rebuild:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        if not db.exists():
            built = build(url, ds.parquet, CATALOG)
    else:
        built = build(url, ds.parquet, CATALOG) if a.rebuild else None
    res = run_checks(url, ds.parquet, a.checks, a.seed)
    out = {"benchmark": "entitlement check, in-process", "events": a.events,
           "backend": url.split(":", 1)[0], "date": datetime.now(UTC).isoformat(),
           "target": "p99 < 1 ms for the check", **res}
    if built is not None:
        out["build"] = built
    if a.hook_events:
        out["ingest_hook"] = hook_throughput(ds.parquet, CATALOG, a.hook_events)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "check.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
