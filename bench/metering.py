"""Metering at scale: ingest, the all-customer month and the point query, beside their floors.

``python bench/metering.py [--events 10000000] [--samples 300] [--repeat 5]``

On the shared synthetic data set (``bench/generate.py``: ``llm.request`` events of
10,000 Zipf-skewed customers, 20 models, 30 days of April 2026, JSONL and Parquet), each
step in its own process (so each has its own peak memory):

1. **Ingest floor**: the fastest plain read of the JSONL into memory, no storage:
   DuckDB ``read_json`` into an in-memory table, and polars ``read_ndjson``.
2. **Ingest**: ``ratecard events ingest``'s code path into a fresh DuckDB usage store,
   with the benchmark catalog's meters (input, output and cached tokens and requests,
   per model): validation, deduplication (the file resends 0.1% of its events),
   durable commits per batch and rollups. Throughput over the first and last tenth of
   the file shows whether it is sustained. Target: at least 25% of the floor.
3. **All-customer month**: per customer and model, the four quantities, as one Arrow
   table (``UsageStore.usage_table``), beside DuckDB's own GROUP BY over the same events
   in the Parquet file; and the same as ``MeterUsage`` objects per meter
   (``aggregate``). Target: within 1.5x of the floor. The two answers are compared
   exactly.
4. **Point query**: one customer's month of one meter (``aggregate(meter,
   customers=[c])``, what an entitlement check or a portal page asks), for the largest
   customers and a sample of the rest; p50/p99/max. Also the whole month of all four
   meters for the customer. Target: under 50 ms for every customer.

Writes ``bench/results/metering.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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

CATALOG = """
currency: USD
meters:
  input_tokens:  {event: llm.request, aggregation: sum, property: input_tokens, group_by: [model]}
  output_tokens: {event: llm.request, aggregation: sum, property: output_tokens, group_by: [model]}
  cached_tokens: {event: llm.request, aggregation: sum, property: cache_read_tokens,
                  group_by: [model]}
  requests:      {event: llm.request, aggregation: count, group_by: [model]}
"""
NOW = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)


def _catalog() -> Any:
    from ratecard.catalog.loader import parse_catalog_text

    return parse_catalog_text(CATALOG)


def _month(a: dict[str, Any]) -> Any:
    from ratecard.clock import Window

    start = datetime.fromisoformat(a["start"])
    return Window(start, start + timedelta(days=a["days"]))


# --------------------------------------------------------------------------- phases


def floor_duckdb(a: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    with timed() as t:
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{a['jsonl']}', "
                    "format='newline_delimited')").fetchall()
    n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    return {"rows": n, "wall_s": t.wall, "cpu_s": t.cpu}


def floor_polars(a: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    with timed() as t:
        df = pl.read_ndjson(a["jsonl"])
    return {"rows": df.height, "wall_s": t.wall, "cpu_s": t.cpu}


def ingest(a: dict[str, Any]) -> dict[str, Any]:
    from ratecard.metering.events import EventRules
    from ratecard.metering.ingest import ingest_sources
    from ratecard.store.usage import open_usage_store

    db = Path(a["db"])
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    store = open_usage_store(f"duckdb:///{db}")
    marks: list[tuple[float, int]] = []
    t0 = time.perf_counter()

    def progress(p: Any) -> None:
        marks.append((time.perf_counter() - t0, p.lines))
        if len(marks) % 5 == 0:
            print(f"  ingest: {p.lines:,} lines, {time.perf_counter() - t0:.0f}s",
                  file=sys.stderr, flush=True)

    with timed() as t:
        report = ingest_sources(store, [a["jsonl"]], catalog=_catalog(),
                                rules=EventRules(late=timedelta(days=3650)),
                                now=lambda: NOW, on_progress=progress)
    store.close()
    total = marks[-1][1] if marks else 0

    def rate(lo: float, hi: float) -> float | None:
        pts = [(0.0, 0), *marks]
        a_ = next((m for m in pts if m[1] >= lo * total), None)
        b_ = next((m for m in pts if m[1] >= hi * total), None)
        if not a_ or not b_ or b_[0] <= a_[0]:
            return None
        return (b_[1] - a_[1]) / (b_[0] - a_[0])

    first = rate(0, 0.1)
    last_from = max((m for m in marks if m[1] <= 0.9 * total), default=(0.0, 0))
    last = ((total - last_from[1]) / (marks[-1][0] - last_from[0])
            if marks and marks[-1][0] > last_from[0] else None)
    return {"accepted": report.accepted, "duplicates": report.duplicates,
            "rejected": report.rejected, "lines": report.lines, "wall_s": t.wall,
            "cpu_s": t.cpu, "rate_first_tenth": first, "rate_last_tenth": last,
            "batches": len(marks), "db_mb": round(db.stat().st_size / 1e6, 1)}


def floor_agg(a: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    w = _month(a)
    sql = (f"SELECT customer, model, sum(input_tokens) AS input_tokens, "
           f"sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cached_tokens, "
           f"count(*) AS requests FROM read_parquet('{a['parquet']}') "
           f"WHERE timestamp >= $1 AND timestamp < $2 GROUP BY ALL")
    times = []
    rows = 0
    for _ in range(a["repeat"]):
        with timed() as t:
            tab = con.sql(sql, params=[w.start, w.end]).to_arrow_table()
        times.append(t.wall)
        rows = tab.num_rows
    return {"rows": rows, "runs_s": times, "median_s": statistics.median(times)}


def agg_all(a: dict[str, Any]) -> dict[str, Any]:
    from ratecard.store.usage import open_usage_store

    store = open_usage_store(f"duckdb:///{a['db']}", read_only=True)
    meters = _catalog().meters
    w = _month(a)
    times, obj_times = [], []
    rows = 0
    for _ in range(a["repeat"]):
        with timed() as t:
            tab = store.usage_table(meters, window=w)  # type: ignore[attr-defined]
        times.append(t.wall)
        rows = tab.num_rows
    for _ in range(max(1, a["repeat"] // 2)):
        with timed() as t:
            got = {name: store.aggregate(m, window=w, key=name) for name, m in meters.items()}
        obj_times.append(t.wall)
    customers = len(got["input_tokens"])
    store.close()
    return {"rows": rows, "runs_s": times, "median_s": statistics.median(times),
            "meter_usage_runs_s": obj_times, "meter_usage_median_s": statistics.median(obj_times),
            "customers": customers}


def verify(a: dict[str, Any]) -> dict[str, Any]:
    """Our all-customer month equals DuckDB's GROUP BY over the Parquet file, exactly."""
    import duckdb

    from ratecard.store.usage import open_usage_store

    w = _month(a)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    floor = {(r[0], r[1]): tuple(Decimal(x) for x in r[2:]) for r in con.execute(
        f"SELECT customer, model, sum(input_tokens), sum(output_tokens), "
        f"sum(cache_read_tokens), count(*) FROM read_parquet('{a['parquet']}') "
        f"WHERE timestamp >= $1 AND timestamp < $2 GROUP BY ALL", [w.start, w.end]).fetchall()}
    store = open_usage_store(f"duckdb:///{a['db']}", read_only=True)
    tab = store.usage_table(_catalog().meters, window=w)  # type: ignore[attr-defined]
    store.close()
    ours = {}
    for r in tab.to_pylist():
        ours[(r["customer"], r["model"])] = tuple(
            Decimal(r[k]) for k in ("input_tokens", "output_tokens", "cached_tokens",
                                     "requests"))
    # the Parquet file holds the resent lines too: count each event once
    dups = con.execute(
        f"SELECT count(*) - count(DISTINCT event_id) FROM read_parquet('{a['parquet']}')"
    ).fetchall()[0][0]
    if dups:
        floor = {(r[0], r[1]): tuple(Decimal(x) for x in r[2:]) for r in con.execute(
            f"SELECT customer, model, sum(input_tokens), sum(output_tokens), "
            f"sum(cache_read_tokens), count(*) FROM (SELECT DISTINCT ON (event_id) * FROM "
            f"read_parquet('{a['parquet']}')) WHERE timestamp >= $1 AND timestamp < $2 "
            f"GROUP BY ALL", [w.start, w.end]).fetchall()}
    return {"equal": ours == floor, "groups": len(ours), "floor_groups": len(floor),
            "resent_lines_in_file": dups}


def point(a: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    from ratecard.store.usage import open_usage_store

    store = open_usage_store(f"duckdb:///{a['db']}", read_only=True)
    meters = _catalog().meters
    w = _month(a)
    con = duckdb.connect(a["db"], read_only=True)
    counts = con.execute("SELECT customer, count(*) n FROM events GROUP BY 1 "
                         "ORDER BY n DESC").fetchall()
    con.close()
    rng = random.Random(5)
    top = [c for c, _ in counts[:10]]
    rest = [c for c, _ in counts[10:]]
    sample = top + rng.sample(rest, min(len(rest), a["samples"]))
    share = counts[0][1] / sum(n for _, n in counts)
    one, snap = [], []
    meter = meters["input_tokens"]
    for c in sample[:3]:  # warm up
        store.aggregate(meter, window=w, customers=[c])
    per: dict[str, float] = {}
    for c in sample:
        with timed() as t:
            store.aggregate(meter, window=w, customers=[c])
        one.append(t.wall * 1000)
        per[c] = t.wall * 1000
        with timed() as t:
            store.usage_table(meters, window=w, customers=[c])  # type: ignore[attr-defined]
        snap.append(t.wall * 1000)
    store.close()
    return {"customers_sampled": len(sample), "largest": counts[0][0],
            "largest_share_of_events": share, "largest_ms": per[counts[0][0]],
            "one_meter_ms": percentiles(one), "all_meters_ms": percentiles(snap)}


PHASES = {"floor_duckdb": floor_duckdb, "floor_polars": floor_polars, "ingest": ingest,
          "floor_agg": floor_agg, "agg_all": agg_all, "verify": verify, "point": point}


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--samples", type=int, default=300, help="customers sampled for the "
                                                            "point query (plus the top 10)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the ingested store in bench/data")
    a = p.parse_args(argv)
    ds = dataset(a.events)
    db = DATA / f"metering-{a.events}.duckdb"
    args = {"jsonl": str(ds.jsonl), "parquet": str(ds.parquet), "db": str(db),
            "start": ds.start.isoformat(), "days": ds.days, "repeat": a.repeat,
            "samples": a.samples}
    me = Path(__file__)
    print(f"metering benchmark: {a.events:,} events, {ds.customers:,} customers, "
          f"{ds.jsonl.stat().st_size / 1e9:.2f} GB of JSONL", file=sys.stderr)
    res: dict[str, Any] = {"events": a.events, "customers": ds.customers, "models": ds.models,
                           "days": ds.days, "jsonl_bytes": ds.jsonl.stat().st_size,
                           "machine": machine()}
    print("ingest floor (DuckDB read_json, polars read_ndjson)...", file=sys.stderr)
    fd = run_phase(me, "floor_duckdb", args)
    fp = run_phase(me, "floor_polars", args)
    floor = min((fd, fp), key=lambda r: r["wall_s"])
    print("ingest...", file=sys.stderr)
    ing = run_phase(me, "ingest", args)
    print("all-customer month...", file=sys.stderr)
    fa = run_phase(me, "floor_agg", args)
    ag = run_phase(me, "agg_all", args)
    ve = run_phase(me, "verify", args)
    print("point queries...", file=sys.stderr)
    pt = run_phase(me, "point", args)
    if not a.keep:
        for f in (db, db.with_name(db.name + ".wal")):
            f.unlink(missing_ok=True)

    lines = ing["lines"]
    floor_rate = floor["rows"] / floor["wall_s"]
    ingest_rate = lines / ing["wall_s"]
    res["ingest"] = {
        "floor_duckdb": fd, "floor_polars": fp,
        "floor_events_per_s": floor_rate, "floor_reader": "duckdb" if floor is fd else "polars",
        "ours": ing, "events_per_s": ingest_rate,
        "ratio_to_floor": ingest_rate / floor_rate,
        "ratio_to_floor_cpu": (floor["cpu_s"] / floor["rows"]) / (ing["cpu_s"] / lines),
        "target": ">= 0.25 of the floor, sustained",
        "sustained_last_tenth_ratio": (ing["rate_last_tenth"] / floor_rate
                                       if ing.get("rate_last_tenth") else None),
    }
    res["all_customer_month"] = {
        "floor": fa, "ours": ag, "verify": ve,
        "ratio_to_floor": ag["median_s"] / fa["median_s"],
        "meter_usage_ratio_to_floor": ag["meter_usage_median_s"] / fa["median_s"],
        "target": "<= 1.5x the floor",
    }
    res["point_query"] = pt | {"target_ms": 50}
    res["peak_rss_mb"] = {"floor_duckdb": fd["peak_rss_mb"], "floor_polars": fp["peak_rss_mb"],
                          "ingest": ing["peak_rss_mb"], "floor_agg": fa["peak_rss_mb"],
                          "agg_all": ag["peak_rss_mb"], "point": pt["peak_rss_mb"]}
    path = write_results("metering", res)

    rows = [
        ["ingest floor: DuckDB read_json", f"{fd['rows'] / fd['wall_s']:,.0f} ev/s",
         f"{fd['wall_s']:.1f}s", fd["peak_rss_mb"], ""],
        ["ingest floor: polars read_ndjson", f"{fp['rows'] / fp['wall_s']:,.0f} ev/s",
         f"{fp['wall_s']:.1f}s", fp["peak_rss_mb"], ""],
        ["ingest + dedupe + rollups", f"{ingest_rate:,.0f} ev/s", f"{ing['wall_s']:.1f}s",
         ing["peak_rss_mb"], f"{res['ingest']['ratio_to_floor']:.0%} of floor "
         f"(first/last tenth {_rate(ing.get('rate_first_tenth'))}/"
         f"{_rate(ing.get('rate_last_tenth'))})"],
        ["month, all customers: floor (Parquet GROUP BY)", f"{fa['rows']:,} rows",
         f"{fa['median_s'] * 1000:.0f} ms", fa["peak_rss_mb"], ""],
        ["month, all customers: usage_table", f"{ag['rows']:,} rows",
         f"{ag['median_s'] * 1000:.0f} ms", ag["peak_rss_mb"],
         f"{res['all_customer_month']['ratio_to_floor']:.2f}x floor, "
         f"{'equal' if ve['equal'] else 'DIFFERENT'}"],
        ["month, all customers: MeterUsage x4", f"{ag['customers']:,} customers",
         f"{ag['meter_usage_median_s'] * 1000:.0f} ms", ag["peak_rss_mb"],
         f"{res['all_customer_month']['meter_usage_ratio_to_floor']:.2f}x floor"],
        ["one customer's month, one meter", f"{pt['customers_sampled']} customers",
         f"p50 {pt['one_meter_ms']['p50']:.1f} / p99 {pt['one_meter_ms']['p99']:.1f} / "
         f"max {pt['one_meter_ms']['max']:.1f} ms", pt["peak_rss_mb"],
         f"largest ({pt['largest_share_of_events']:.1%} of events): "
         f"{pt['largest_ms']:.1f} ms"],
        ["one customer's month, four meters", "",
         f"p50 {pt['all_meters_ms']['p50']:.1f} / p99 {pt['all_meters_ms']['p99']:.1f} / "
         f"max {pt['all_meters_ms']['max']:.1f} ms", "", ""],
    ]
    print_table(f"metering, {a.events:,} events (results in {path})", rows,
                ["step", "volume", "time", "peak MB", "vs target"])
    return res


def _rate(v: float | None) -> str:
    return f"{v:,.0f}" if v else "?"


if __name__ == "__main__":
    if not phase_main(PHASES):
        main()
