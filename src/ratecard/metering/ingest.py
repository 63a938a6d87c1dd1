"""File ingest: JSONL, CSV and Parquet into the usage store, batch by batch.

:func:`ingest_sources` reads each source in batches of lines (Arrow tables of
``line`` and ``raw`` JSON text), hands every batch to the store's
``append_arrow``/``append_lines`` (which validates, deduplicates and commits it),
and reports accepted, duplicate and rejected events, writing every rejection (line
number, event id, reason, the line itself) to a rejects file. It takes the catalog
as a parameter: where the catalog comes from is the caller's business.

Formats:

* **JSONL** (``.jsonl``, ``.ndjson``, ``.json``, or ``-`` for standard input): one event
  object per line; blank lines are skipped; line numbers are physical lines.
* **CSV** (``.csv``): a header row with ``event_id``, ``type``, ``customer``, optionally
  ``timestamp`` and ``properties`` (a JSON object); every other column is a property
  (an empty cell is an absent property). Line numbers count the header as line 1.
* **Parquet** (``.parquet``): the same columns; ``timestamp`` may be a timestamp
  column; ``properties`` may be a JSON string or a struct. Line numbers are row
  numbers from 1.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecard.catalog.schema import Catalog
from ratecard.errors import InvalidInput, NotFound
from ratecard.metering.events import EventRules, PropertyChecks
from ratecard.store.usage import AppendResult, Rejection, UsageStore

DEFAULT_BATCH_BYTES = 48 * 1024 * 1024
FORMATS = ("jsonl", "csv", "parquet")
STANDARD = ("event_id", "type", "customer", "timestamp", "properties")


@dataclass
class Batch:
    """One batch of input lines and how far into the source it reaches."""

    table: pa.Table  # line: int64, raw: string
    done_bytes: int
    last_line: int
    bad: list[Rejection] = field(default_factory=list)


@dataclass
class Progress:
    source: str
    done_bytes: int
    total_bytes: int | None
    lines: int
    result: AppendResult


@dataclass
class IngestReport:
    sources: list[str] = field(default_factory=list)
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    first_rejections: list[Rejection] = field(default_factory=list)
    rejects_file: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "lines": self.lines,
            "sources": self.sources,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.lines / self.seconds) if self.seconds else None,
            "first_rejections": [r.to_json() for r in self.first_rejections],
            "rejects_file": self.rejects_file,
            "warnings": self.warnings,
        }


def detect_format(source: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise InvalidInput(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt
    if source == "-":
        return "jsonl"
    suffix = Path(source).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InvalidInput(
        f"{source}: cannot tell the format from the extension; use .jsonl, .csv or .parquet, "
        "or pass --format"
    )


# --------------------------------------------------------------------------- JSONL


def suspect_lines(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Lines that may hold a number a binary JSON reader would not keep exactly.

    The same test as the store's SQL (``[0-9.]{17}|[eE]-[0-9]{3}``), vectorised over
    the whole chunk with a few boolean passes: a run of 17 digits and points, or an
    exponent below -99.
    """
    n = len(offsets) - 1
    out = np.zeros(n, dtype=bool)
    digit = (buf >= 48) & (buf <= 57)
    run = digit | (buf == 46)
    # run[i] & ... & run[i + 16], by doubling: runs of 2, 4, 8, 16, then 17
    for shift in (1, 2, 4, 8, 1):
        if len(run) <= shift:
            run = run[:0]
            break
        run = run[:-shift] & run[shift:]
    hits = [np.flatnonzero(run)] if run.any() else []
    if len(buf) > 4:
        e = ((buf[:-4] == 101) | (buf[:-4] == 69)) & (buf[1:-3] == 45)
        e &= digit[2:-2] & digit[3:-1] & digit[4:]
        if e.any():
            hits.append(np.flatnonzero(e))
    if hits:
        pos = np.concatenate(hits)
        out[np.searchsorted(offsets, pos, side="right") - 1] = True
    return out


def _split_lines(chunk: bytes | memoryview, first_line: int) -> tuple[pa.Table, list[Rejection]]:
    table, bad, _ = _split_lines_n(chunk, first_line)
    return table, bad


def _split_lines_n(chunk: bytes | memoryview,
                   first_line: int) -> tuple[pa.Table, list[Rejection], int]:
    """The lines of ``chunk`` (which ends with a newline) numbered from ``first_line``,
    and how many lines it holds.

    Zero-copy: the Arrow string array points into ``chunk``; each line keeps its
    newline (JSON ignores it). Blank lines are dropped.
    """
    buf = np.frombuffer(chunk, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    n = len(nl)
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = nl + 1
    raw = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chunk))
    try:
        raw.validate(full=True)
    except pa.ArrowInvalid:
        table, bad = _split_lines_slow(bytes(chunk), first_line)
        return table, bad, n
    lengths = np.diff(offsets)
    keep = lengths > 2
    two = np.flatnonzero(lengths == 2)
    if len(two):
        keep[two] = buf[offsets[two]] != 13  # "\r\n" is blank
    table = pa.table({
        "line": pa.array(np.arange(first_line, first_line + n, dtype=np.int64)),
        "raw": raw,
        "suspect": pa.array(suspect_lines(buf, offsets)),
    })
    if not keep.all():
        table = table.filter(pa.array(keep))
    return table, [], n


def _split_lines_slow(chunk: bytes, first_line: int) -> tuple[pa.Table, list[Rejection]]:
    """Not valid UTF-8 somewhere: split in Python and reject the undecodable lines."""
    bad: list[Rejection] = []
    lines: list[int] = []
    texts: list[str] = []
    pieces = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        pieces.pop()
    for i, piece in enumerate(pieces):
        num = first_line + i
        try:
            text = piece.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            bad.append(Rejection(num, "not valid UTF-8 text; save the file as UTF-8"))
            continue
        if text.strip():
            lines.append(num)
            texts.append(text)
    return pa.table({"line": pa.array(lines, pa.int64()), "raw": pa.array(texts, pa.string())}), bad


def read_jsonl(stream: IO[bytes], *, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[Batch]:
    line = 1
    done = 0
    rest = b""
    first = True
    while True:
        chunk = stream.read(batch_bytes)
        if first and chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
            done += 3
        first = False
        if not chunk:
            if rest:
                table, bad = _split_lines(rest + b"\n", line)
                done += len(rest)
                yield Batch(table, done, line, bad)
            return
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        body = memoryview(data)[: cut + 1]
        rest = data[cut + 1:]
        table, bad, n = _split_lines_n(body, line)
        done += len(body)
        line += n
        yield Batch(table, done, line - 1, bad)


# --------------------------------------------------------------------------- CSV / Parquet


def _json_rows(table: pa.Table, first_line: int, *, csv: bool) -> pa.Table:
    """Turn a table of event columns into ``line``/``raw`` JSON text via DuckDB."""
    import duckdb

    names = table.column_names
    missing = [c for c in ("event_id", "type", "customer") if c not in names]
    if missing:
        raise InvalidInput(
            f"the file has no column {', '.join(missing)}; columns must include event_id, "
            "type and customer (and optionally timestamp, properties and property columns)"
        )
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("rc_rows", table)

        def ident(c: str) -> str:
            return '"' + c.replace('"', '""') + '"'

        extra = [c for c in names if c not in STANDARD]
        ts_expr = "NULL"
        if "timestamp" in names:
            t = table.schema.field("timestamp").type
            if pa.types.is_timestamp(t) or pa.types.is_date(t):
                if pa.types.is_timestamp(t) and t.tz is None:
                    raise InvalidInput(
                        "the timestamp column has no timezone; store it as UTC-aware "
                        "timestamps or as RFC 3339 text"
                    )
                ts_expr = "strftime(\"timestamp\"::TIMESTAMPTZ, '%Y-%m-%dT%H:%M:%S.%fZ')"
            else:
                ts_expr = "NULLIF(\"timestamp\"::VARCHAR, '')" if csv else "\"timestamp\"::VARCHAR"
        props = "'{}'"
        if "properties" in names:
            t = table.schema.field("properties").type
            if pa.types.is_struct(t) or pa.types.is_map(t):
                props = "coalesce(to_json(properties)::VARCHAR, '{}')"
            else:
                props = ("CASE WHEN properties IS NULL OR trim(properties::VARCHAR) = '' "
                         "THEN '{}' WHEN json_valid(properties::VARCHAR) "
                         "THEN properties::VARCHAR END")
        def cell(c: str) -> str:
            return f"NULLIF({ident(c)}, '')" if csv else ident(c)

        def lit(c: str) -> str:
            return "'" + c.replace("'", "''") + "'"

        parts = ", ".join(f"{lit(c)}, {cell(c)}" for c in extra)
        obj = f"json_object({parts})" if extra else "'{}'::JSON"
        bad_props = "to_json(properties::VARCHAR)" if "properties" in names else "'{}'::JSON"
        props_json = (f"CASE WHEN ({props}) IS NULL THEN {bad_props} ELSE "
                      f"json_merge_patch(({props})::JSON, {obj}) END")
        ident_cols = ", ".join(f"'{c}', {cell(c)}" for c in ("event_id", "type", "customer"))
        sql = (f"SELECT (row_number() OVER () + {first_line - 1})::BIGINT AS line, "
               f"json_object({ident_cols}, 'timestamp', {ts_expr}, 'properties', "
               f"{props_json})::VARCHAR AS raw FROM rc_rows")
        out = con.sql(sql).to_arrow_table()
        return out.cast(pa.schema([("line", pa.int64()), ("raw", pa.string())]))
    finally:
        con.close()


def read_csv(path: str | IO[bytes], *, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[Batch]:
    import pyarrow.csv as pcsv

    try:
        header_reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16))
        names = header_reader.schema.names
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInput(f"cannot read the CSV file: {e}") from None
    if hasattr(path, "seek"):
        path.seek(0)  # type: ignore[union-attr]
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=min(batch_bytes, 1 << 26)),
        convert_options=pcsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False),
    )
    line = 2
    done = 0
    for rb in reader:
        table = pa.Table.from_batches([rb])
        out = _json_rows(table, line, csv=True)
        line += rb.num_rows
        done += rb.nbytes
        yield Batch(out, done, line - 1)


def read_parquet(path: str | IO[bytes], *, batch_rows: int = 250_000) -> Iterator[Batch]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInput(f"cannot read the Parquet file: {e}") from None
    line = 1
    done = 0
    total = pf.metadata.num_rows or 1
    size = pf.metadata.serialized_size
    for rb in pf.iter_batches(batch_size=batch_rows):
        table = pa.Table.from_batches([rb])
        out = _json_rows(table, line, csv=False)
        line += rb.num_rows
        done = int(line / total * max(size, 1))
        yield Batch(out, done, line - 1)


# --------------------------------------------------------------------------- the service


def ingest_sources(
    store: UsageStore,
    sources: Sequence[str],
    *,
    catalog: Catalog | None,
    rules: EventRules | None = None,
    fmt: str | None = None,
    now: Callable[[], datetime] | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    rejects: IO[str] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_commit: Callable[[str, int, AppendResult], None] | None = None,
    keep_rejections: int = 20,
    stdin: IO[bytes] | None = None,
) -> IngestReport:
    """Ingest every source; each batch is committed before the next is read.

    ``now`` gives the time each batch is checked against (absent timestamps, the
    late-event window); ``on_commit(source, last_line, result)`` is called after
    each commit, when the batch's accepted events are durable.
    """
    from ratecard.clock import utc_now

    report = IngestReport()
    rules = rules or EventRules()
    checks = PropertyChecks(catalog) if catalog is not None else None
    if catalog is None:
        report.warnings.append(
            "no catalog is applied: events are stored, but nothing checks that meter "
            "properties have the right kind (apply one with `ratecard catalog apply FILE`)"
        )
    else:
        store.sync_meters(catalog.meters)
    clock = now or utc_now
    start = time.perf_counter()
    for source in sources:
        kind = detect_format(source, fmt)
        report.sources.append(source)
        total: int | None = None
        opened: IO[bytes] | None = None
        if source == "-":
            stream: IO[bytes] = stdin if stdin is not None else sys.stdin.buffer
            if kind == "parquet":
                stream = io.BytesIO(stream.read())
        else:
            p = Path(source)
            if not p.is_file():
                raise NotFound(f"{source}: no such file")
            total = p.stat().st_size
            opened = p.open("rb")
            stream = opened
        try:
            if kind == "jsonl":
                batches = read_jsonl(stream, batch_bytes=batch_bytes)
            elif kind == "csv":
                batches = read_csv(stream if source == "-" else source, batch_bytes=batch_bytes)
            else:
                batches = read_parquet(stream if source == "-" else source)
            lines = 0
            for batch in _prefetch(batches):
                raw_by_line: dict[int, str] | None = None
                result = AppendResult(rejected=list(batch.bad))
                if batch.table.num_rows:
                    result.add(_append(store, batch.table, checks, rules, clock(), source))
                result.rejected = [r if r.source else replace(r, source=source)
                                   for r in result.rejected]
                lines += batch.table.num_rows + len(batch.bad)
                report.lines += batch.table.num_rows + len(batch.bad)
                report.accepted += result.accepted
                report.duplicates += result.duplicates
                report.rejected += len(result.rejected)
                if result.rejected:
                    result.rejected.sort(key=lambda r: r.line)
                    room = keep_rejections - len(report.first_rejections)
                    if room > 0:
                        report.first_rejections.extend(result.rejected[:room])
                    if rejects is not None:
                        raw_by_line = _raws(batch.table, [r.line for r in result.rejected])
                        for r in result.rejected:
                            rec = r.to_json()
                            rec["source"] = source
                            if raw_by_line.get(r.line) is not None:
                                rec["raw"] = raw_by_line[r.line].rstrip("\r\n")
                            rejects.write(json.dumps(rec, ensure_ascii=False) + "\n")
                        rejects.flush()
                if on_commit is not None:
                    on_commit(source, batch.last_line, result)
                if on_progress is not None:
                    on_progress(Progress(source, batch.done_bytes, total, lines, result))
        finally:
            if opened is not None:
                opened.close()
    compact = getattr(store, "compact", None)
    if compact is not None and report.accepted:
        compact()
    report.seconds = time.perf_counter() - start
    return report


def _prefetch(batches: Iterator[Batch]) -> Iterator[Batch]:
    """Read and split the next batch in a thread while the store works on this one."""
    import queue
    import threading

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(("batch", b), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as e:  # handed to the consumer
            q.put(("error", e))

    t = threading.Thread(target=produce, name="ratecard-ingest-reader", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def _append(store: UsageStore, table: pa.Table, checks: PropertyChecks | None,
            rules: EventRules, now: datetime, source: str) -> AppendResult:
    append_arrow = getattr(store, "append_arrow", None)
    if append_arrow is not None:
        result: AppendResult = append_arrow(table, checks=checks, rules=rules, now=now,
                                            source=source, compact=False)
        return result
    from ratecard.store.usage import Line

    lines = [Line(n, t) for n, t in zip(table.column("line").to_pylist(),
                                        table.column("raw").to_pylist(), strict=True)]
    return store.append_lines(lines, checks=checks, rules=rules, now=now, source=source)


def _raws(table: pa.Table, wanted: list[int]) -> dict[int, str]:
    if not wanted:
        return {}
    mask = pc.is_in(table.column("line"), value_set=pa.array(wanted, pa.int64()))
    sub = table.filter(mask)
    return dict(zip(sub.column("line").to_pylist(), sub.column("raw").to_pylist(), strict=True))
