"""The ClickHouse usage store: the same :class:`~ratecard.store.usage.UsageStore` on ClickHouse.

Two engines, one schema and one SQL:

* a **ClickHouse server** over the native protocol (``clickhouse-driver``):
  ``clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?cluster=NAME&...]``;
* the **embedded engine** of the ``chdb`` package (a whole ClickHouse in the
  process): ``chdb:///absolute/folder[?database=NAME]``. One data folder per
  process (chdb hosts a single embedded server).

The schema uses only what ClickHouse 18.16 (the oldest release we test, Debian's
package) already had: typed columns, ``DateTime`` plus a microsecond column,
properties as parallel arrays (a ``Nested`` structure), ``Decimal(38, 9)`` for every
quantity, ``ReplacingMergeTree``, ``AggregatingMergeTree`` and materialized views.
No ``JSONExtract*``, ``DateTime64`` or ``Map``.

Tables (``_local`` suffixed, with a ``Distributed`` table of the plain name sharded by
``cityHash64(customer)``, when a cluster is named):

``events``
    One row per stored event: ``customer``, ``type``, ``event_id``, ``ts`` (seconds)
    and ``us`` (microseconds), ``props`` (the stored JSON text, returned by ``scan``
    and ``get``), and the properties as arrays ``p.key``, ``p.text`` (the text groups,
    filters and distinct counts compare), ``p.kind`` (1: an exact number, 2: not a
    number), ``p.alt`` (the plain decimal when it differs from the text) and
    ``p.num`` (the exact ``Decimal(38, 9)``, computed by the server). A
    ``ReplacingMergeTree(row_id)`` keyed on ``(customer, type, event_id)``: each stored
    row has a random 64-bit ``row_id``, and merges keep the copy with the largest.
``ids``
    ``event_id`` → customer, row, time, kept by a materialized view: ingest looks new
    ids up here (its primary key is the event id) to count duplicates.
``retractions``
    Copies of rows that must not count: a **void** (with its reason), or the extra
    copy of an event that two writers inserted at the same moment (a **duplicate**;
    the copy with the largest ``row_id`` stays, as merges keep). Every query leaves
    out the rows listed here, so a resend never counts twice, before or after merges.
``rf_<family>`` (+ ``rf_<family>_mv``)
    Rollups: for each family of count/sum meters (same event type, filter and
    group_by, as :func:`ratecard.store.duckdb_store.families_of` forms them), an
    ``AggregatingMergeTree`` of partial sums per customer, UTC hour and group, fed by a
    materialized view on ``events``. Rows retracted later are subtracted at query time
    from their copies in ``retractions``, so a rollup always equals the raw events.

Ingest: lines are validated by the same rules as DuckDB (the DuckDB store's vectorised
parser runs in memory), ids already stored are counted as duplicates, the new rows are
inserted (``insert_distributed_sync`` on a cluster, so an acknowledged row is on its
shard) and then the batch's ids are checked once more: a copy written by a concurrent
writer in between is retracted at once. Nothing is reported accepted before the
server acknowledged the insert; a server that is down or does not answer raises
:class:`~ratecard.errors.Unavailable` within the connect/receive timeouts.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from ratecard.catalog.schema import Meter
from ratecard.clock import Window, ensure_utc, iso, utc_now
from ratecard.errors import Conflict, EventInvalid, InvalidInput, NotFound, Unavailable
from ratecard.metering.events import EventRules, PropertyChecks, loads, properties_json
from ratecard.metering.model import Event, GroupKey, MeterUsage
from ratecard.metering.values import NotANumber, key_text, number, plain
from ratecard.store.duckdb_store import Family, MeterSpec, families_of, plan_segments
from ratecard.store.usage import AppendResult, Grain, Line, SeriesPoint, StoredEvent

logging.getLogger("clickhouse_driver").addHandler(logging.NullHandler())
logging.getLogger("clickhouse_driver").propagate = False

DEC = "Decimal(38, 9)"
DEC18 = "Decimal(38, 18)"
KIND_NUMBER = 1
KIND_OTHER = 2
DEFAULT_DATABASE = "ratecard"
MIN_VERSION = (18, 16)
"""The oldest ClickHouse release the store is tested on (Debian 12's package)."""

_OVERFLOW = Decimal("9E+28")
_OVERFLOW18 = Decimal("9E+19")


# --------------------------------------------------------------------------- SQL helpers


def lit(value: Any) -> str:
    """A ClickHouse literal for a string, integer or Decimal."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return f"toDecimal128({lit(plain(value))}, 9)"
    text = str(value)
    text = (text.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
            .replace("\n", "\\n").replace("\r", "\\r"))
    return f"'{text}'"


def lits(values: Iterable[Any]) -> str:
    return ", ".join(lit(v) for v in values)


def ident(name: str) -> str:
    if not name or not all(c.isalnum() or c == "_" for c in name):
        raise InvalidInput(f"{name!r} is not a valid ClickHouse database name; use letters, "
                           "digits and underscores")
    return name


def _secs(dt: datetime) -> tuple[int, int]:
    dt = ensure_utc(dt)
    total = int((dt - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    return total // 1_000_000, total % 1_000_000


_T_MAX = 2**51 - 1


def new_row_id(stamp_us: int) -> int:
    """A row id: the high bits hold ``2**51 - 1 - (microseconds since 1970)`` of the
    writer's clock (so :func:`stored_at` tells when), the low 12 bits are random, so
    copies of one event stored at once never tie.
    """
    return ((_T_MAX - stamp_us) << 12) | secrets.randbits(12)


def stored_at(row_id: int) -> datetime:
    """When the row was stored (the writer's clock, to the microsecond)."""
    us = _T_MAX - (int(row_id) >> 12)
    return _at(us // 1_000_000, us % 1_000_000)


def _at(sec: int, us: int = 0) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(sec), microseconds=int(us))


def time_cond(start: datetime, end: datetime, ts: str = "ts", us: str = "us") -> str:
    """``start <= (ts, us) < end`` with partition-prunable bounds on ``ts``."""
    s, su = _secs(start)
    e, eu = _secs(end)
    lo = f"{ts} >= {s}" if su == 0 else f"({ts} > {s} OR ({ts} = {s} AND {us} >= {su}))"
    hi = f"{ts} < {e}" if eu == 0 else f"({ts} < {e} OR ({ts} = {e} AND {us} < {eu}))"
    return f"{ts} >= {s} AND {ts} <= {e} AND {lo} AND {hi}"


def encode_properties(props: Mapping[str, Any]) -> tuple[list[str], list[str], list[int],
                                                          list[str]]:
    """The arrays a stored event carries: keys, texts, kinds and plain decimals.

    ``null`` values are left out (a meter treats them as missing). The text is
    :func:`ratecard.metering.values.key_text`; the kind says whether
    :func:`ratecard.metering.values.number` reads an exact number.
    """
    keys: list[str] = []
    texts: list[str] = []
    kinds: list[int] = []
    alts: list[str] = []
    for k, v in props.items():
        if v is None:
            continue
        text = key_text(v) or ""
        try:
            d = number(v)
        except NotANumber:
            d = None
        keys.append(str(k))
        texts.append(text)
        if d is None:
            kinds.append(KIND_OTHER)
            alts.append("")
        else:
            kinds.append(KIND_NUMBER)
            p = plain(d)
            alts.append("" if p == text else p)
    return keys, texts, kinds, alts


# --------------------------------------------------------------------------- engines


class _Engine:
    """How SQL reaches ClickHouse: a server over TCP or the embedded chdb."""

    name = "clickhouse"
    version: tuple[int, ...] = ()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def command(self, sql: str) -> None:
        self.rows(sql)

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]],
               types: Sequence[str]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _unavailable(where: str, e: BaseException) -> Unavailable:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return Unavailable(
        f"ClickHouse at {where} is unavailable ({text[:200]}); check that the server is up "
        "and reachable and that RATECARD_USAGE_URL names it; nothing was stored by this call"
    )


# server error codes that mean "try again later", not "your request is wrong"
_TRANSIENT = {159, 160, 164, 202, 209, 210, 241, 242, 252, 279, 306, 394, 425, 999}


class _Server(_Engine):
    """A ClickHouse server over the native protocol (clickhouse-driver)."""

    def __init__(self, host: str, port: int, database: str, user: str, password: str,
                 connect_timeout: float, timeout: float, settings: dict[str, Any]) -> None:
        from clickhouse_driver import Client

        self.where = f"{host}:{port}"
        self.host, self.port = host, port
        self._args = dict(host=host, port=port, user=user, password=password,
                          connect_timeout=connect_timeout, send_receive_timeout=timeout,
                          sync_request_timeout=min(timeout, 5.0))
        self._settings = settings
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._Client = Client
        self.database = database

    def client(self, database: str = "") -> Any:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._Client(database=database or "default", settings=dict(self._settings),
                             **self._args)
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def _call(self, fn: Any) -> Any:
        from clickhouse_driver import errors

        try:
            return fn(self.client())
        except errors.ServerException as e:
            if e.code in _TRANSIENT:
                raise _unavailable(self.where, e) from None
            raise _server_error(e.message or str(e)) from None
        except (errors.NetworkError, errors.SocketTimeoutError, OSError, EOFError,
                errors.UnexpectedPacketFromServerError) as e:
            with contextlib.suppress(Exception):
                self.client().disconnect()
            raise _unavailable(self.where, e) from None
        except errors.Error as e:
            raise _unavailable(self.where, e) from None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self._call(lambda c: c.execute(sql)))

    def iter_rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        rows = self.rows(sql)
        yield from rows

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]],
               types: Sequence[str]) -> None:
        cols = ", ".join(f"`{c}`" for c in columns)
        self._call(lambda c: c.execute(f"INSERT INTO {table} ({cols}) VALUES", list(data),
                                       columnar=True))

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                with contextlib.suppress(Exception):
                    c.disconnect()
            self._clients.clear()
        self._local = threading.local()


class _ServerQueryError(InvalidInput):
    code = "usage_store_error"


def _server_error(message: str) -> Exception:
    return _ServerQueryError(f"the ClickHouse usage store refused a query: "
                             f"{message.strip().splitlines()[0][:300]}")


_CHDB_LOCK = threading.RLock()
_CHDB: dict[str, Any] = {"path": None, "session": None, "users": 0}


class _Chdb(_Engine):
    """The embedded ClickHouse of the ``chdb`` package (one data folder per process)."""

    name = "chdb"

    def __init__(self, path: str) -> None:
        try:
            from chdb import session as chs
        except ImportError:  # pragma: no cover - depends on the installation
            raise Unavailable("chdb:// needs the chdb package: pip install chdb") from None
        self.where = f"chdb {path}"
        with _CHDB_LOCK:
            if _CHDB["session"] is not None and _CHDB["path"] != path:
                if _CHDB["users"] > 0:
                    raise Unavailable(
                        f"chdb already hosts {_CHDB['path']} in this process; the embedded "
                        f"engine serves one data folder per process, so {path} cannot be "
                        "opened beside it: close the other store first"
                    )
                with contextlib.suppress(Exception):
                    _CHDB["session"].close()
                _CHDB["session"] = None
            if _CHDB["session"] is None:
                Path(path).mkdir(parents=True, exist_ok=True)
                try:
                    _CHDB["session"] = chs.Session(path)
                except Exception as e:
                    raise _unavailable(self.where, e) from None
                _CHDB["path"] = path
            _CHDB["users"] += 1
        self._closed = False

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with _CHDB_LOCK:
            sess = _CHDB["session"]
            try:
                res = sess.query(sql, "ArrowTable")
            except Exception as e:
                raise _server_error(str(e)) from None
        if res is None or not hasattr(res, "num_columns") or res.num_columns == 0:
            return []
        cols = [res.column(i).to_pylist() for i in range(res.num_columns)]
        return list(zip(*cols, strict=True))

    def command(self, sql: str) -> None:
        with _CHDB_LOCK:
            try:
                _CHDB["session"].query(sql)
            except Exception as e:
                raise _server_error(str(e)) from None

    def iter_rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        yield from self.rows(sql)

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]],
               types: Sequence[str]) -> None:
        import pyarrow as pa

        arrays = []
        for values, t in zip(data, types, strict=True):
            arrays.append(pa.array(values, _arrow_type(t)))
        rc_rows = pa.Table.from_arrays(  # noqa: F841 - chdb reads it by name
            arrays, names=[f"c{i}" for i in range(len(columns))])
        cols = ", ".join(f"`{c}`" for c in columns)
        sel = ", ".join(f"c{i}" for i in range(len(columns)))
        self.command(f"INSERT INTO {table} ({cols}) SELECT {sel} FROM Python(rc_rows)")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _CHDB_LOCK:
            _CHDB["users"] = max(0, _CHDB["users"] - 1)


def _arrow_type(t: str) -> Any:
    import pyarrow as pa

    return {
        "String": pa.string(), "UInt64": pa.uint64(), "UInt32": pa.uint32(),
        "UInt8": pa.uint8(), "Array(String)": pa.list_(pa.string()),
        "Array(UInt8)": pa.list_(pa.uint8()),
    }[t]


# --------------------------------------------------------------------------- schema

_EVENT_COLS = """
  customer String,
  type String,
  event_id String,
  ts DateTime('UTC'),
  us UInt32,
  props String,
  `p.key` Array(String),
  `p.text` Array(String),
  `p.kind` Array(UInt8),
  `p.alt` Array(String),
  `p.num` Array(Decimal(38, 9)) DEFAULT arrayMap((t, k, a) -> toDecimal128(
      if(k = 1, if(a = '', t, a), '0'), 9), `p.text`, `p.kind`, `p.alt`),
  ingested DateTime('UTC') DEFAULT now(),
  row_id UInt64"""

INSERT_COLS = ("customer", "type", "event_id", "ts", "us", "props", "p.key", "p.text",
               "p.kind", "p.alt", "row_id")
INSERT_TYPES = ("String", "String", "String", "UInt32", "UInt32", "String", "Array(String)",
                "Array(String)", "Array(UInt8)", "Array(String)", "UInt64")
_ROW_COLS = ("customer, type, event_id, ts, us, props, `p.key`, `p.text`, `p.kind`, `p.alt`, "
             "`p.num`, ingested, row_id")


@dataclass(frozen=True)
class _Target:
    """Where tables live: database, local table suffix and the cluster (if any)."""

    database: str
    cluster: str | None

    def local(self, name: str) -> str:
        return f"{self.database}.{name}_local" if self.cluster else f"{self.database}.{name}"

    def table(self, name: str) -> str:
        return f"{self.database}.{name}"

    def local_name(self, name: str) -> str:
        return f"{name}_local" if self.cluster else name


def _ddl(t: _Target) -> list[str]:
    e, ids, r = t.local("events"), t.local("ids"), t.local("retractions")
    out = [
        f"CREATE TABLE IF NOT EXISTS {e} ({_EVENT_COLS}\n) ENGINE = ReplacingMergeTree(row_id) "
        f"PARTITION BY toYYYYMM(ts) ORDER BY (customer, type, event_id)",
        f"CREATE TABLE IF NOT EXISTS {ids} (event_id String, customer String, ts DateTime('UTC'),"
        f" row_id UInt64) ENGINE = MergeTree ORDER BY event_id",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {t.local('ids_mv')} TO {ids} AS "
        f"SELECT event_id, customer, ts, row_id FROM {e}",
        f"CREATE TABLE IF NOT EXISTS {r} ({_EVENT_COLS},\n  kind String,\n  reason String,\n"
        f"  retracted DateTime('UTC'),\n  retracted_us UInt32\n) ENGINE = "
        f"ReplacingMergeTree(retracted) ORDER BY (customer, event_id, row_id)",
        f"CREATE TABLE IF NOT EXISTS {t.local('families')} (name String, spec String, "
        f"since DateTime('UTC')) ENGINE = ReplacingMergeTree(since) ORDER BY name",
    ]
    return out


def _dist_ddl(t: _Target) -> list[str]:
    assert t.cluster
    out = []
    for name in ("events", "ids", "retractions"):
        key = "cityHash64(customer)"
        out.append(f"CREATE TABLE IF NOT EXISTS {t.table(name)} AS {t.local(name)} "
                   f"ENGINE = Distributed({t.cluster}, {t.database}, {name}_local, {key})")
    out.append(f"CREATE TABLE IF NOT EXISTS {t.table('families')} AS {t.local('families')} "
               f"ENGINE = Distributed({t.cluster}, {t.database}, families_local, rand())")
    return out


# --------------------------------------------------------------------------- meter SQL


def _idx(prop: str) -> str:
    return f"indexOf(`p.key`, {lit(prop)})"


def _text(prop: str) -> str:
    return f"`p.text`[{_idx(prop)}]"


def _filter_sql(fam: Family) -> list[str]:
    conds = [f"type = {lit(fam.event)}"]
    for prop, options in fam.filter:
        conds.append(f"({_idx(prop)} > 0 AND {_text(prop)} IN ({lits(options)}))")
    return conds


def _weight_sql(spec: MeterSpec) -> tuple[str, str]:
    """(weight expression, weight known) for a meter spec."""
    if not spec.weights:
        return "toDecimal128(1, 9)", "1"
    keys = [k for k, _ in spec.weights]
    ws = ", ".join(f"toDecimal128({lit(v)}, 9)" for _, v in spec.weights)
    wp = spec.weight_property or ""
    known = f"({_idx(wp)} > 0 AND has([{lits(keys)}], {_text(wp)}))"
    return f"arrayElement([{ws}], indexOf([{lits(keys)}], {_text(wp)}))", known


def _readings(fam: Family, j: int) -> dict[str, tuple[str, bool]]:
    """Meter ``j``'s per-event readings: name -> (SQL, is a column of the inner SELECT).

    w (weight), wk (weight known), v (number), pres (property present), isnum (an exact
    number), tx (its text). Constants are inlined where they are used: ClickHouse 18
    merges equal constant expressions of a subquery and loses all but one alias.
    """
    m = fam.meters[j]
    out: dict[str, tuple[str, bool]] = {}
    if m.weights:
        w, wk = _weight_sql(m)
        out["w"], out["wk"] = (w, True), (wk, True)
    else:
        out["w"], out["wk"] = ("toDecimal128(1, 9)", False), ("1", False)
    if m.property:
        i = _idx(m.property)
        out["v"] = (f"`p.num`[{i}]", True)
        out["pres"] = (f"{i} > 0", True)
        out["isnum"] = (f"`p.kind`[{i}] = {KIND_NUMBER}", True)
        out["tx"] = (f"`p.text`[{i}]", True)
    else:
        out["v"], out["pres"] = ("toDecimal128(0, 9)", False), ("0", False)
        out["isnum"], out["tx"] = ("0", False), ("''", False)
    return out


def _reading_cols(fam: Family, j: int) -> list[str]:
    return [f"{sql} AS {name}{j}" for name, (sql, col) in _readings(fam, j).items() if col]


def _refs(fam: Family, j: int, *, inline: bool = False) -> dict[str, str]:
    """How the outer query names meter ``j``'s readings: an alias, or the expression itself
    (``inline``: a materialized view on ClickHouse 18 cannot read a subquery's aliases)."""
    return {name: (f"{name}{j}" if col and not inline else f"({sql})")
            for name, (sql, col) in _readings(fam, j).items()}


def _ok_bad_val(fam: Family, j: int, *, inline: bool = False) -> tuple[str, str, str]:
    """(value readable, value unreadable, value) of meter ``j`` for count and sum."""
    m, r = fam.meters[j], _refs(fam, j, inline=inline)
    if m.aggregation == "count":
        return r["wk"], f"NOT {r['wk']}", r["w"]
    ok = f"{r['pres']} AND {r['isnum']} AND {r['wk']}"
    bad = f"({r['pres']} AND NOT {r['isnum']}) OR ({r['pres']} AND {r['isnum']} AND NOT {r['wk']})"
    val = f"{r['v']} * {r['w']}" if m.weights else r["v"]
    return ok, bad, val


def _partial_cols(fam: Family, j: int) -> list[str]:
    """Aggregates of meter ``j``: q (quantity), c (values read), b (unreadable), be, f, k."""
    m, r = fam.meters[j], _refs(fam, j)
    key = "(toUInt32(ts), us, event_id)"
    if m.aggregation in ("count", "sum"):
        ok, bad, val = _ok_bad_val(fam, j)
        q = f"sumIf({val}, {ok})"
        f = f"sumIf(toFloat64({val}), {ok})" if m.aggregation == "sum" else "toFloat64(0)"
    elif m.aggregation in ("max", "latest"):
        ok, bad = f"{r['pres']} AND {r['isnum']}", f"{r['pres']} AND NOT {r['isnum']}"
        q = (f"maxIf({r['v']}, {ok})" if m.aggregation == "max"
             else f"argMaxIf({r['v']}, {key}, {ok})")
        f = "toFloat64(0)"
    else:  # unique_count
        ok, bad = r["pres"], "0"
        q, f = f"uniqExactIf({r['tx']}, {ok})", "toFloat64(0)"
    cols = [f"{q} AS q", f"countIf({ok}) AS c", f"countIf({bad}) AS b",
            f"minIf(event_id, {bad}) AS be", f"{f} AS f"]
    if m.aggregation == "latest":
        cols.append(f"maxIf({key}, {ok}) AS k")
    return cols


def _event_sql(fam: Family, j: int, source: str, where: Sequence[str]) -> str:
    gcols = [f"{_text(g)} AS g{i}" for i, g in enumerate(fam.group_by)]
    cols = ["customer", "ts", "us", "event_id", *gcols, *_reading_cols(fam, j)]
    conds = [*_filter_sql(fam), *where]
    return f"SELECT {', '.join(cols)} FROM {source} WHERE {' AND '.join(conds)}"


# --------------------------------------------------------------------------- the store


def _norm(v: Any) -> Decimal:
    if v is None:
        return Decimal(0)
    d = v if isinstance(v, Decimal) else Decimal(v)
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def _raise_bad(meter: Meter, event_id: Any, count: Any) -> None:
    prop = meter.property if meter.aggregation != "count" else (
        meter.weights.property if meter.weights else meter.property)
    n = int(count)
    more = f" (and {n - 1} more)" if n > 1 else ""
    what = "has no weight" if meter.aggregation == "count" else "is not an exact number"
    raise EventInvalid(
        f"event {event_id!r}{more}: property {prop!r} {what} for this {meter.aggregation} meter; "
        "void the event (ratecard events void ID --reason ...) and resend it corrected"
    )


def _overflow(meter: Meter, total: float) -> None:
    limit = _OVERFLOW18 if meter.weights else _OVERFLOW
    if abs(Decimal(repr(total))) > limit:
        raise EventInvalid(
            f"the {meter.aggregation} of property {meter.property!r} reaches {total:.3g}, beyond "
            "what the usage store keeps exactly (10^29); split the meter or scale its unit"
        )


@dataclass
class _Acc:
    q: Any = None
    c: int = 0
    b: int = 0
    be: str | None = None
    k: Any = None
    f: float = 0.0


def _tuple(v: Any) -> tuple[Any, ...] | None:
    if v is None:
        return None
    if isinstance(v, dict):
        return tuple(v.values())
    return tuple(v)


def _merge(meter: Meter, accs: dict[tuple[Any, ...], _Acc], k: tuple[Any, ...], p: _Acc,
           sign: int) -> None:
    """Combine partial ``p`` into ``accs[k]`` (``sign`` -1 subtracts a retracted copy)."""
    a = accs.get(k)
    if a is None:
        a = accs[k] = _Acc(None, 0, 0, None, None, 0.0)
    agg = meter.aggregation
    a.c += sign * p.c
    a.f += sign * float(p.f or 0.0)
    if p.b:
        a.b += sign * p.b
        if sign < 0 or p.be is None:
            a.be = None  # the first unreadable event is no longer known: read raw rows
            a.b = a.b if a.b > 0 else 0
        elif a.be is not None or a.b == p.b:
            a.be = p.be if a.be is None else min(a.be, p.be)
    if agg in ("count", "sum"):
        a.q = (a.q or Decimal(0)) + sign * Decimal(p.q or 0)
    elif agg == "max":
        if p.c and (a.q is None or p.q > a.q):
            a.q = p.q
    elif agg == "latest":
        if p.c and p.k is not None and (a.k is None or p.k > a.k):
            a.q, a.k = p.q, p.k
    else:
        a.q = p.q


class ClickHouseUsageStore:
    """A :class:`ratecard.store.usage.UsageStore` on a ClickHouse server or chdb."""

    def __init__(self, engine: _Engine, url: str, target: _Target, *,
                 settle: float = 1.0, nodes: Sequence[_Engine] = ()) -> None:
        self.engine = engine
        self.url = url
        self.target = target
        self.settle = settle
        self.nodes = list(nodes) or [engine]
        self._lock = threading.RLock()
        self._families: dict[str, Family] = {}
        self._parser: Any = None
        self._setup()

    # ---- opening

    @classmethod
    def open(cls, url: str, *, read_only: bool = False) -> ClickHouseUsageStore:
        u = urlparse(url)
        qs = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if u.scheme == "chdb":
            # one process holds a chdb folder and serialises its appends: no races to settle
            settle = float(qs.get("settle", "0"))
            path = unquote(u.path or "")
            if u.netloc:
                raise InvalidInput(f"usage store URL {url!r}: write chdb:///absolute/folder")
            if not path.startswith("/"):
                raise InvalidInput(f"usage store URL {url!r}: use chdb:///absolute/folder")
            db = ident(qs.get("database", DEFAULT_DATABASE))
            engine: _Engine = _Chdb(path)
            try:
                return cls(engine, url, _Target(db, None), settle=settle)
            except BaseException:
                engine.close()
                raise
        if u.scheme != "clickhouse":
            raise InvalidInput(f"usage store URL {url!r}: use clickhouse://HOST:PORT/DB")
        settle = float(qs.get("settle", "1"))
        host = u.hostname or "127.0.0.1"
        try:
            port = u.port or 9000
        except ValueError:
            raise InvalidInput(f"usage store URL {url!r}: the port is not a number") from None
        db = ident((u.path or "/").strip("/") or DEFAULT_DATABASE)
        cluster = qs.get("cluster") or None
        if cluster is not None:
            ident(cluster)
        connect_timeout = float(qs.get("connect_timeout", "3"))
        timeout = float(qs.get("timeout", "60"))
        settings: dict[str, Any] = {"max_query_size": 16 * 1024 * 1024,
                                    "insert_distributed_sync": 1}
        user = unquote(u.username or "default")
        password = unquote(u.password or "")
        engine = _Server(host, port, db, user, password, connect_timeout, timeout, settings)
        nodes: list[_Engine] = []
        try:
            if cluster:
                found = engine.rows(
                    f"SELECT host_address, port FROM system.clusters WHERE cluster = "
                    f"{lit(cluster)} ORDER BY shard_num, replica_num")
                if not found:
                    raise InvalidInput(
                        f"usage store URL {url!r}: the server knows no cluster {cluster!r}; "
                        "declare it under remote_servers in the server config")
                for h, p in found:
                    nodes.append(_Server(h, int(p), db, user, password, connect_timeout,
                                         timeout, settings))
            return cls(engine, url, _Target(db, cluster), settle=settle, nodes=nodes)
        except BaseException:
            engine.close()
            for n in nodes:
                n.close()
            raise

    def _setup(self) -> None:
        version = self.engine.rows("SELECT version()")[0][0]
        parts = tuple(int(x) for x in str(version).split(".")[:2] if x.isdigit())
        if parts and parts < MIN_VERSION:
            raise Unavailable(f"ClickHouse {version} is older than the oldest supported "
                              f"release ({'.'.join(map(str, MIN_VERSION))})")
        self.server_version = str(version)
        t = self.target
        for node in self.nodes:
            node.command(f"CREATE DATABASE IF NOT EXISTS {t.database}")
            for stmt in _ddl(t):
                node.command(stmt)
        if t.cluster:
            for node in self.nodes:
                for stmt in _dist_ddl(t):
                    node.command(stmt)
        for name, spec in self.engine.rows(
                f"SELECT name, argMax(spec, since) FROM {t.table('families')} GROUP BY name"):
            if spec:
                self._families[name] = Family.from_spec(spec)

    def close(self) -> None:
        with self._lock:
            self.engine.close()
            for n in self.nodes:
                if n is not self.engine:
                    n.close()
            if self._parser is not None:
                self._parser.close()
                self._parser = None

    def __enter__(self) -> ClickHouseUsageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- names

    @property
    def _events(self) -> str:
        return self.target.table("events")

    @property
    def _retractions(self) -> str:
        return self.target.table("retractions")

    @property
    def _visible(self) -> str:
        """Rows that count: not retracted (the local table name, so shards check locally)."""
        r = f"{self.target.database}.{self.target.local_name('retractions')}"
        return f"(customer, event_id, row_id) NOT IN (SELECT customer, event_id, row_id FROM {r})"

    # ---- writing

    def append(self, events: Iterable[Event], *, source: str | None = None) -> AppendResult:
        """Store validated events (deduplicated on ``event_id``, the first copy wins)."""
        rows: list[tuple[str, str, str, datetime, str]] = []
        for ev in events:
            rows.append((ev.event_id, ev.type, ev.customer, ensure_utc(ev.timestamp),
                         properties_json(ev.properties)))
        with self._lock, self._writer():
            return self._store(rows, AppendResult())

    def append_lines(
        self,
        lines: Sequence[Line],
        *,
        checks: PropertyChecks | None = None,
        rules: EventRules | None = None,
        now: datetime | None = None,
        source: str | None = None,
    ) -> AppendResult:
        """Validate JSON lines with the shared rules and store the good ones."""
        if not lines:
            return AppendResult()
        with self._lock, self._writer():
            parser = self._parse_store()
            con = parser.con
            con.execute("DELETE FROM events")
            result = parser.append_lines(lines, checks=checks, rules=rules, now=now,
                                         source=source)
            got = con.execute("SELECT event_id, type, customer, ts, properties FROM events "
                              "ORDER BY rowid").fetchall()
            con.execute("DELETE FROM events")
            con.execute("DELETE FROM batches")
            base = AppendResult(accepted=0, duplicates=result.duplicates,
                                rejected=list(result.rejected))
            return self._store([(r[0], r[1], r[2], ensure_utc(r[3]), r[4]) for r in got], base)

    def _writer(self) -> Any:
        """chdb: one append at a time in the process (the server settles races instead)."""
        return _CHDB_LOCK if isinstance(self.engine, _Chdb) else contextlib.nullcontext()

    def _parse_store(self) -> Any:
        if self._parser is None:
            from ratecard.store.duckdb_store import DuckDBUsageStore

            self._parser = DuckDBUsageStore.open("duckdb://:memory:")
        return self._parser

    def _store(self, rows: list[tuple[str, str, str, datetime, str]],
               result: AppendResult) -> AppendResult:
        """Insert the rows whose id is new (first copy in the batch wins)."""
        first: dict[str, tuple[str, str, str, datetime, str]] = {}
        for r in rows:
            if r[0] in first:
                result.duplicates += 1
            else:
                first[r[0]] = r
        if not first:
            return result
        # the stamp orders this writer's copies before any it has not seen yet (below)
        sec_us = _secs(utc_now())
        stamp = sec_us[0] * 1_000_000 + sec_us[1]
        seen, doubled = self._existing(list(first))
        if doubled:
            # a writer stopped between its insert and its check: settle those ids now
            self._settle_races(doubled)
        new = [r for eid, r in first.items() if eid not in seen]
        result.duplicates += len(first) - len(new)
        stored: list[str] = []
        if new:
            row_ids = [new_row_id(stamp) for _ in new]
            data: list[list[Any]] = [[] for _ in INSERT_COLS]
            for r, rid in zip(new, row_ids, strict=True):
                eid, typ, cust, ts, props = r
                sec, us = _secs(ts)
                keys, texts, kinds, alts = encode_properties(loads(props))
                for col, v in zip(data, (cust, typ, eid, sec, us, props, keys, texts, kinds,
                                         alts, rid), strict=True):
                    col.append(v)
            self.engine.insert(self._events, INSERT_COLS, data, INSERT_TYPES)
            # wait until any writer that stamped before us has stored its copies (they
            # take less than `settle` seconds): then every writer sees the same first copy
            wait = stamp / 1e6 + self.settle - time.time()
            if wait > 0:
                time.sleep(wait)
            mine = {(r[2], r[0], rid): r[0] for r, rid in zip(new, row_ids, strict=True)}
            lost = self._settle_races([r[0] for r in new], mine=set(mine))
            # a concurrent writer's earlier copy won: ours is a duplicate, not accepted
            stored = [eid for key, eid in mine.items() if key not in lost]
            result.duplicates += len(new) - len(stored)
        result.accepted += len(stored)
        # the ids this append stored (ingest hooks count exactly these)
        result.stored_ids = getattr(result, "stored_ids", []) + stored  # type: ignore[attr-defined]
        return result

    def _existing(self, ids: Sequence[str]) -> tuple[set[str], list[str]]:
        """The ids already stored, and those stored more than once."""
        out: set[str] = set()
        doubled: list[str] = []
        for off in range(0, len(ids), 20_000):
            chunk = ids[off:off + 20_000]
            for eid, n in self.engine.rows(
                    f"SELECT event_id, count() FROM {self.target.table('ids')} "
                    f"WHERE event_id IN ({lits(chunk)}) GROUP BY event_id"):
                out.add(eid)
                if int(n) > 1:
                    doubled.append(eid)
        return out, doubled

    def repair(self) -> int:
        """Retract every extra copy of an event id (a sweep over the id index).

        Ingest settles concurrent copies itself; this catches the copies of a writer
        that stopped between its insert and its check. Returns the ids settled.
        """
        with self._lock:
            ids = [r[0] for r in self.engine.rows(
                f"SELECT event_id FROM {self.target.table('ids')} GROUP BY event_id "
                f"HAVING count() > 1")]
            if ids:
                self._settle_races(ids)
            return len(ids)

    def _settle_races(self, ids: Sequence[str], *, mine: set[tuple[str, str, int]] | None = None,
                      ) -> set[tuple[str, str, int]]:
        """Retract the extra copies concurrent writers stored for these ids.

        The copy stamped first counts (the largest ``row_id``, which merges of the
        ReplacingMergeTree keep too); the others are retracted, and their writers answer
        "duplicate". A writer checks ``settle`` seconds after its stamp, when every copy
        stamped before its own is stored: so each writer sees the same first copy, and
        exactly one answers "accepted" (given clocks within that margin).

        Returns the rows of ``mine`` that lost.
        """
        copies: dict[str, list[tuple[str, str, int]]] = {}
        for off in range(0, len(ids), 20_000):
            chunk = ids[off:off + 20_000]
            for eid, cust, rid in self.engine.rows(
                    f"SELECT event_id, customer, row_id FROM {self.target.table('ids')} "
                    f"WHERE event_id IN ({lits(chunk)})"):
                copies.setdefault(eid, []).append((cust, eid, int(rid)))
        losers: list[tuple[str, str, int]] = []
        for cs in copies.values():
            if len(cs) < 2:
                continue
            keep = max(cs, key=lambda c: c[2])
            losers += [c for c in cs if c[2] != keep[2]]
        lost = {x for x in losers if mine is not None and x in mine}
        if losers:
            done = {(c, e, int(r)) for c, e, r in self.engine.rows(
                f"SELECT customer, event_id, row_id FROM {self._retractions} "
                f"WHERE kind = 'duplicate' "
                f"AND customer IN ({lits(sorted({c for c, _, _ in losers}))})")}
            losers = [x for x in losers if x not in done]
        if losers:
            self._retract(losers, "duplicate", "a concurrent writer stored this id as well",
                          utc_now())
        return lost

    def _retract(self, rows: Sequence[tuple[str, str, int]], kind: str, reason: str,
                 at: datetime) -> None:
        sec, us = _secs(at)
        conds = " OR ".join(f"(customer = {lit(c)} AND event_id = {lit(e)} AND row_id = {int(r)})"
                            for c, e, r in rows)
        self.engine.command(
            f"INSERT INTO {self._retractions} ({_ROW_COLS}, kind, reason, retracted, "
            f"retracted_us) SELECT {_ROW_COLS}, {lit(kind)}, {lit(reason)}, toDateTime({sec}, "
            f"'UTC'), {us} FROM {self._events} WHERE {conds}")

    # ---- voids

    def void(self, event_id: str, reason: str, *, at: datetime | None = None) -> StoredEvent:
        if not reason or not reason.strip():
            raise InvalidInput(
                "a void needs a reason (--reason \"...\"): it is kept with the event")
        at = ensure_utc(at or utc_now())
        with self._lock:
            got = self._get(event_id)
            if got is None:
                raise NotFound(f"no event {event_id!r} in the usage store")
            if got.voided:
                raise Conflict(
                    f"event {event_id!r} was already voided at {iso(got.voided_at)} "  # type: ignore[arg-type]
                    f"({got.void_reason})"
                )
            rows = self._copies(event_id)
            self._retract(rows, "void", reason.strip(), at)
            out = self._get(event_id)
            assert out is not None
            return out

    def _copies(self, event_id: str) -> list[tuple[str, str, int]]:
        """The visible rows of an event (normally one)."""
        found = self.engine.rows(
            f"SELECT customer, row_id FROM {self.target.table('ids')} "
            f"WHERE event_id = {lit(event_id)}")
        if not found:
            return []
        custs = sorted({c for c, _ in found})
        return [(c, event_id, int(r)) for c, r in self.engine.rows(
            f"SELECT customer, row_id FROM {self._events} WHERE customer IN ({lits(custs)}) "
            f"AND event_id = {lit(event_id)} AND {self._visible}")]

    # ---- reading

    def get(self, event_id: str) -> StoredEvent | None:
        with self._lock:
            return self._get(event_id)

    def _get(self, event_id: str) -> StoredEvent | None:
        """The event's stored row (the copy that counts) with its void, in one query."""
        eid = lit(event_id)
        ids = self.target.table("ids")
        sel = f"customer GLOBAL IN (SELECT customer FROM {ids} WHERE event_id = {eid})"
        rows = self.engine.rows(
            f"SELECT event_id, type, customer, toUInt32(ts), us, props, toUInt32(ingested), "
            f"row_id, kind, reason, toUInt32(retracted), retracted_us FROM ("
            f"SELECT event_id, type, customer, ts, us, props, ingested, row_id "
            f"FROM {self._events} WHERE {sel} AND event_id = {eid}) AS e GLOBAL ANY LEFT JOIN ("
            f"SELECT customer, row_id, kind, reason, retracted, retracted_us "
            f"FROM {self._retractions} WHERE {sel} AND event_id = {eid} "
            f"ORDER BY retracted LIMIT 1 BY customer, event_id, row_id) AS r "
            f"USING (customer, row_id) "
            f"ORDER BY kind = 'duplicate', row_id DESC")
        if not rows:
            return None
        row = rows[0]
        ev = Event(row[0], row[1], row[2], _at(row[3], row[4]), _props(row[5]))
        if row[8] == "void":
            return StoredEvent(ev, stored_at(row[7]), _at(row[10], row[11]), row[9])
        return StoredEvent(ev, stored_at(row[7]))

    def _where(self, window: Window | None, customers: Sequence[str] | None,
               types: Sequence[str] | None) -> list[str]:
        where: list[str] = []
        if window is not None:
            where.append(time_cond(window.start, window.end))
        if customers is not None:
            where.append(f"customer IN ({lits(customers) or lit('')})" if customers else "0")
        if types is not None:
            where.append(f"type IN ({lits(types)})" if types else "0")
        return where

    def scan(
        self,
        *,
        window: Window | None = None,
        customers: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        include_voided: bool = False,
    ) -> Iterator[Event]:
        """Events in ``(timestamp, event_id)`` order (voided ones only when asked)."""
        where = self._where(window, customers, types)
        r = f"{self.target.database}.{self.target.local_name('retractions')}"
        if include_voided:
            where.append(f"(customer, event_id, row_id) NOT IN (SELECT customer, event_id, "
                         f"row_id FROM {r} "
                         f"WHERE kind = 'duplicate')")
        else:
            where.append(self._visible)
        sql = (f"SELECT event_id, type, customer, toUInt32(ts), us, props FROM {self._events} "
               f"WHERE {' AND '.join(where)} ORDER BY ts, us, event_id")
        with self._lock:
            rows = self.engine.rows(sql)
        for eid, typ, cust, sec, us, props in rows:
            yield Event(eid, typ, cust, _at(sec, us), _props(props))

    def customers(self, window: Window | None = None) -> list[str]:
        where = self._where(window, None, None) or ["1"]
        with self._lock:
            return [r[0] for r in self.engine.rows(
                f"SELECT DISTINCT customer FROM {self._events} WHERE {' AND '.join(where)} "
                f"ORDER BY customer")]

    def stats(self) -> dict[str, object]:
        with self._lock:
            n, first, last, custs = self.engine.rows(
                f"SELECT count(), min(toUInt32(ts)), max(toUInt32(ts)), uniqExact(customer) "
                f"FROM {self._events} WHERE (customer, event_id, row_id) NOT IN (SELECT customer, "
                f"event_id, row_id "
                f"FROM {self.target.database}.{self.target.local_name('retractions')} "
                f"WHERE kind = 'duplicate')")[0]
            voids = self.engine.rows(
                f"SELECT uniqExact(event_id) FROM {self._retractions} WHERE kind = 'void'")[0][0]
            return {"url": self.url, "engine": self.engine.name,
                    "server_version": self.server_version, "events": int(n),
                    "voided": int(voids), "customers": int(custs),
                    "first": _at(first) if n else None, "last": _at(last) if n else None,
                    "rollup_families": len(self._families)}

    # ---- families (rollups kept by materialized views)

    def sync_meters(self, meters: Mapping[str, Meter]) -> None:
        """Keep rollups for the count and sum meters of ``meters`` (built from raw events)."""
        wanted: dict[str, Family] = {}
        for fam in families_of(meters):
            specs = tuple(s for s in fam.meters if s.aggregation in ("count", "sum"))
            if specs:
                f = Family(fam.event, fam.filter, fam.group_by, specs)
                wanted[f.name] = f
        with self._lock:
            for name, fam in list(self._families.items()):
                if name not in wanted:
                    self._drop_family(fam)
            for name, fam in wanted.items():
                if name not in self._families:
                    self._build_family(fam)

    def families(self) -> list[Family]:
        return list(self._families.values())

    def _rollup_cols(self, fam: Family) -> list[str]:
        cols = ["customer String", "bucket DateTime('UTC')"]
        cols += [f"g{i} String" for i in range(len(fam.group_by))]
        cols.append("n AggregateFunction(count)")
        for j, m in enumerate(fam.meters):
            dec = DEC18 if m.weights and m.aggregation == "sum" else DEC
            cols += [f"q{j} AggregateFunction(sum, {dec})",
                     f"c{j} AggregateFunction(sum, UInt64)",
                     f"b{j} AggregateFunction(sum, UInt64)",
                     f"be{j} AggregateFunction(min, String)",
                     f"f{j} AggregateFunction(sum, Float64)"]
        return cols

    def _rollup_select(self, fam: Family, source: str, where: str) -> str:
        """The MV's SELECT: partial states per customer, hour and group (one flat SELECT)."""
        gcols = [f"{_text(g)} AS g{i}" for i, g in enumerate(fam.group_by)]
        aggs = ["countState() AS n"]
        for j in range(len(fam.meters)):
            ok, bad, val = _ok_bad_val(fam, j, inline=True)
            aggs += [f"sumStateIf({val}, {ok}) AS q{j}",
                     f"sumStateIf(toUInt64(1), {ok}) AS c{j}",
                     f"sumStateIf(toUInt64(1), {bad}) AS b{j}",
                     f"minStateIf(event_id, {bad}) AS be{j}",
                     f"sumStateIf(toFloat64({val}), {ok}) AS f{j}"]
        keys = ["customer", "bucket", *[f"g{i}" for i in range(len(fam.group_by))]]
        return (f"SELECT customer, toStartOfHour(ts) AS bucket, {', '.join([*gcols, *aggs])} "
                f"FROM {source} WHERE {' AND '.join([*_filter_sql(fam), where])} "
                f"GROUP BY {', '.join(keys)}")

    def _build_family(self, fam: Family) -> None:
        t = self.target
        rf, mv = f"rf_{fam.name}", f"rf_{fam.name}_mv"
        keys = ["customer", "bucket", *[f"g{i}" for i in range(len(fam.group_by))]]
        cut = 0
        if self.settle > 0:
            cut = int(self.engine.rows("SELECT toUInt32(now())")[0][0] + self.settle + 1)
        mv_where = f"toUInt32(ingested) >= {cut}" if cut else "1"
        for node in self.nodes:
            node.command(f"DROP TABLE IF EXISTS {t.local(mv)}")
            node.command(f"DROP TABLE IF EXISTS {t.local(rf)}")
            node.command(
                f"CREATE TABLE {t.local(rf)} ({', '.join(self._rollup_cols(fam))}) "
                f"ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(bucket) "
                f"ORDER BY ({', '.join(keys)})")
            node.command(
                f"CREATE MATERIALIZED VIEW {t.local(mv)} TO {t.local(rf)} AS "
                f"{self._rollup_select(fam, t.local('events'), mv_where)}")
            if t.cluster:
                node.command(f"DROP TABLE IF EXISTS {t.table(rf)}")
                node.command(f"CREATE TABLE {t.table(rf)} AS {t.local(rf)} ENGINE = "
                             f"Distributed({t.cluster}, {t.database}, {t.local_name(rf)})")
        if cut:
            # wait until every insert the view may have missed carries a time before the cut
            while int(self.engine.rows("SELECT toUInt32(now())")[0][0]) < cut + 1:
                time.sleep(0.2)
        back = f"toUInt32(ingested) < {cut}" if cut else "1"
        rl = t.local("retractions")
        src = (f"(SELECT {_ROW_COLS} FROM {t.local('events')} WHERE (customer, event_id, "
               f"row_id) NOT IN (SELECT customer, event_id, row_id FROM {rl}) UNION ALL "
               f"SELECT {_ROW_COLS} FROM (SELECT * FROM {rl} "
               f"LIMIT 1 BY customer, event_id, row_id))")
        for node in self.nodes:
            # every row ever counted: the visible ones and the retracted copies (which
            # queries subtract), whether or not a merge has removed them from events
            node.command(f"INSERT INTO {t.local(rf)} {self._rollup_select(fam, src, back)}")
        now_s = int(self.engine.rows("SELECT toUInt32(now())")[0][0])
        self.engine.command(
            f"INSERT INTO {t.table('families')} (name, spec, since) "
            f"SELECT {lit(fam.name)}, {lit(fam.spec)}, toDateTime({now_s}, 'UTC')")
        self._families[fam.name] = fam

    def _drop_family(self, fam: Family) -> None:
        t = self.target
        for node in self.nodes:
            for name in (f"rf_{fam.name}_mv", f"rf_{fam.name}"):
                node.command(f"DROP TABLE IF EXISTS {t.local(name)}")
                if t.cluster:
                    node.command(f"DROP TABLE IF EXISTS {t.table(name)}")
        self.engine.command(
            f"INSERT INTO {t.table('families')} (name, spec, since) "
            f"SELECT {lit(fam.name)}, '', now() + 1")
        self._families.pop(fam.name, None)

    def _find(self, meter: Meter, gb: Sequence[str]) -> tuple[Family, int, list[int]] | None:
        if meter.aggregation not in ("count", "sum"):
            return None
        try:
            spec = MeterSpec.of(meter)
        except InvalidInput:
            return None
        event, flt, _ = Family.key_of(meter)
        for fam in self._families.values():
            if fam.event != event or fam.filter != flt or spec not in fam.meters:
                continue
            if not set(gb) <= set(fam.group_by):
                continue
            return fam, fam.meters.index(spec), [fam.group_by.index(g) for g in gb]
        return None

    # ---- aggregation

    def aggregate(
        self,
        meter: Meter,
        *,
        window: Window,
        customers: Sequence[str] | None = None,
        group_by: Sequence[str] | None = None,
        key: str = "",
        values: bool = False,
    ) -> dict[str, MeterUsage]:
        """The meter's usage per customer over ``window`` (exactly as the in-memory meters)."""
        gb = tuple(meter.group_by if group_by is None else group_by)
        with self._lock:
            accs = self._partials(meter, window, customers, gb, grain=None)
            out = self._usages(meter, accs, gb, key, window, customers)
            if values and meter.aggregation == "sum":
                vals = self._values(meter, window, customers)
                out = {c: MeterUsage(u.meter, u.quantity, u.group_by, u.groups,
                                     tuple(vals.get(c, ())))
                       for c, u in out.items()}
        if customers is not None:
            for c in customers:
                if c not in out:
                    out[c] = MeterUsage(key, Decimal(0), gb, {},
                                        () if (values and meter.aggregation == "sum") else None)
        return out

    def usage(self, meter: Meter, *, customer: str, window: Window,
              group_by: Sequence[str] | None = None, key: str = "",
              values: bool = False) -> MeterUsage:
        """One customer's usage of one meter (the point query)."""
        return self.aggregate(meter, window=window, customers=[customer], group_by=group_by,
                              key=key, values=values)[customer]

    def _partials(self, meter: Meter, window: Window, customers: Sequence[str] | None,
                  gb: tuple[str, ...], *, grain: str | None,
                  raw_only: bool = False) -> dict[tuple[Any, ...], _Acc]:
        """Partial results keyed by (customer, bucket or None, group...)."""
        found = None if raw_only else self._find(meter, gb)
        accs: dict[tuple[Any, ...], _Acc] = {}
        cust = self._where(None, customers, None)
        if found is None:
            fam, j = Family.single(meter, gb), 0
            gsel = [f"g{i}" for i in range(len(gb))]
            self._raw_partials(fam, j, meter, [("raw", window.start, window.end)], cust, gsel,
                               grain, accs, sign=1)
            return accs
        fam, j, gmap = found
        gsel = [f"g{i}" for i in gmap]
        segments = plan_segments(window, use_days=False)
        raws = [s for s in segments if s[0] == "raw"]
        hours = [(s, e) for kind, s, e in segments if kind != "raw"]
        if raws:
            self._raw_partials(fam, j, meter, raws, cust, gsel, grain, accs, sign=1)
        if hours:
            cond = " OR ".join(
                f"(bucket >= {_secs(s)[0]} AND bucket < {_secs(e)[0]})" for s, e in hours)
            bk = self._bucket("bucket", grain)
            keys = ["customer", f"{bk} AS bk", *gsel]
            sql = (f"SELECT {', '.join(keys)}, sumMerge(q{j}), sumMerge(c{j}), sumMerge(b{j}), "
                   f"minMerge(be{j}), sumMerge(f{j}) FROM {self.target.table('rf_' + fam.name)} "
                   f"WHERE ({cond}){''.join(' AND ' + c for c in cust)} "
                   f"GROUP BY {', '.join(['customer', 'bk', *gsel])}")
            for row in self.engine.rows(sql):
                k = (row[0], row[1], *row[2:2 + len(gsel)])
                q, c, b, be, f = row[2 + len(gsel):]
                _merge(meter, accs, k, _Acc(q, int(c), int(b), be or None, None, f), 1)
            # the rollup counted every row ever stored: subtract the retracted copies
            rsrc = (f"(SELECT * FROM {self._retractions} "
                    f"LIMIT 1 BY customer, event_id, row_id)")
            hour_segments = [("raw", s, e) for s, e in hours]
            self._raw_partials(fam, j, meter, hour_segments, cust, gsel, grain, accs, sign=-1,
                               source=rsrc, visible=False)
        return accs

    @staticmethod
    def _bucket(col: str, grain: str | None) -> str:
        if grain is None:
            return "toUInt32(0)"
        fn = "toStartOfHour" if grain == "hour" else "toStartOfDay"
        return f"toUInt32({fn}({col}))"

    def _raw_partials(self, fam: Family, j: int, meter: Meter,
                      segments: Sequence[tuple[str, datetime, datetime]], cust: list[str],
                      gsel: list[str], grain: str | None, accs: dict[tuple[Any, ...], _Acc],
                      *, sign: int, source: str | None = None, visible: bool = True) -> None:
        cond = " OR ".join(f"({time_cond(s, e)})" for _, s, e in segments)
        where = [f"({cond})", *cust]
        if visible:
            where.append(self._visible)
        ev = _event_sql(fam, j, source or self._events, where)
        bk = self._bucket("ts", grain)
        keys = ["customer", f"{bk} AS bk", *gsel]
        parts = _partial_cols(fam, j)
        sql = (f"SELECT {', '.join([*keys, *parts])} FROM ({ev}) "
               f"GROUP BY {', '.join(['customer', 'bk', *gsel])}")
        latest = meter.aggregation == "latest"
        for row in self.engine.rows(sql):
            k = (row[0], row[1], *row[2:2 + len(gsel)])
            vals = row[2 + len(gsel):]
            q, c, b, be, f = vals[:5]
            kk = _tuple(vals[5]) if latest else None
            _merge(meter, accs, k, _Acc(q, int(c), int(b), be or None, kk, f), sign)

    def _check_bad(self, meter: Meter, accs: Iterable[_Acc], window: Window,
                   customers: Sequence[str] | None) -> None:
        """Raise for unreadable values, naming the event as the raw events show it."""
        bad = sorted((a for a in accs if a.b > 0), key=lambda a: (a.be is None, a.be or ""))
        if not bad:
            return
        if any(a.be is None for a in bad):
            # a rollup's first unreadable event may have been retracted since: read raw rows
            raw = self._partials(meter, window, customers, (), grain=None, raw_only=True)
            for _, a in sorted(raw.items(), key=lambda kv: str(kv[0][0])):
                if a.b > 0:
                    _raise_bad(meter, a.be, a.b)
            return
        _raise_bad(meter, bad[0].be, bad[0].b)

    def _usages(self, meter: Meter, accs: dict[tuple[Any, ...], _Acc], gb: tuple[str, ...],
                key: str, window: Window,
                customers: Sequence[str] | None) -> dict[str, MeterUsage]:
        self._check_bad(meter, accs.values(), window, customers)
        unique = meter.aggregation == "unique_count"
        totals: dict[tuple[Any, ...], _Acc] = {}
        groups: dict[str, dict[GroupKey, Decimal]] = {}
        for k, a in accs.items():
            if a.c <= 0:
                continue
            if meter.aggregation in ("count", "sum"):
                _overflow(meter, a.f)
            if gb:
                groups.setdefault(k[0], {})[tuple(k[2:])] = _norm(a.q)
            if not unique:
                _merge(meter, totals, (k[0],), a, 1)
        if unique:
            whole = accs if not gb else self._partials(meter, window, customers, (), grain=None)
            totals = {(k[0],): a for k, a in whole.items() if a.c > 0}
        out: dict[str, MeterUsage] = {}
        for (customer,), t in sorted(totals.items()):
            if t.c <= 0:
                continue
            if meter.aggregation in ("count", "sum"):
                _overflow(meter, t.f)
            out[customer] = MeterUsage(key, _norm(t.q), gb,
                                       dict(groups.get(customer, {})) if gb else {})
        return out

    def _values(self, meter: Meter, window: Window,
                customers: Sequence[str] | None) -> dict[str, list[Decimal]]:
        fam = Family.single(meter, ())
        where = [time_cond(window.start, window.end), *self._where(None, customers, None),
                 self._visible]
        ev = _event_sql(fam, 0, self._events, where)
        r = _refs(fam, 0)
        val = f"{r['v']} * {r['w']}" if meter.weights else r["v"]
        sql = (f"SELECT customer, toString({val}), {r['pres']} AND (NOT {r['isnum']} OR NOT "
               f"{r['wk']}), event_id FROM ({ev}) WHERE {r['pres']} "
               f"ORDER BY customer, ts, us, event_id")
        out: dict[str, list[Decimal]] = {}
        for customer, v, bad, eid in self.engine.rows(sql):
            if bad:
                _raise_bad(meter, eid, 1)
            out.setdefault(customer, []).append(_norm(Decimal(v)))
        return out

    def series(
        self,
        meter: Meter,
        *,
        window: Window,
        grain: Grain = "day",
        customers: Sequence[str] | None = None,
        group_by: Sequence[str] | None = None,
    ) -> list[SeriesPoint]:
        """Quantities per UTC ``hour`` or ``day`` bucket (buckets with events only)."""
        if grain not in ("hour", "day"):
            raise InvalidInput(f"grain {grain!r}: use hour or day")
        gb = tuple(meter.group_by if group_by is None else group_by)
        with self._lock:
            accs = self._partials(meter, window, customers, gb, grain=grain)
            self._check_bad(meter, accs.values(), window, customers)
            out: list[SeriesPoint] = []
            if meter.aggregation == "unique_count" and gb:
                # group rows only: the in-memory meters give no bucket totals for groups
                for k, a in accs.items():
                    if a.c > 0:
                        out.append(SeriesPoint(k[0], _at(k[1]), _norm(a.q), tuple(k[2:])))
            else:
                for k, a in accs.items():
                    if a.c > 0:
                        if meter.aggregation in ("count", "sum"):
                            _overflow(meter, a.f)
                        out.append(SeriesPoint(k[0], _at(k[1]), _norm(a.q),
                                               tuple(k[2:]) if gb else ()))
        out.sort(key=lambda s: (s.customer, s.bucket, s.group))
        return out

    # ---- maintenance

    def optimize(self) -> None:
        """Merge parts now (tests and benchmarks: queries are exact either way)."""
        t = self.target
        for node in self.nodes:
            names = [t.local_name("events"), t.local_name("retractions"), t.local_name("ids")]
            names += [t.local_name(f"rf_{f}") for f in self._families]
            for name in names:
                node.command(f"OPTIMIZE TABLE {t.database}.{name} FINAL")

    def drop(self) -> None:
        """Remove the whole database (tests)."""
        for node in self.nodes:
            node.command(f"DROP DATABASE IF EXISTS {self.target.database}")


def _props(text: str) -> dict[str, Any]:
    value = loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def open_clickhouse_store(url: str, *, read_only: bool = False) -> ClickHouseUsageStore:
    """Open a ``clickhouse://`` or ``chdb://`` usage store (see the module docstring)."""
    return ClickHouseUsageStore.open(url, read_only=read_only)


__all__ = ["MIN_VERSION", "ClickHouseUsageStore", "encode_properties", "open_clickhouse_store"]

