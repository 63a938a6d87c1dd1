"""A day rollup of normalised ``llm.request`` usage, so reports need not re-read every event.

Costing a month means normalising every event's JSON (see
:mod:`ratecard.store.duckdb_costs`). The rollup keeps, in its own DuckDB file beside the
usage store (``usage.costs.duckdb``), the normalised token sums per customer, UTC day,
model, provider, region, batch flag and *prompt band* (how many of the price book's
long-context thresholds the prompt is above, over every threshold the book has), and
the events whose JSON needs the Python normaliser, one by one. It follows the store:

* **new events** are read by the store's ``batch`` number (each append is one batch;
  numbers only grow), normalised once and added;
* **voids** are subtracted (a negative row), so a voided event never counts;
* a price book with **other thresholds** rebuilds it (the bands change).

A report then takes every *clean* day from the rollup (a whole day in the window, with
no price change and no plan change of the customer inside it: the day prices as one)
and reads the rest, the edges of the window and the days with a change inside, from the
raw events. Both parts go through the same grouping, so the result is exactly the result
of reading every event (a test compares the two on random data).
"""

from __future__ import annotations

import json
import threading
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ratecard.clock import Window
from ratecard.costs.model import PriceBook
from ratecard.store.duckdb_costs import (
    EVENT_TYPE,
    PlanSpan,
    _checked_sql,
    _grouped_sql,
    events_source,
)

VERSION = "1"
ALIAS = "rc_roll"
_LOCK = threading.Lock()
_DAY = timedelta(days=1)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {ALIAS}.meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS {ALIAS}.days (
  customer VARCHAR, day TIMESTAMPTZ, model VARCHAR, provider VARCHAR, region VARCHAR,
  batch BOOLEAN, band INTEGER, n BIGINT, input HUGEINT, cache_read HUGEINT,
  cache_write HUGEINT, cache_write_1h HUGEINT, output HUGEINT, reasoning HUGEINT,
  first_at TIMESTAMPTZ, last_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS {ALIAS}.doubt (
  event_id VARCHAR, customer VARCHAR, ts TIMESTAMPTZ, properties VARCHAR);
CREATE TABLE IF NOT EXISTS {ALIAS}.voided (event_id VARCHAR);
"""


def rollup_path(store_url: str) -> Path | None:
    """Where the rollup of the usage store at ``store_url`` lives (``None``: in memory)."""
    if not store_url.startswith("duckdb:///"):
        return None
    target = store_url[len("duckdb://"):]
    if target in ("/:memory:", ""):
        return None
    path = Path(target[1:] if target.startswith("//") else target)
    return path.with_name(path.stem + ".costs.duckdb")


def ladder(book: PriceBook) -> list[int]:
    """Every long-context threshold of the book, ascending: the prompt bands."""
    return sorted({t.above for p in book.all_prices() for t in p.long_context})


def _lst(values: list[int]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]::BIGINT[]"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute(f"SELECT key, value FROM {ALIAS}.meta").fetchall())


def _set_meta(con: duckdb.DuckDBPyConnection, values: dict[str, str]) -> None:
    for k, v in values.items():
        con.execute(f"INSERT OR REPLACE INTO {ALIAS}.meta VALUES (?, ?)", [k, v])


def _rollup_rows(source: str, bands: list[int], *, sign: int = 1) -> str:
    """Day rows (``ok`` events) and doubtful events of ``source``, signed."""
    return _checked_sql(source) + f"""
    SELECT customer, date_trunc('day', ts) AS day, model, provider, region, batch,
           CASE WHEN ok THEN len(list_filter({_lst(bands)}, lambda t: prompt > t)) END AS band,
           ok, CASE WHEN ok THEN NULL ELSE event_id END AS event_id,
           CASE WHEN ok THEN NULL ELSE ts END AS raw_ts,
           CASE WHEN ok THEN NULL ELSE p END AS raw,
           {sign} * count(*) AS n,
           {sign} * sum(input)::HUGEINT AS input, {sign} * sum(cache_read)::HUGEINT AS cr,
           {sign} * sum(cache_write)::HUGEINT AS cw,
           {sign} * sum(cache_write_1h)::HUGEINT AS cw1h,
           {sign} * sum(output - reasoning)::HUGEINT AS output,
           {sign} * sum(reasoning)::HUGEINT AS reasoning,
           {"min(ts)" if sign > 0 else "NULL"} AS first_at,
           {"max(ts)" if sign > 0 else "NULL"} AS last_at
    FROM checked GROUP BY ALL"""


def _add(con: duckdb.DuckDBPyConnection, source: str, bands: list[int], params: list[Any],
         *, sign: int) -> int:
    con.execute("CREATE OR REPLACE TEMP TABLE rc_new AS " + _rollup_rows(source, bands,
                                                                         sign=sign), params)
    con.execute(f"""INSERT INTO {ALIAS}.days SELECT customer, day, model, provider, region,
        batch, band, n, input, cr, cw, cw1h, output, reasoning, first_at, last_at
        FROM rc_new WHERE ok""")
    if sign > 0:
        con.execute(f"INSERT INTO {ALIAS}.doubt SELECT event_id, customer, raw_ts, raw "
                    "FROM rc_new WHERE NOT ok")
    n = con.execute("SELECT count(*) FROM rc_new").fetchone()
    con.execute("DROP TABLE rc_new")
    return int(n[0]) if n else 0


def refresh(con: duckdb.DuckDBPyConnection, book: PriceBook, *, events: str = "events",
            voids: str = "voids") -> dict[str, int]:
    """Bring the attached rollup up to date with the store (see the module docs)."""
    bands = ladder(book)
    meta = _meta(con)
    stats = {"rebuilt": 0, "new_rows": 0, "voided": 0}
    con.execute("BEGIN")
    try:
        if meta.get("version") != VERSION or meta.get("bands") != json.dumps(bands):
            for t in ("days", "doubt", "voided"):
                con.execute(f"DELETE FROM {ALIAS}.{t}")
            meta = {"version": VERSION, "bands": json.dumps(bands), "batch": "-1",
                    "rows_compacted": "0"}
            stats["rebuilt"] = 1
        last = int(meta.get("batch", "-1"))
        top = con.execute(f"SELECT max(batch) FROM {events}").fetchone()
        newest = int(top[0]) if top and top[0] is not None else last
        if newest > last:
            src = (f"SELECT event_id, customer, ts, properties FROM {events} "
                   f"WHERE type = '{EVENT_TYPE}' AND batch > ? AND batch <= ?")
            stats["new_rows"] = _add(con, src, bands, [last, newest], sign=1)
        # voids: subtract what was added (events of batches up to ``newest``)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE rc_newvoids AS
            SELECT v.event_id FROM {voids} v JOIN {events} e ON e.event_id = v.event_id
            WHERE e.batch <= ? AND v.event_id NOT IN (SELECT event_id FROM {ALIAS}.voided)""",
                    [newest])
        nv = con.execute("SELECT count(*) FROM rc_newvoids").fetchone()
        stats["voided"] = int(nv[0]) if nv else 0
        if stats["voided"]:
            src = (f"SELECT event_id, customer, ts, properties FROM {events} "
                   f"WHERE type = '{EVENT_TYPE}' "
                   "AND event_id IN (SELECT event_id FROM rc_newvoids)")
            _add(con, src, bands, [], sign=-1)
            con.execute(f"DELETE FROM {ALIAS}.doubt WHERE event_id IN "
                        "(SELECT event_id FROM rc_newvoids)")
            con.execute(f"INSERT INTO {ALIAS}.voided SELECT event_id FROM rc_newvoids")
        con.execute("DROP TABLE rc_newvoids")
        meta["batch"] = str(newest)
        _compact(con, meta)
        _set_meta(con, meta)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return stats


def _compact(con: duckdb.DuckDBPyConnection, meta: dict[str, str]) -> None:
    """Merge the rows of one key when they have grown by half since the last merge."""
    rows = con.execute(f"SELECT count(*) FROM {ALIAS}.days").fetchone()
    count = int(rows[0]) if rows else 0
    if count <= max(100_000, int(int(meta.get("rows_compacted", "0")) * 1.5)):
        return
    con.execute(f"""CREATE OR REPLACE TEMP TABLE rc_merged AS
        SELECT customer, day, model, provider, region, batch, band, sum(n)::BIGINT AS n,
               sum(input)::HUGEINT, sum(cache_read)::HUGEINT, sum(cache_write)::HUGEINT,
               sum(cache_write_1h)::HUGEINT, sum(output)::HUGEINT, sum(reasoning)::HUGEINT,
               min(first_at), max(last_at)
        FROM {ALIAS}.days GROUP BY ALL HAVING sum(n) <> 0
        ORDER BY customer, day""")
    con.execute(f"DELETE FROM {ALIAS}.days")
    con.execute(f"INSERT INTO {ALIAS}.days SELECT * FROM rc_merged")
    con.execute("DROP TABLE rc_merged")
    merged = con.execute(f"SELECT count(*) FROM {ALIAS}.days").fetchone()
    meta["rows_compacted"] = str(int(merged[0]) if merged else 0)


def _day_floor(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _day_ceil(dt: datetime) -> datetime:
    f = _day_floor(dt)
    return f if f == dt else f + _DAY


def _inside(dt: datetime | None, start: datetime, end: datetime) -> bool:
    return dt is not None and start <= dt < end and dt != _day_floor(dt)


def build_groups(con: duckdb.DuckDBPyConnection, book: PriceBook, window: Window,
                 spans: list[PlanSpan], segments_boundaries: list[datetime], *,
                 events: str, voids: str | None, customers: bool) -> None:
    """``rc_groups`` from the rollup's clean days plus the raw events of the rest."""
    bands = ladder(book)
    clean_start, clean_end = _day_ceil(window.start), _day_floor(window.end)
    if clean_end <= clean_start:
        clean_start = clean_end = window.start
    dirty_days = sorted({_day_floor(b) for b in segments_boundaries
                         if _inside(b, clean_start, clean_end)})
    dirty_cdays = sorted({(s.customer, _day_floor(b)) for s in spans for b in (s.start, s.end)
                          if _inside(b, clean_start, clean_end)})
    con.execute("CREATE OR REPLACE TEMP TABLE rc_dirty_days (day TIMESTAMPTZ)")
    if dirty_days:
        con.executemany("INSERT INTO rc_dirty_days VALUES (?)", [[d] for d in dirty_days])
    con.execute("CREATE OR REPLACE TEMP TABLE rc_dirty_cdays (customer VARCHAR, "
                "day TIMESTAMPTZ)")
    if dirty_cdays:
        con.executemany("INSERT INTO rc_dirty_cdays VALUES (?, ?)", dirty_cdays)
    only = "AND d.customer IN (SELECT customer FROM rc_customers)" if customers else ""
    clean = (f"d.day >= $clean_start AND d.day < $clean_end "
             f"AND d.day NOT IN (SELECT day FROM rc_dirty_days) "
             f"AND (d.customer, d.day) NOT IN (SELECT customer, day FROM rc_dirty_cdays) {only}")
    rest = ("AND (e.ts < $clean_start OR e.ts >= $clean_end "
            "OR date_trunc('day', e.ts) IN (SELECT day FROM rc_dirty_days) "
            "OR (e.customer, date_trunc('day', e.ts)) IN "
            "(SELECT customer, day FROM rc_dirty_cdays))")
    lower = f"CASE WHEN d.band = 0 THEN -1 ELSE ({_lst(bands)})[d.band] END"
    sql = f"""
    CREATE OR REPLACE TEMP TABLE rc_groups AS
    SELECT d.customer, sp.plan, d.model, d.provider, d.region, d.batch, true AS ok, s.seg,
           CASE WHEN s.seg IS NULL OR len(s.th) = 0 THEN 0
                ELSE len(list_filter(s.th, lambda t: t <= {lower})) END AS bucket,
           NULL::VARCHAR AS raw, NULL::TIMESTAMPTZ AS raw_ts,
           sum(d.n)::BIGINT AS n, sum(d.input)::HUGEINT AS input,
           sum(d.cache_read)::HUGEINT AS cache_read, sum(d.cache_write)::HUGEINT AS cache_write,
           sum(d.cache_write_1h)::HUGEINT AS cache_write_1h,
           sum(d.output)::HUGEINT AS output, sum(d.reasoning)::HUGEINT AS reasoning,
           min(d.first_at) AS first_at, max(d.last_at) AS last_at
    FROM {ALIAS}.days d
    LEFT JOIN rc_segments s ON s.model = d.model
         AND d.day >= COALESCE(s.t0, '-infinity'::TIMESTAMPTZ)
         AND d.day < COALESCE(s.t1, 'infinity'::TIMESTAMPTZ)
    LEFT JOIN rc_spans sp ON sp.customer = d.customer
         AND d.day >= COALESCE(sp.t0, '-infinity'::TIMESTAMPTZ)
         AND d.day < COALESCE(sp.t1, 'infinity'::TIMESTAMPTZ)
    WHERE {clean}
    GROUP BY ALL
    HAVING sum(d.n) <> 0
    UNION ALL
    SELECT d.customer, sp.plan, NULL, NULL, NULL, false, false, NULL, 0, d.properties, d.ts,
           1, NULL, NULL, NULL, NULL, NULL, NULL, d.ts, d.ts
    FROM {ALIAS}.doubt d
    LEFT JOIN rc_spans sp ON sp.customer = d.customer
         AND d.ts >= COALESCE(sp.t0, '-infinity'::TIMESTAMPTZ)
         AND d.ts < COALESCE(sp.t1, 'infinity'::TIMESTAMPTZ)
    WHERE d.ts >= $clean_start AND d.ts < $clean_end
      AND date_trunc('day', d.ts) NOT IN (SELECT day FROM rc_dirty_days)
      AND (d.customer, date_trunc('day', d.ts)) NOT IN
          (SELECT customer, day FROM rc_dirty_cdays) {only}
    UNION ALL
    SELECT * FROM ({_grouped_sql(events_source(events, voids, customers=customers,
                                               extra=rest))})
    """
    con.execute(sql, {"start": window.start, "end": window.end, "clean_start": clean_start,
                      "clean_end": clean_end})


def attach(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """Attach the rollup file to ``con`` (``False`` when another process holds it)."""
    try:
        con.execute(f"ATTACH IF NOT EXISTS {_q(str(path))} AS {ALIAS} (READ_WRITE)")
    except duckdb.Error:
        return False
    try:
        con.execute(SCHEMA)
    except duckdb.Error:
        detach(con)
        return False
    return True


def detach(con: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error):
        con.execute(f"DETACH {ALIAS}")


def lock() -> threading.Lock:
    """One rollup user at a time per process (the attachment is shared by cursors)."""
    return _LOCK
