"""The cost and margin report over the 10-million-event month, beside its bare aggregation.

``python bench/margins.py [--events 10000000] [--customers 10000] [--rebuild]``

1. Takes the shared synthetic data set (``bench/generate.py``: ``llm.request`` events of
   10,000 Zipf-skewed customers over April 2026, 20 models) and ingests it into a DuckDB
   usage store with rollups for the benchmark catalog's meters (cached in ``bench/data``).
2. Prices 19 of the 20 models in the catalog's ``costs:`` (one with a long-context tier,
   one whose price drops on April 15); ``llama-3.3-70b`` is left unpriced on purpose.
   Every customer is subscribed (an API plan, an agent-archetype plan, and a BYOK plan
   for every 20th customer) since March 1 and billed through May 1 (cached state).
3. Times, each the best of three:
   * the **bare aggregation** the report needs: the token meters (input, cached input,
     output, per model) and the request count of every customer over April;
   * the **cost of usage**: every event costed at its timestamp in the store, whole days
     read from the cost day rollup (built once first, timed apart, like the store's own
     rollups at ingest), and once more reading every event without it;
   * the **margin report** (revenue from invoices, costs, meter costs, activity,
     archetype targets) by customer, and by model.
4. Checks the cost exactly against an independent computation with polars over the
   Parquet copy of the events (Decimal prices × integer token sums per model, price
   period and long-context side), and that the unpriced model's events are all listed.

Writes ``bench/results/margins.json``. Target: the cost report within 2x the bare
aggregation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import dataset  # noqa: E402

from ratecard.analytics.service import margins, usage_costs  # noqa: E402
from ratecard.billing import invoices as inv  # noqa: E402
from ratecard.billing.catalogs import apply_catalog  # noqa: E402
from ratecard.billing.customers import create_customer  # noqa: E402
from ratecard.billing.subscriptions import create_subscription  # noqa: E402
from ratecard.billing.usage import StoreUsage  # noqa: E402
from ratecard.catalog.loader import parse_catalog_text  # noqa: E402
from ratecard.clock import Window  # noqa: E402
from ratecard.costs.service import effective_book  # noqa: E402
from ratecard.metering.events import EventRules  # noqa: E402
from ratecard.store import state  # noqa: E402
from ratecard.store.state import session_scope  # noqa: E402
from ratecard.store.usage import open_usage_store  # noqa: E402
from ratecard.workspace import Workspace  # noqa: E402

# USD per million tokens: input, cached input, output
PRICES: dict[str, tuple[str, str, str]] = {
    "glm-4-plus": ("0.50", "0.10", "1.50"), "glm-4-flash": ("0.01", "0.002", "0.04"),
    "glm-4.6": ("0.60", "0.11", "2.20"), "glm-z1": ("1.20", "0.30", "4.80"),
    "gpt-4o": ("2.50", "1.25", "10.00"), "gpt-4o-mini": ("0.15", "0.075", "0.60"),
    "gpt-4.1": ("2.00", "0.50", "8.00"), "gpt-4.1-mini": ("0.40", "0.10", "1.60"),
    "o3": ("2.00", "0.50", "8.00"), "o4-mini": ("1.10", "0.275", "4.40"),
    "claude-sonnet-4": ("3.00", "0.30", "15.00"), "claude-haiku-3.5": ("0.80", "0.08", "4.00"),
    "claude-opus-4": ("15.00", "1.50", "75.00"), "gemini-2.5-pro": ("1.25", "0.125", "10.00"),
    "gemini-2.5-flash": ("0.30", "0.03", "2.50"), "deepseek-v3": ("0.27", "0.07", "1.10"),
    "deepseek-r1": ("0.55", "0.14", "2.19"), "qwen-max": ("1.60", "0.32", "6.40"),
    "qwen-plus": ("0.40", "0.08", "1.20"),
}
UNPRICED = "llama-3.3-70b"
LONG = ("gemini-2.5-pro", 4000, ("2.50", "0.25", "15.00"))  # above 4,000 prompt tokens
CHANGE = ("gpt-4o", datetime(2026, 4, 15, tzinfo=UTC), ("2.00", "1.00", "8.00"))


def catalog_text() -> str:
    lines = ["currency: USD", "meters:",
             "  requests:      {event: llm.request, aggregation: count}",
             "  input_tokens:  {event: llm.request, aggregation: sum, property: input_tokens,"
             " group_by: [model]}",
             "  output_tokens: {event: llm.request, aggregation: sum, property: output_tokens,"
             " group_by: [model]}",
             "  cached_tokens: {event: llm.request, aggregation: sum, "
             "property: cache_read_tokens, group_by: [model]}",
             "costs:", "  models:"]
    for model, (i, c, o) in PRICES.items():
        if model == CHANGE[0]:
            ni, nc, no = CHANGE[2]
            day = CHANGE[1].date().isoformat()
            lines.append(f"    {model}:")
            lines.append(f"      - {{input: '{i}', cached_input: '{c}', output: '{o}', "
                         f"valid_to: '{day}'}}")
            lines.append(f"      - {{input: '{ni}', cached_input: '{nc}', output: '{no}', "
                         f"valid_from: '{day}'}}")
        elif model == LONG[0]:
            li, lc, lo = LONG[2]
            lines.append(f"    {model}: {{input: '{i}', cached_input: '{c}', output: '{o}', "
                         f"long_context: {{above: {LONG[1]}, input: '{li}', "
                         f"cached_input: '{lc}', output: '{lo}'}}}}")
        else:
            lines.append(f"    {model}: {{input: '{i}', cached_input: '{c}', output: '{o}'}}")
    lines += [
        "  meters: {requests: '0.0001'}",
        "plans:",
        "  api:",
        "    archetype: api",
        "    base_fee: 49",
        "    charges:",
        "      - {name: Input tokens, meter: input_tokens, model: per_unit, per: 1000000, "
        "unit_price: '1.20'}",
        "      - {name: Output tokens, meter: output_tokens, model: per_unit, per: 1000000, "
        "unit_price: '6.00'}",
        "  agent:",
        "    archetype: agent",
        "    min_margin: '0.55'",
        "    base_fee: 199",
        "    charges:",
        "      - {name: Requests, meter: requests, model: per_unit, included: 500, "
        "unit_price: '0.02'}",
        "  byok:",
        "    archetype: api",
        "    byok: true",
        "    base_fee: 29",
    ]
    return "\n".join(lines) + "\n"


START = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = Window(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
RUN_AT = datetime(2026, 5, 2, 1, tzinfo=UTC)


def plan_of(i: int) -> str:
    return "byok" if i % 20 == 0 else ("agent" if i % 3 == 0 else "api")


def build_workspace(ds: Any, root: Path, catalog: Any, text: str, rebuild: bool) -> Workspace:
    """The usage store (ingested) and state (customers billed through May 1), cached."""
    from ratecard.metering.ingest import ingest_sources

    cached = HERE / "data" / f"margins-{ds.events}-c{ds.customers}"
    if rebuild and cached.exists():
        shutil.rmtree(cached)
    if not (cached / "done").exists():
        shutil.rmtree(cached, ignore_errors=True)
        ws = Workspace.open(cached, create=True)
        t = time.perf_counter()
        store = open_usage_store(ws.usage_url)
        try:
            store.sync_meters(catalog.meters)
            ingest_sources(store, [str(ds.jsonl)], catalog=catalog,
                           rules=EventRules(late=timedelta(days=3650)), now=lambda: ds.end)
        finally:
            store.close()
        print(f"ingested {ds.events:,} events in {time.perf_counter() - t:.1f}s",
              file=sys.stderr)
        t = time.perf_counter()
        with session_scope(ws) as s:
            apply_catalog(s, catalog, text)
            for i in range(ds.customers):
                c = f"cust-{i + 1:05d}"
                create_customer(s, c, byok=plan_of(i) == "byok")
                create_subscription(s, c, plan_of(i), start=START)
        store = open_usage_store(ws.usage_url, read_only=True)
        try:
            report = inv.run_invoices(lambda: session_scope(ws), RUN_AT,
                                      StoreUsage(store, catalog), chunk=1000)
        finally:
            store.close()
        assert not report.errors, report.errors[:3]
        state.dispose(ws.database_url)
        print(f"state: {ds.customers:,} customers billed through May 1 in "
              f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
        (cached / "done").write_text("ok\n")
    work = root / "margins-run"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(cached, work)
    return Workspace.open(work)


def best(fn: Callable[[], Any], n: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bare_aggregation(store: Any, catalog: Any) -> None:
    for name, meter in catalog.meters.items():
        store.aggregate(meter, window=APRIL, customers=None, key=name)


def expected_cost(ds: Any, customers: int) -> tuple[Decimal, Decimal, int]:
    """Model cost (we pay), BYOK would-be cost, unpriced events: polars over the Parquet."""
    df = pl.read_parquet(ds.parquet).unique(subset="event_id", keep="first")
    df = df.filter((pl.col("timestamp") >= APRIL.start) & (pl.col("timestamp") < APRIL.end))
    idx = pl.col("customer").str.slice(5).cast(pl.Int64) - 1
    df = df.with_columns(
        byok=(idx % 20 == 0),
        late=pl.col("timestamp") >= CHANGE[1],
        long=(pl.col("input_tokens") + pl.col("cache_read_tokens")) > LONG[1],
    )
    unpriced = df.filter(pl.col("model") == UNPRICED).height
    sums = (df.filter(pl.col("model") != UNPRICED)
            .group_by("model", "byok", "late", "long")
            .agg(pl.col("input_tokens").sum(), pl.col("cache_read_tokens").sum(),
                 pl.col("output_tokens").sum()))
    paid, byok = Decimal(0), Decimal(0)
    for row in sums.iter_rows(named=True):
        model = row["model"]
        i, c, o = PRICES[model]
        if model == CHANGE[0] and row["late"]:
            i, c, o = CHANGE[2]
        if model == LONG[0] and row["long"]:
            i, c, o = LONG[2]
        # canonical buckets: input_tokens are the uncached ones, cache reads come on top
        cost = (Decimal(row["input_tokens"]) * Decimal(i)
                + Decimal(row["cache_read_tokens"]) * Decimal(c)
                + Decimal(row["output_tokens"]) * Decimal(o)) / Decimal(1_000_000)
        if row["byok"]:
            byok += cost
        else:
            paid += cost
    return paid, byok, unpriced


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "margins.json"))
    a = p.parse_args(argv)
    text = catalog_text()
    catalog = parse_catalog_text(text)
    ds = dataset(a.events, customers=a.customers, start=APRIL.start)
    ws = build_workspace(ds, HERE / "data", catalog, text, a.rebuild)
    book = effective_book(ws, catalog.costs)
    store = open_usage_store(ws.usage_url, read_only=True)
    try:
        bare_aggregation(store, catalog)  # warm caches as a report would find them
        agg_s, _ = best(lambda: bare_aggregation(store, catalog))
        from ratecard.analytics.repository import byok_customers, plan_spans

        with session_scope(ws) as s:
            spans = plan_spans(s)
            byok = sorted(byok_customers(s))
        t = time.perf_counter()
        built = usage_costs(store, book, APRIL, byok=byok, spans=spans)
        build_s = time.perf_counter() - t
        cost_s, usage = best(lambda: usage_costs(store, book, APRIL, byok=byok, spans=spans))
        scan_s, scanned = best(lambda: usage_costs(store, book, APRIL, byok=byok, spans=spans,
                                                   rollup=False), n=1)
    finally:
        store.close()
    assert (scanned.cost, scanned.byok_cost, scanned.events) == (
        usage.cost, usage.byok_cost, usage.events) == (built.cost, built.byok_cost, built.events)
    report_s, report = best(lambda: margins(ws, APRIL, "customer"), n=2)
    model_s, by_model = best(lambda: margins(ws, APRIL, "model"), n=1)
    paid, would, unpriced = expected_cost(ds, a.customers)
    assert usage.cost == paid, (usage.cost, paid)
    assert usage.byok_cost == would, (usage.byok_cost, would)
    assert [(u.model, u.events) for u in usage.unpriced] == [(UNPRICED, unpriced)], usage.unpriced
    assert report.total.model_cost == paid
    state.dispose(ws.database_url)
    total = report.total
    result = {
        "benchmark": "margins: cost of usage and margin report",
        "events": ds.events,
        "customers": ds.customers,
        "costed_events": usage.events,
        "python_path_events": usage.python_events,
        "aggregation_seconds": round(agg_s, 3),
        "cost_rollup_build_seconds": round(build_s, 3),
        "cost_of_usage_seconds": round(cost_s, 3),
        "cost_of_usage_without_rollup_seconds": round(scan_s, 3),
        "margin_report_seconds": round(report_s, 3),
        "margin_report_by_model_seconds": round(model_s, 3),
        "ratio_cost": round(cost_s / agg_s, 2) if agg_s else None,
        "ratio_cost_without_rollup": round(scan_s / agg_s, 2) if agg_s else None,
        "ratio_report": round(report_s / agg_s, 2) if agg_s else None,
        "target_ratio": 2.0,
        "model_cost": str(usage.cost),
        "byok_would_have_cost": str(usage.byok_cost),
        "unpriced_events": usage.unpriced_events,
        "revenue": str(total.revenue),
        "gross_margin": str(total.margin),
        "margin": str(total.margin_pct.quantize(Decimal("0.0001"))) if total.margin_pct else None,
        "losing_customers": len(report.losers),
        "models": len(by_model.rows),
        "checked": "cost equals an independent polars computation over the Parquet copy",
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
