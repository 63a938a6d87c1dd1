"""The invoice run at scale: 10,000 customers over the 10-million-event month.

``python bench/billing.py [--events 10000000] [--customers 10000] [--state-url URL]``

1. Takes the shared synthetic data set (``bench/generate.py``: ``llm.request`` events of
   10,000 Zipf-skewed customers over April 2026) and ingests it into a DuckDB usage store
   with rollups for the benchmark catalog's meters (cached in ``bench/data``).
2. Creates every customer on an LLM API plan (a platform fee in advance; input, output
   and cached tokens priced per model in arrears, with a default price; requests on a
   graduated scale; a minimum spend), subscribed since 2026-03-01, and bills March and
   April 1 (an untimed run; the state database is cached too).
3. Times the bare aggregation the May 1 run needs (every meter of the plan, every
   customer, April), then the invoice run at 2026-05-02T01:00: it reads April's usage,
   rates it, writes 10,000 invoices with their lines and finalizes them with gapless
   numbers.
4. Checks the result (one invoice per customer, totals = sum of lines, numbers without
   gaps, a sample re-rated through the pricing engine) and writes
   ``bench/results/billing.json``. Target: the run within 2x the bare aggregation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine, print_table, write_results  # noqa: E402
from generate import dataset  # noqa: E402

from ratecard.billing import invoices as inv  # noqa: E402
from ratecard.billing.catalogs import apply_catalog  # noqa: E402
from ratecard.billing.customers import create_customer  # noqa: E402
from ratecard.billing.subscriptions import create_subscription  # noqa: E402
from ratecard.billing.usage import StoreUsage  # noqa: E402
from ratecard.catalog.loader import parse_catalog_text  # noqa: E402
from ratecard.clock import Window  # noqa: E402
from ratecard.metering.events import EventRules  # noqa: E402
from ratecard.money import D  # noqa: E402
from ratecard.pricing import ARREARS, rate_plan  # noqa: E402
from ratecard.store import state  # noqa: E402
from ratecard.store.state import session_scope  # noqa: E402
from ratecard.store.usage import open_usage_store  # noqa: E402

CATALOG = """
currency: USD
meters:
  requests:      {event: llm.request, aggregation: count}
  input_tokens:  {event: llm.request, aggregation: sum, property: input_tokens, group_by: [model]}
  output_tokens: {event: llm.request, aggregation: sum, property: output_tokens, group_by: [model]}
  cached_tokens: {event: llm.request, aggregation: sum, property: cache_read_tokens,
                  group_by: [model]}
plans:
  api:
    name: API
    base_fee: 49
    minimum: 100
    charges:
      - name: Input tokens
        meter: input_tokens
        model: per_unit
        per: 1000000
        prices_by: model
        prices:
          gpt-4o: {unit_price: "2.50"}
          gpt-4.1: {unit_price: "2.00"}
          o3: {unit_price: "2.00"}
          claude-sonnet-4: {unit_price: "3.00"}
          claude-opus-4: {unit_price: "15.00"}
        default: {unit_price: "0.60"}
      - name: Output tokens
        meter: output_tokens
        model: per_unit
        per: 1000000
        prices_by: model
        prices:
          gpt-4o: {unit_price: "10.00"}
          gpt-4.1: {unit_price: "8.00"}
          o3: {unit_price: "8.00"}
          claude-sonnet-4: {unit_price: "15.00"}
          claude-opus-4: {unit_price: "75.00"}
        default: {unit_price: "2.40"}
      - name: Cached input tokens
        meter: cached_tokens
        model: per_unit
        per: 1000000
        prices_by: model
        prices: {gpt-4o: {unit_price: "1.25"}}
        default: {unit_price: "0.15"}
      - name: Requests
        meter: requests
        model: graduated
        tiers:
          - {up_to: 10000, unit_price: 0}
          - {up_to: null, unit_price: "0.0005"}
"""

START = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = Window(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
RUN_AT = datetime(2026, 5, 2, 1, tzinfo=UTC)


def usage_store(ds: Any, catalog: Any, rebuild: bool) -> Path:
    """The data set in a DuckDB usage store with rollups for the catalog's meters."""
    from ratecard.metering.ingest import ingest_sources

    path = HERE / "data" / f"billing-usage-{ds.events}-c{ds.customers}.duckdb"
    if path.exists() and not rebuild:
        return path
    path.unlink(missing_ok=True)
    t = time.perf_counter()
    store = open_usage_store(f"duckdb:///{path}")
    try:
        report = ingest_sources(store, [str(ds.jsonl)], catalog=catalog,
                                rules=EventRules(late=timedelta(days=3650)),
                                now=lambda: ds.end)
    finally:
        store.close()
    print(f"ingested {ds.events:,} events in {time.perf_counter() - t:.1f}s "
          f"({report.as_dict() if hasattr(report, 'as_dict') else ''})"[:200], file=sys.stderr)
    return path


def state_db(ds: Any, catalog: Any, usage: StoreUsage, url: str | None,
             rebuild: bool) -> tuple[str, float]:
    """A state database with every customer subscribed and March/April 1 billed."""
    customers = [f"cust-{i + 1:05d}" for i in range(ds.customers)]

    def build(target: str) -> float:
        with session_scope(target) as s:
            apply_catalog(s, catalog, CATALOG)
            for c in customers:
                create_customer(s, c)
                create_subscription(s, c, "api", start=START)
        t = time.perf_counter()
        report = inv.run_invoices(lambda: session_scope(target), APRIL.start + timedelta(
            hours=25), usage, chunk=1000)
        assert not report.errors, report.errors[:3]
        return time.perf_counter() - t

    if url is not None:  # PostgreSQL: built fresh each time
        return url, build(url)
    # the state does not depend on the events (March has none): one cache per size
    cached = HERE / "data" / f"billing-state-c{ds.customers}.db"
    work = HERE / "data" / f"billing-state-run-{os.getpid()}.db"
    if rebuild or not cached.exists():
        cached.unlink(missing_ok=True)
        target = f"sqlite:///{cached}"
        t = time.perf_counter()
        build(target)
        state.dispose(target)
        print(f"state: {ds.customers:,} subscriptions billed through April 1 in "
              f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(cached, work)
    return f"sqlite:///{work}", 0.0


def bare_aggregation(store: Any, catalog: Any) -> float:
    t = time.perf_counter()
    for name, meter in catalog.meters.items():
        store.aggregate(meter, window=APRIL, customers=None, key=name)
    return time.perf_counter() - t


def check(url: str, store: Any, catalog: Any, customers: int) -> dict[str, Any]:
    with session_scope(url) as s:
        rows = inv.list_invoices(s)
    may = [r for r in rows if r["period_end"] == "2026-05-01T00:00:00Z"]
    assert len(may) == customers, (len(may), customers)
    assert all(r["status"] == "finalized" for r in may)
    numbers = sorted(int(r["number"].split("-")[1]) for r in rows if r["number"])
    assert numbers == list(range(1, len(numbers) + 1)), "numbering has gaps"
    total = Decimal(0)
    lines = 0
    for r in may:
        s_lines = sum((D(ln["amount"]) for ln in r["lines"]), Decimal(0))
        assert s_lines == D(r["total"]), r["number"]
        total += s_lines
        lines += len(r["lines"])
    plan = catalog.plans["api"]
    for r in random.Random(7).sample(may, 25):  # re-rate a sample through the pricing engine
        cust = r["customer"]
        snap = {name: store.aggregate(m, window=APRIL, customers=[cust], key=name)[cust]
                for name, m in catalog.meters.items()}
        quote = rate_plan(catalog, "api", snap, plan=plan, include=(ARREARS,), minimum=False,
                          first_period=False)
        billed = sum((D(ln["amount"]) for ln in r["lines"] if ln["kind"] == "usage"),
                     Decimal(0))
        assert billed == sum((ln.rounded for ln in quote.lines), Decimal(0)), cust
    return {"invoices": len(may), "lines": lines, "billed_total": str(total)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--state-url", default=None, help="PostgreSQL URL (default: SQLite)")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--out", default=None, help="results file (default bench/results/billing.json)")
    a = p.parse_args(argv)
    catalog = parse_catalog_text(CATALOG)
    ds = dataset(a.events, customers=a.customers, start=APRIL.start)
    store_path = usage_store(ds, catalog, a.rebuild)
    store = open_usage_store(f"duckdb:///{store_path}", read_only=True)
    usage = StoreUsage(store)
    url, _ = state_db(ds, catalog, usage, a.state_url, a.rebuild)
    try:
        bare_aggregation(store, catalog)  # warm the caches as a run would find them
        agg = min(bare_aggregation(store, catalog) for _ in range(3))
        t = time.perf_counter()
        report = inv.run_invoices(lambda: session_scope(url), RUN_AT, usage, chunk=500)
        run_s = time.perf_counter() - t
        assert not report.errors, report.errors[:3]
        checked = check(url, store, catalog, ds.customers)
    finally:
        store.close()
        state.dispose(url)
        if url.startswith("sqlite:///"):
            for suffix in ("", "-wal", "-shm"):
                Path(url[len("sqlite:///"):] + suffix).unlink(missing_ok=True)
    result = {
        "benchmark": "billing: invoice run",
        "events": ds.events,
        "customers": ds.customers,
        "state": "postgresql" if a.state_url else "sqlite",
        "aggregation_seconds": round(agg, 3),
        "invoice_run_seconds": round(run_s, 3),
        "ratio": round(run_s / agg, 2) if agg else None,
        "target_ratio": 2.0,
        "meets_target": bool(agg) and run_s / agg <= 2.0,
        "run": report.as_dict(),
        "phases_seconds": {k: round(v, 3) for k, v in report.timings.items()},
        "machine": machine(),
        **checked,
    }
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    else:
        write_results("billing", result)
    print_table(
        f"invoice run: {ds.customers:,} customers, {ds.events:,} events (April)",
        [["bare aggregation (every meter, every customer)", result["aggregation_seconds"]],
         ["invoice run (plan, usage, rate, write, finalize)", result["invoice_run_seconds"]],
         *[[f"  {k}", v] for k, v in result["phases_seconds"].items()],
         ["ratio run / aggregation (target <= 2)", result["ratio"]]],
        ["step", "seconds"],
    )
    return result


if __name__ == "__main__":
    main()
