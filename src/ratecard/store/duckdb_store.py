"""The DuckDB usage store: raw events in one file, exact rollups, vectorised ingest.

Tables (one DuckDB file, ``usage.duckdb`` in the workspace):

``events``
    The raw events, immutable: ``event_id``, ``type``, ``customer``, ``ts``
    (TIMESTAMPTZ), ``properties`` (JSON text), ``ingested_at``, the ``batch`` that
    brought them, and ``h``, a 64-bit hash of ``event_id`` used to find duplicates
    fast (a hash match is always confirmed on the full id).
``voids``
    Retracted events (``event_id``, ``reason``, ``voided_at``); aggregates exclude them.
``batches``
    One row per committed append: source, time, accepted, duplicates, rejected.
``families`` and ``rf_<family>_<hour|day>``
    Rollups. Meters that read the same event type with the same filter and group_by
    form a *family*; each family keeps per customer, UTC hour (and day) and group the
    partial aggregates of its meters (sums, maxima, the newest value with its time and
    id, event counts, and a count of unreadable values). Every append adds the rollup
    rows of its new events in the same transaction; a void recomputes the buckets of
    its event from the raw events; so rollups never drift from the raw events.
    Compaction rewrites the months appends touched (``rollup_dirty``), merged and
    sorted by customer, which keeps a customer's month a few row groups away (pruned
    by their min/max) and costs in proportion to new data.

Aggregation splits a window into whole days and whole hours read from the rollups
and partial hours at the edges read from the raw events, and combines them. Meters
without a family (``unique_count``, or a ``group_by`` outside the family's) are
computed from the raw events with the same SQL expressions. Quantities are
DECIMAL(38, 9) (DECIMAL(38, 18) for weighted sums): exact, no binary floats.

Concurrency: DuckDB lets one process open the file for writing. Within a process
the store serialises its work with a lock. Several processes that write (many
ingest workers) must go through the API server, or a ClickHouse store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ratecard.catalog.schema import Meter
from ratecard.clock import Window, ensure_utc, iso, utc_now
from ratecard.errors import Conflict, EventInvalid, InvalidInput, NotFound, Unavailable
from ratecard.metering.events import (
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    EventRejected,
    EventRules,
    PropertyChecks,
    loads,
    parse_event,
    properties_json,
)
from ratecard.metering.model import Event, GroupKey, MeterUsage
from ratecard.metering.values import SCALE, key_text
from ratecard.store.usage import AppendResult, Grain, Line, Rejection, SeriesPoint, StoredEvent

SCHEMA_VERSION = "1"
HASH_PROBE = "ratecard-event-id-hash-probe"
COMPACT_MIN_ROWS = 200_000

# --------------------------------------------------------------------------- SQL pieces

_NUMBER_PARTS = r"^-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$"
_NUMBER_GRAMMAR = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"

MACROS = f"""
CREATE OR REPLACE TEMP MACRO rc_exact_digits(ds, nf, e) AS (
  CASE WHEN ds = '' THEN true
       WHEN e IS NULL THEN false
       ELSE (e - nf + (length(ds) - length(rtrim(ds, '0')))) >= -{SCALE}
        AND length(rtrim(ds, '0')) + (e - nf + (length(ds) - length(rtrim(ds, '0')))) <= 29
  END);
CREATE OR REPLACE TEMP MACRO rc_exact_parts(p) AS (
  rc_exact_digits(ltrim(p.i || p.f, '0'), length(p.f),
                  TRY_CAST(CASE WHEN p.e = '' THEN '0' ELSE p.e END AS HUGEINT)));
CREATE OR REPLACE TEMP MACRO rc_exact(t) AS (
  t IS NOT NULL AND regexp_full_match(t, '{_NUMBER_GRAMMAR}')
  AND rc_exact_parts(regexp_extract(t, '{_NUMBER_PARTS}', ['i', 'f', 'e'])));
CREATE OR REPLACE TEMP MACRO rc_fmt(s) AS (
  CASE WHEN contains(s, '.') THEN rtrim(rtrim(s, '0'), '.') ELSE s END);
CREATE OR REPLACE TEMP MACRO rc_plain(t) AS (
  CASE WHEN rc_exact(t) THEN rc_fmt(CAST(CAST(t AS DECIMAL(38, {SCALE})) AS VARCHAR)) ELSE t END);
CREATE OR REPLACE TEMP MACRO rc_key(jt, t) AS (
  CASE WHEN jt = 'VARCHAR' THEN t
       WHEN jt = 'DOUBLE' THEN rc_plain(t)
       WHEN jt IS NULL OR jt = 'NULL' THEN NULL
       ELSE t END);
CREATE OR REPLACE TEMP MACRO rc_num(jt, t) AS (
  CASE WHEN jt = 'UBIGINT' OR jt = 'BIGINT' THEN TRY_CAST(t AS DECIMAL(38, {SCALE}))
       WHEN (jt = 'VARCHAR' OR jt = 'DOUBLE') AND rc_exact(t) THEN CAST(t AS DECIMAL(38, {SCALE}))
       ELSE NULL END);
CREATE OR REPLACE TEMP MACRO rc_present(jt) AS (jt IS NOT NULL AND jt <> 'NULL');
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  h UBIGINT NOT NULL,
  event_id VARCHAR NOT NULL,
  type VARCHAR NOT NULL,
  customer VARCHAR NOT NULL,
  ts TIMESTAMPTZ NOT NULL,
  properties VARCHAR NOT NULL,
  ingested_at TIMESTAMPTZ NOT NULL,
  batch BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS voids (
  event_id VARCHAR PRIMARY KEY,
  reason VARCHAR NOT NULL,
  voided_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
  batch BIGINT PRIMARY KEY,
  source VARCHAR,
  committed_at TIMESTAMPTZ NOT NULL,
  accepted BIGINT NOT NULL,
  duplicates BIGINT NOT NULL,
  rejected BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_dirty (
  name VARCHAR NOT NULL,
  grain VARCHAR NOT NULL,
  month TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (name, grain, month)
);
CREATE TABLE IF NOT EXISTS families (
  name VARCHAR PRIMARY KEY,
  spec VARCHAR NOT NULL,
  built_at TIMESTAMPTZ NOT NULL,
  compacted_hour BIGINT NOT NULL,
  compacted_day BIGINT NOT NULL
);
"""

# The fast path of ingest hands a line to Python (parse_event) whenever it may hold a
# number a binary JSON reader would not carry exactly: 16 or more digits around a
# point, or an exponent below -99 (the reader underflows it to 0).
_RISKY = r"[0-9.]{17}|[eE]-[0-9]{3}"
_TS_FAST = (r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]"
            r":[0-5][0-9](\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])")
_NUM_FAST = r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,9})?"


def _kind_sql(x: str) -> str:
    """json_type's name for a value given as JSON text (NULL when absent or null)."""
    return (f"CASE left({x}, 1) WHEN '\"' THEN 'VARCHAR' WHEN '{{' THEN 'OBJECT' "
            f"WHEN '[' THEN 'ARRAY' WHEN 't' THEN 'BOOLEAN' WHEN 'f' THEN 'BOOLEAN' "
            f"WHEN 'n' THEN 'NULL' ELSE CASE WHEN {x} IS NULL THEN NULL "
            f"WHEN contains({x}, '.') OR contains({x}, 'e') OR contains({x}, 'E') "
            f"THEN 'DOUBLE' ELSE 'BIGINT' END END")


def _text_sql(x: str) -> str:
    """json_extract_string's text for a value given as JSON text."""
    return (f"CASE WHEN left({x}, 1) = '\"' THEN CASE WHEN contains({x}, '\\') "
            f"THEN json_extract_string({x}, '$') ELSE {x}[2:-2] END ELSE {x} END")


def q(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def json_path(prop: str) -> str:
    if '"' in prop or "\\" in prop:
        raise InvalidInput(
            f"property name {prop!r}: meters cannot read names with quotes or backslashes"
        )
    return f'$."{prop}"'


# --------------------------------------------------------------------------- families


@dataclass(frozen=True)
class MeterSpec:
    """What a meter computes, independent of its name."""

    aggregation: str
    property: str | None
    weight_property: str | None
    weights: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, meter: Meter) -> MeterSpec:
        w = meter.weights
        weights: tuple[tuple[str, str], ...] = ()
        if w is not None:
            for k, v in w.values.items():
                _, _, exp = v.as_tuple()
                if isinstance(exp, int) and exp < -SCALE and v != v.quantize(Decimal(1).scaleb(
                        -SCALE)):
                    raise InvalidInput(
                        f"weight {v} for {k!r} has more than {SCALE} decimals, which the usage "
                        "store cannot keep exactly; round it"
                    )
            weights = tuple(sorted((k, format(v, "f")) for k, v in w.values.items()))
        return cls(meter.aggregation, meter.property, w.property if w else None, weights)

    @property
    def weighted_sum(self) -> bool:
        return self.aggregation == "sum" and bool(self.weights)

    def to_json(self) -> dict[str, Any]:
        return {"aggregation": self.aggregation, "property": self.property,
                "weight_property": self.weight_property, "weights": list(self.weights)}


@dataclass(frozen=True)
class Family:
    """Meters sharing an event type, a filter and a group_by: one rollup."""

    event: str
    filter: tuple[tuple[str, tuple[str, ...]], ...]
    group_by: tuple[str, ...]
    meters: tuple[MeterSpec, ...]

    @staticmethod
    def key_of(meter: Meter, group_by: Sequence[str] | None = None) -> tuple[Any, ...]:
        flt = []
        for prop, wanted in sorted(meter.filter.items()):
            options = wanted if isinstance(wanted, list) else [wanted]
            flt.append((prop, tuple(sorted({key_text(o) or "" for o in options}))))
        gb = tuple(meter.group_by if group_by is None else group_by)
        return (meter.event, tuple(flt), gb)

    @classmethod
    def single(cls, meter: Meter, group_by: Sequence[str] | None = None) -> Family:
        event, flt, gb = cls.key_of(meter, group_by)
        return cls(event, flt, gb, (MeterSpec.of(meter),))

    def covered_by(self, checks: PropertyChecks) -> bool:
        """Whether ingest checks validated every value this family's meters read."""
        specs = set()
        for meters in checks.by_type.values():
            for _, m in meters:
                event, flt, _ = Family.key_of(m)
                if event == self.event and flt == self.filter:
                    try:
                        specs.add(MeterSpec.of(m))
                    except InvalidInput:
                        continue
        return all(spec in specs for spec in self.meters)

    @property
    def spec(self) -> str:
        return json.dumps({"event": self.event, "filter": [list(f) for f in self.filter],
                           "group_by": list(self.group_by),
                           "meters": [m.to_json() for m in self.meters]}, sort_keys=True)

    @property
    def name(self) -> str:
        return hashlib.sha1(self.spec.encode()).hexdigest()[:12]

    @classmethod
    def from_spec(cls, spec: str) -> Family:
        d = json.loads(spec)
        meters = tuple(MeterSpec(m["aggregation"], m["property"], m["weight_property"],
                                 tuple(tuple(w) for w in m["weights"])) for m in d["meters"])
        return cls(d["event"], tuple((f[0], tuple(f[1])) for f in d["filter"]),
                   tuple(d["group_by"]), meters)

    def table(self, grain: str) -> str:
        return f"rf_{self.name}_{grain}"

    # ---- SQL generation

    def props(self) -> list[str]:
        out: list[str] = []
        for p, _ in self.filter:
            out.append(p)
        out.extend(self.group_by)
        for m in self.meters:
            if m.property:
                out.append(m.property)
            if m.weight_property:
                out.append(m.weight_property)
        seen: list[str] = []
        for p in out:
            if p not in seen:
                seen.append(p)
        return seen

    def event_sql(self, source: str, where: str,
                  staged: Sequence[str] | None = None) -> str:
        """Per-event readings: ids, time, group keys, and each meter's value/weight.

        ``staged`` names the properties ``source`` already holds as scalar columns
        ``k<i>`` (the value's JSON kind, as json_type names it) and ``x<i>`` (its text,
        as json_extract_string gives it), ``i`` its position in ``staged`` (ingest
        stages them); otherwise the properties JSON is read here.
        """
        props = self.props()
        if staged is not None:
            pos = {p: list(staged).index(p) for p in props}
            kt = {p: (f"k{pos[p]}", f"x{pos[p]}") for p in props}
        else:
            kt = {p: (f"jt[{i + 1}]", f"tx[{i + 1}]") for i, p in enumerate(props)}

        def key(p: str) -> str:
            return f"rc_key({kt[p][0]}, {kt[p][1]})"

        cols = ["event_id", "customer", "ts"]
        for i, g in enumerate(self.group_by):
            cols.append(f"coalesce({key(g)}, '') AS g{i}")
        for j, m in enumerate(self.meters):
            if m.weights:
                cases = " ".join(f"WHEN {q(k)} THEN CAST({q(v)} AS DECIMAL(38, {SCALE}))"
                                 for k, v in m.weights)
                cols.append(f"CASE {key(m.weight_property or '')} {cases} END AS w{j}")
            else:
                cols.append(f"CAST(1 AS DECIMAL(38, {SCALE})) AS w{j}")
            if m.property:
                k_, t_ = kt[m.property]
                if m.aggregation == "unique_count":
                    cols.append(f"{key(m.property)} AS v{j}")
                    cols.append(f"false AS present{j}")
                else:
                    cols.append(f"rc_num({k_}, {t_}) AS v{j}")
                    cols.append(f"rc_present({k_}) AS present{j}")
            else:
                cols.append(f"CAST(NULL AS DECIMAL(38, {SCALE})) AS v{j}")
                cols.append(f"false AS present{j}")
        conds = ["true"]
        for p, options in self.filter:
            opts = ", ".join(q(o) for o in options)
            conds.append(f"coalesce({key(p)} IN ({opts}), false)")
        base = f"type = {q(self.event)}" + (f" AND {where}" if where else "")
        if staged is not None:
            inner = f"SELECT * FROM {source} WHERE {base}"
        elif props:
            paths = "[" + ", ".join(q(json_path(p)) for p in props) + "]"
            inner = (f"SELECT event_id, customer, ts, type, "
                     f"json_type(properties, {paths}) AS jt, "
                     f"json_extract_string(properties, {paths}) AS tx "
                     f"FROM {source} WHERE {base}")
        else:
            inner = (f"SELECT event_id, customer, ts, type, NULL::VARCHAR[] AS jt, "
                     f"NULL::VARCHAR[] AS tx FROM {source} WHERE {base}")
        return f"SELECT {', '.join(cols)} FROM ({inner}) WHERE {' AND '.join(conds)}"

    def partial_cols(self, *, clean: bool = False) -> list[str]:
        """Aggregates of per-event readings into partial rows (associative, see combine).

        ``clean`` events were validated against these very meters on ingest, so every
        present value is readable: the unreadable-value counters are 0 and cheaper
        aggregates do.
        """
        cols = ["count(*) AS n"]
        for j, m in enumerate(self.meters):
            dec = "DECIMAL(38, 18)" if m.weighted_sum else f"DECIMAL(38, {SCALE})"
            prod = f"v{j} * w{j}" if m.weights else f"v{j}"
            if clean:
                if m.aggregation == "count":
                    q_ = f"sum(w{j})" if m.weights else "count(*)"
                    cols += [f"CAST({q_} AS {dec}) AS q{j}", f"count(*) AS c{j}"]
                elif m.aggregation == "sum":
                    cols += [f"CAST(sum({prod}) AS {dec}) AS q{j}", f"count(v{j}) AS c{j}"]
                elif m.aggregation == "max":
                    cols += [f"max(v{j}) AS q{j}", f"count(v{j}) AS c{j}"]
                else:
                    ok = f"v{j} IS NOT NULL"
                    cols += [f"arg_max(v{j}, {{'t': ts, 'e': event_id}}) FILTER ({ok}) AS q{j}",
                             f"max({{'t': ts, 'e': event_id}}) FILTER ({ok}) AS k{j}",
                             f"count(v{j}) AS c{j}"]
                cols += [f"0::BIGINT AS b{j}", f"NULL::VARCHAR AS be{j}"]
                continue
            if m.aggregation == "count":
                ok = f"w{j} IS NOT NULL"
                bad = f"w{j} IS NULL"
                cols.append(f"CAST(sum(w{j}) FILTER ({ok}) AS {dec}) AS q{j}")
            else:
                if m.aggregation == "sum":
                    ok = f"v{j} IS NOT NULL AND w{j} IS NOT NULL"
                    bad = f"(present{j} AND v{j} IS NULL) OR (v{j} IS NOT NULL AND w{j} IS NULL)"
                    cols.append(f"CAST(sum({prod}) FILTER ({ok}) AS {dec}) AS q{j}")
                elif m.aggregation == "max":
                    ok = f"v{j} IS NOT NULL"
                    bad = f"present{j} AND v{j} IS NULL"
                    cols.append(f"max(v{j}) FILTER ({ok}) AS q{j}")
                else:  # latest
                    ok = f"v{j} IS NOT NULL"
                    bad = f"present{j} AND v{j} IS NULL"
                    cols.append(f"arg_max(v{j}, {{'t': ts, 'e': event_id}}) FILTER ({ok}) AS q{j}")
                    cols.append(f"max({{'t': ts, 'e': event_id}}) FILTER ({ok}) AS k{j}")
            cols.append(f"count(*) FILTER ({ok}) AS c{j}")
            cols.append(f"count(*) FILTER ({bad}) AS b{j}")
            cols.append(f"min(event_id) FILTER ({bad}) AS be{j}")
        return cols

    def combine_cols(self, js: Sequence[int] | None = None) -> list[str]:
        """Merge partial rows (of the meters ``js``) into one."""
        cols = ["sum(n)::BIGINT AS n"]
        for j in (range(len(self.meters)) if js is None else js):
            m = self.meters[j]
            dec = "DECIMAL(38, 18)" if m.weighted_sum else f"DECIMAL(38, {SCALE})"
            if m.aggregation in ("count", "sum"):
                cols.append(f"CAST(sum(q{j}) AS {dec}) AS q{j}")
            elif m.aggregation == "max":
                cols.append(f"max(q{j}) AS q{j}")
            else:
                cols.append(f"arg_max(q{j}, k{j}) FILTER (k{j} IS NOT NULL) AS q{j}")
                cols.append(f"max(k{j}) AS k{j}")
            cols.append(f"sum(c{j})::BIGINT AS c{j}")
            cols.append(f"sum(b{j})::BIGINT AS b{j}")
            cols.append(f"min(be{j}) AS be{j}")
        return cols

    def partial_names(self, js: Sequence[int] | None = None) -> list[str]:
        names = ["n"]
        for j in (range(len(self.meters)) if js is None else js):
            names.append(f"q{j}")
            if self.meters[j].aggregation == "latest":
                names.append(f"k{j}")
            names += [f"c{j}", f"b{j}", f"be{j}"]
        return names

    def rollup_sql(self, grain: str, source: str, where: str,
                   staged: Sequence[str] | None = None, clean: bool = False) -> str:
        """Rollup rows (customer, bucket, groups, partials) of the events in ``source``."""
        gcols = [f"g{i}" for i in range(len(self.group_by))]
        keys = ["customer", f"date_trunc('{grain}', ts) AS bucket", *gcols]
        group = ["customer", "bucket", *gcols]
        return (f"SELECT {', '.join(keys + self.partial_cols(clean=clean))} "
                f"FROM ({self.event_sql(source, where, staged)}) "
                f"GROUP BY {', '.join(group)}")

    def compact_sql(self, table: str, *, grain: str | None = None, order: bool = True) -> str:
        """Merge partial rows of ``table`` per key (re-bucketed to ``grain`` if given)."""
        gcols = [f"g{i}" for i in range(len(self.group_by))]
        bexpr = f"date_trunc('{grain}', bucket)" if grain else "bucket"
        sql = (f"SELECT {', '.join(['customer', f'{bexpr} AS bucket', *gcols])}, "
               f"{', '.join(self.combine_cols())} FROM {table} "
               f"GROUP BY {', '.join(['customer', bexpr, *gcols])}")
        if order:
            sql += f" ORDER BY {', '.join(['customer', 'bucket', *gcols])}"
        return sql


def families_of(meters: Mapping[str, Meter]) -> list[Family]:
    """The rollup families for a catalog's meters (unique counts are read from raw events)."""
    grouped: dict[tuple[Any, ...], list[MeterSpec]] = {}
    for _, meter in sorted(meters.items()):
        if meter.aggregation == "unique_count":
            continue
        spec = MeterSpec.of(meter)
        key = Family.key_of(meter)
        specs = grouped.setdefault(key, [])
        if spec not in specs:
            specs.append(spec)
    out = []
    for (event, flt, gb), specs in grouped.items():
        specs.sort(key=lambda s: json.dumps(s.to_json(), sort_keys=True))
        out.append(Family(event, flt, gb, tuple(specs)))
    return out


# --------------------------------------------------------------------------- windows


def _floor(dt: datetime, grain: str) -> datetime:
    dt = dt.astimezone(UTC)
    if grain == "hour":
        return dt.replace(minute=0, second=0, microsecond=0)
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil(dt: datetime, grain: str) -> datetime:
    f = _floor(dt, grain)
    if f == dt:
        return f
    return f + (timedelta(hours=1) if grain == "hour" else timedelta(days=1))


def plan_segments(window: Window, *, use_days: bool = True) -> list[tuple[str, datetime, datetime]]:
    """Split a window into raw edges, whole hours and whole days (UTC)."""
    s, e = window.start, window.end
    if s >= e:
        return []
    h0, h1 = _ceil(s, "hour"), _floor(e, "hour")
    if h0 >= h1:
        return [("raw", s, e)]
    out: list[tuple[str, datetime, datetime]] = []
    if s < h0:
        out.append(("raw", s, h0))
    d0, d1 = _ceil(h0, "day"), _floor(h1, "day")
    if use_days and d0 < d1:
        if h0 < d0:
            out.append(("hour", h0, d0))
        out.append(("day", d0, d1))
        if d1 < h1:
            out.append(("hour", d1, h1))
    else:
        out.append(("hour", h0, h1))
    if h1 < e:
        out.append(("raw", h1, e))
    return out


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


# --------------------------------------------------------------------------- the store


class DuckDBUsageStore:
    """A :class:`ratecard.store.usage.UsageStore` in one DuckDB file."""

    def __init__(self, con: duckdb.DuckDBPyConnection, url: str, read_only: bool) -> None:
        self.con = con
        self.url = url
        self.read_only = read_only
        self._lock = threading.RLock()
        self._families: dict[str, Family] = {}
        self._compacted: dict[str, int] = {}
        self._setup()

    # ---- opening

    @classmethod
    def open(cls, url: str, *, read_only: bool = False) -> DuckDBUsageStore:
        # as SQLAlchemy does: duckdb:///relative/path, duckdb:////absolute/path
        if url in ("duckdb://", "duckdb://:memory:", "duckdb:///:memory:"):
            path = ":memory:"
            read_only = False
        elif url.startswith("duckdb:///"):
            path = url[len("duckdb:///"):]
            if read_only and not Path(path).exists():
                raise NotFound(f"no usage store at {path}; run `ratecard init` first")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            raise InvalidInput(
                f"usage store URL {url!r}: write duckdb:///relative/path or "
                "duckdb:////absolute/path"
            )
        try:
            con = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise Unavailable(
                    f"the usage store {path} is open in another process; DuckDB allows one "
                    "writer: wait for it, or send events through the API server"
                ) from None
            raise Unavailable(f"cannot open the usage store {path}: {e}") from None
        return cls(con, url, read_only)

    def _setup(self) -> None:
        self._run("SET TimeZone = 'UTC'")
        if not self.read_only:
            self._run(SCHEMA)
            row = self._one("SELECT value FROM meta WHERE key = 'schema'")
            if row is None:
                self._run("INSERT INTO meta VALUES ('schema', ?)", [SCHEMA_VERSION])
            probe = str(self._scalar("SELECT hash(?)", [HASH_PROBE]))
            row = self._one("SELECT value FROM meta WHERE key = 'hash_probe'")
            if row is None:
                self._run("INSERT INTO meta VALUES ('hash_probe', ?)", [probe])
            elif row[0] != probe:
                # the engine's hash changed between versions: rehash every stored id
                self._run("BEGIN")
                self._run("UPDATE events SET h = hash(event_id)")
                self._run("UPDATE meta SET value = ? WHERE key = 'hash_probe'", [probe])
                self._run("COMMIT")
        self._run(MACROS)
        try:
            rows = self._run(
                "SELECT name, spec, compacted_hour, compacted_day FROM families")
        except duckdb.CatalogException:
            rows = []
        for name, spec, ch, cd in rows:
            fam = Family.from_spec(spec)
            self._families[name] = fam
            self._compacted[fam.table("hour")] = ch
            self._compacted[fam.table("day")] = cd

    def close(self) -> None:
        with self._lock, contextlib.suppress(duckdb.Error):
            self.con.close()

    def __enter__(self) -> DuckDBUsageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Execute one statement and drain its result (the connection is free afterwards)."""
        if _TRACE:
            return _traced(self.con, sql, params)
        rows = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
        return rows.fetchall()

    def _one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        rows = self._run(sql, params)
        return rows[0] if rows else None

    def _scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self._one(sql, params)
        return None if row is None else row[0]

    def _writable(self) -> None:
        if self.read_only:
            raise Unavailable("the usage store is open read-only")

    # ---- families

    def sync_meters(self, meters: Mapping[str, Meter]) -> None:
        """Keep rollups for exactly these meters: build new families from the raw events,
        drop families no meter reads any more."""
        self._writable()
        wanted = {f.name: f for f in families_of(meters)}
        with self._lock:
            for name, fam in list(self._families.items()):
                if name not in wanted:
                    self._drop_family(fam)
            for name, fam in wanted.items():
                if name not in self._families:
                    self._build_family(fam)

    def _drop_family(self, fam: Family) -> None:
        self._run("BEGIN")
        try:
            for grain in ("hour", "day"):
                self._run(f"DROP TABLE IF EXISTS {fam.table(grain)}")
                self._compacted.pop(fam.table(grain), None)
            self._run("DELETE FROM families WHERE name = ?", [fam.name])
            self._run("DELETE FROM rollup_dirty WHERE name = ?", [fam.name])
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise
        self._families.pop(fam.name, None)

    def _build_family(self, fam: Family) -> None:
        self._run("BEGIN")
        try:
            for grain in ("hour", "day"):
                t = fam.table(grain)
                self._run(f"DROP TABLE IF EXISTS {t}")
                src = f"({fam.rollup_sql(grain, 'events', _NOT_VOIDED)})"
                self._run(f"CREATE TABLE {t} AS {fam.compact_sql(src)}")
            counts = [self._scalar(f"SELECT count(*) FROM {fam.table(g)}")
                      for g in ("hour", "day")]
            self._run("INSERT INTO families VALUES (?, ?, ?, ?, ?)",
                        [fam.name, fam.spec, utc_now(), counts[0], counts[1]])
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise
        self._families[fam.name] = fam
        self._compacted[fam.table("hour")] = counts[0]
        self._compacted[fam.table("day")] = counts[1]

    def families(self) -> list[Family]:
        return list(self._families.values())

    def compact(self, *, hourly: bool = False) -> int:
        """Rewrite the rollup rows of every month appends touched: one row per key,
        sorted by customer (the hourly rollups too with ``hourly``).

        Appends only add rows (a bulk ingest leaves a partial row per batch and key);
        compaction merges them, month by month, so its cost follows the new data, not
        the history. Returns the number of months rewritten.
        """
        self._writable()
        done = 0
        with self._lock:
            for fam in list(self._families.values()):
                for grain in ("day", "hour") if hourly else ("day",):
                    done += self._compact_table(fam, grain, force=True)
        return done

    def _compact_table(self, fam: Family, grain: str, *, force: bool) -> int:
        """Rewrite the dirty months of one rollup table, merged and sorted by customer.

        Without ``force`` only the daily table is compacted, once the rows appended since
        its last compaction outnumber the rows it had then (so total work stays linear).
        """
        t = fam.table(grain)
        total = self._scalar(f"SELECT count(*) FROM {t}")
        base = self._compacted.get(t, 0)
        if not force and (grain != "day" or total - base < max(COMPACT_MIN_ROWS, base)):
            return 0
        months = [r[0] for r in self._run(
            "SELECT month FROM rollup_dirty WHERE name = ? AND grain = ? ORDER BY month",
            [fam.name, grain])]
        if not months:
            return 0
        keys = ", ".join(["customer", "bucket", *[f"g{i}" for i in range(len(fam.group_by))]])
        self._run("BEGIN")
        try:
            for month in months:
                nxt = _next_month(month)
                rows = f"(SELECT * FROM {t} WHERE bucket >= $1 AND bucket < $2)"
                self._run(f"CREATE OR REPLACE TEMP TABLE rc_month AS {fam.compact_sql(rows)}",
                          [month, nxt])
                self._run(f"DELETE FROM {t} WHERE bucket >= $1 AND bucket < $2", [month, nxt])
                self._run(f"INSERT INTO {t} SELECT * FROM rc_month ORDER BY {keys}")
            self._run("DROP TABLE IF EXISTS rc_month")
            self._run("DELETE FROM rollup_dirty WHERE name = ? AND grain = ?", [fam.name, grain])
            n = self._scalar(f"SELECT count(*) FROM {t}")
            self._run(f"UPDATE families SET compacted_{grain} = ? WHERE name = ?", [n, fam.name])
            self._run("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self._run("ROLLBACK")
            raise
        self._compacted[t] = n
        return len(months)

    def _find(self, meter: Meter, group_by: Sequence[str]) -> tuple[Family, int, list[int]] | None:
        if meter.aggregation == "unique_count":
            return None
        try:
            spec = MeterSpec.of(meter)
        except InvalidInput:
            return None
        event, flt, _ = Family.key_of(meter)
        for fam in self._families.values():
            if fam.event != event or fam.filter != flt or spec not in fam.meters:
                continue
            if not set(group_by) <= set(fam.group_by):
                continue
            return fam, fam.meters.index(spec), [fam.group_by.index(g) for g in group_by]
        return None

    # ---- writing

    def append(self, events: Iterable[Event], *, source: str | None = None) -> AppendResult:
        """Store validated events (deduplicated on ``event_id``) in one transaction."""
        self._writable()
        rows = [(i + 1, ev.event_id, ev.type, ev.customer, ensure_utc(ev.timestamp),
                 properties_json(ev.properties)) for i, ev in enumerate(events)]
        with self._lock:
            return self._commit_rows(rows, self._staged_props(None), False, [], source=source)

    def append_lines(
        self,
        lines: Sequence[Line],
        *,
        checks: PropertyChecks | None = None,
        rules: EventRules | None = None,
        now: datetime | None = None,
        source: str | None = None,
    ) -> AppendResult:
        """Validate and store JSON lines in one transaction (see the module docstring)."""
        if not lines:
            return AppendResult()
        table = pa.table({
            "line": pa.array([ln.number for ln in lines], pa.int64()),
            "raw": pa.array([ln.text for ln in lines], pa.string()),
        })
        return self.append_arrow(table, checks=checks, rules=rules, now=now, source=source)

    def append_arrow(
        self,
        table: pa.Table,
        *,
        checks: PropertyChecks | None = None,
        rules: EventRules | None = None,
        now: datetime | None = None,
        source: str | None = None,
        compact: bool = True,
    ) -> AppendResult:
        """:meth:`append_lines` for an Arrow table of ``line`` (int64) and ``raw`` (string).

        An optional boolean column ``suspect`` marks lines that may hold numbers a
        binary JSON reader would not keep exactly (the file reader computes it while
        splitting lines); without it the store looks for them itself. ``compact=False``
        leaves rollup compaction to the caller (a bulk ingest compacts once at the end).
        """
        self._writable()
        rules = rules or EventRules()
        now = ensure_utc(now or utc_now())
        with self._lock:
            props = self._staged_props(checks)
            con = self.con
            con.register("rc_in", table)
            try:
                self._run(self._stage_sql(checks, props, "suspect" in table.column_names),
                          [now, now - rules.late, now + rules.future])
            finally:
                con.unregister("rc_in")
            slow = self._run("SELECT line, raw FROM rc_stage WHERE NOT fast ORDER BY line")
            py_rows: list[tuple[Any, ...]] = []
            rejected: list[Rejection] = []
            for line, raw in slow:
                try:
                    ev = _parse_line(raw, line=line, now=now, rules=rules, checks=checks)
                except _Blank:
                    continue
                except EventRejected as e:
                    rejected.append(Rejection(line, e.reason, e.event_id, source))
                    continue
                py_rows.append((line, ev.event_id, ev.type, ev.customer, ev.timestamp,
                                properties_json(ev.properties)))
            try:
                return self._commit_rows(py_rows, props, True, rejected, source=source,
                                         checked=checks, compact=compact)
            finally:
                self._run("DROP TABLE IF EXISTS rc_stage")

    def _staged_props(self, checks: PropertyChecks | None) -> list[str]:
        """Properties ingest extracts once per event: those rollups and checks read."""
        props: set[str] = set()
        for fam in self._families.values():
            props.update(fam.props())
        if checks is not None:
            for meters in checks.by_type.values():
                for _, meter in meters:
                    for prop in (meter.property, *meter.group_by,
                                 meter.weights.property if meter.weights else None):
                        if prop is not None:
                            props.add(prop)
        out = []
        for prop in sorted(props):
            try:
                json_path(prop)
            except InvalidInput:
                continue
            out.append(prop)
        return out

    def _stage_sql(self, checks: PropertyChecks | None, props: list[str],
                   has_suspect: bool) -> str:
        """SQL that reads ``rc_in(line, raw)`` into ``rc_stage`` with a ``fast`` verdict.

        ``fast`` rows certainly pass :func:`parse_event` (the conditions are narrower
        than its rules); every other row is handed to it.
        """
        pos = {p: i for i, p in enumerate(props)}
        meter_conds: list[str] = []
        if checks is not None:
            for etype, meters in checks.by_type.items():
                conds: list[str] = []
                for _, meter in meters:
                    needs: list[tuple[str, str]] = []
                    if meter.aggregation in ("sum", "max", "latest") and meter.property:
                        needs.append(("num", meter.property))
                    if meter.aggregation == "unique_count" and meter.property:
                        needs.append(("scalar", meter.property))
                    needs += [("scalar", g) for g in meter.group_by]
                    if meter.weights is not None:
                        needs.append(("weight:" + json.dumps(sorted(meter.weights.values)),
                                      meter.weights.property))
                    for kind, prop in needs:
                        if prop not in pos:
                            conds.append("false")
                            continue
                        k, x = f"k{pos[prop]}", f"x{pos[prop]}"
                        if kind == "num":
                            conds.append(
                                f"({k} IS NULL OR {k} = 'BIGINT' OR "
                                f"(({k} = 'DOUBLE' OR {k} = 'VARCHAR') AND "
                                f"regexp_full_match({x}, {q(_NUM_FAST)})))")
                        elif kind == "scalar":
                            conds.append(f"({k} IS NULL OR ({k} <> 'OBJECT' AND {k} <> 'ARRAY'))")
                        else:
                            keys = json.loads(kind.split(":", 1)[1])
                            conds.append(f"(({k} = 'VARCHAR' OR {k} = 'BIGINT') AND {x} IN "
                                         f"({', '.join(q(k) for k in keys)}))")
                if conds:
                    meter_conds.append(f"(type <> {q(etype)} OR ({' AND '.join(conds)}))")

        def plain_string(j: str) -> list[str]:
            # a JSON string without escapes whose first character is printable ASCII
            # (certainly not blank), at most MAX_ID_CHARS long
            return [f"left({j}, 1) = '\"'", f"NOT contains({j}, '\\')",
                    f"strlen({j}) BETWEEN 3 AND {MAX_ID_CHARS + 2}",
                    f"ascii(substr({j}, 2, 1)) BETWEEN 33 AND 126"]

        fast = [
            "t IS NOT NULL", *plain_string("je"), *plain_string("jy"), *plain_string("jc"),
            "(jt IS NULL OR (ts_ IS NOT NULL AND ts_ >= $2 AND ts_ <= $3))",
            "(jp IS NULL OR left(jp, 1) = '{')",
            *meter_conds,
        ]
        clean = "NOT suspect" if has_suspect else f"NOT regexp_matches(raw, {q(_RISKY)})"
        # one parse of each line (and one of its properties) into JSON texts; the kind of
        # each value (as json_type names it) and its text (as json_extract_string gives
        # it) follow from the text cheaply
        top = json.dumps({k: "JSON" for k in ("event_id", "type", "customer", "timestamp",
                                               "properties")})
        if props:
            structure = json.dumps({p: "JSON" for p in props})
            inner = ("CASE WHEN left(CAST(t.properties AS VARCHAR), 1) = '{' THEN "
                     f"json_transform(CAST(t.properties AS VARCHAR), {q(structure)}) END AS p")
            pj = [f'CAST(p."{p}" AS VARCHAR) AS j{i}' for i, p in enumerate(props)]
            kx = [f"{_kind_sql(f'j{i}')} AS k{i}, {_text_sql(f'j{i}')} AS x{i}"
                  for i in range(len(props))]
        else:
            inner, pj, kx = "NULL AS p", [], []
        pj_sql = "".join(f", {c}" for c in pj)
        kx_sql = "".join(f", {c}" for c in kx)
        out_kx = "".join(f", k{i}, x{i}" for i in range(len(props)))
        return f"""
CREATE OR REPLACE TEMP TABLE rc_stage AS
WITH a AS (
  SELECT line, raw,
    CASE WHEN strlen(raw) <= {MAX_EVENT_BYTES} AND starts_with(raw, '{{') AND {clean}
         THEN TRY(json_transform(raw, {q(top)})) END AS t
  FROM rc_in
), b AS (
  SELECT line, raw, t, CAST(t.event_id AS VARCHAR) AS je, CAST(t.type AS VARCHAR) AS jy,
    CAST(t.customer AS VARCHAR) AS jc, CAST(t.timestamp AS VARCHAR) AS jt,
    CAST(t.properties AS VARCHAR) AS jp, {inner}
  FROM a
), c AS (
  SELECT line, raw, t, je, jy, jc, jt, jp, je[2:-2] AS event_id, jy[2:-2] AS type,
    jc[2:-2] AS customer,
    CASE WHEN left(jt, 1) = '"' AND NOT contains(jt, '\\')
              AND regexp_full_match(jt[2:-2], {q(_TS_FAST)})
         THEN TRY_CAST(jt[2:-2] AS TIMESTAMPTZ) END AS ts_
    {pj_sql}
  FROM b
), d AS (
  SELECT *{kx_sql} FROM c
)
SELECT line, fast, CASE WHEN NOT fast THEN raw END AS raw, event_id, type, customer,
  CASE WHEN jt IS NULL THEN $1::TIMESTAMPTZ ELSE ts_ END AS ts,
  coalesce(jp, '{{}}') AS properties{out_kx}
FROM (SELECT *, coalesce({' AND '.join(fast)}, false) AS fast FROM d)
"""

    def _commit_rows(
        self,
        py_rows: list[tuple[Any, ...]],
        props: list[str],
        staged: bool,
        rejected: list[Rejection],
        *,
        source: str | None,
        checked: PropertyChecks | None = None,
        compact: bool = True,
    ) -> AppendResult:
        """Deduplicate and insert in one transaction the rows parsed in Python plus the
        ``fast`` rows of ``rc_stage`` (when ``staged``); then add their rollup rows.
        ``checked``: the checks every row passed (rollups of meters they cover are clean)."""
        con = self.con
        py = pa.table({
            "line": pa.array([r[0] for r in py_rows], pa.int64()),
            "event_id": pa.array([r[1] for r in py_rows], pa.string()),
            "type": pa.array([r[2] for r in py_rows], pa.string()),
            "customer": pa.array([r[3] for r in py_rows], pa.string()),
            "ts": pa.array([r[4] for r in py_rows], pa.timestamp("us", tz="UTC")),
            "properties": pa.array([r[5] for r in py_rows], pa.string()),
        })
        py_ex = "".join(
            f", json_type(properties, {q(json_path(p))}) AS k{i}"
            f", json_extract_string(properties, {q(json_path(p))}) AS x{i}"
            for i, p in enumerate(props))
        kx_cols = "".join(f", k{i}, x{i}" for i in range(len(props)))
        now = utc_now()
        self._run("BEGIN")
        new_n = 0
        try:
            con.register("rc_py", py)
            parts = [f"SELECT line, event_id, type, customer, ts, properties{py_ex} FROM rc_py"]
            if staged:
                parts.append(f"SELECT line, event_id, type, customer, ts, properties{kx_cols} "
                             "FROM rc_stage WHERE fast")
            rows = "(" + " UNION ALL ".join(parts) + ")"
            # narrow keys only: the rows themselves are read once, by the inserts below
            self._run("CREATE OR REPLACE TEMP TABLE rc_keys AS SELECT line, event_id, "
                      f"hash(event_id) AS h FROM {rows}")
            valid_n = self._scalar("SELECT count(*) FROM rc_keys")
            hits = [r[0] for r in self._run(
                "SELECT DISTINCT h FROM events WHERE h IN (SELECT h FROM rc_keys)")]
            seen = ""
            if hits:
                self._run("CREATE OR REPLACE TEMP TABLE rc_seen (event_id VARCHAR)")
                if len(hits) <= 2000:
                    lits = ", ".join(f"{int(h)}::UBIGINT" for h in hits)
                    self._run(f"INSERT INTO rc_seen SELECT event_id FROM events "
                              f"WHERE h IN ({lits})")
                else:
                    self._run("INSERT INTO rc_seen SELECT event_id FROM events "
                              "WHERE h IN (SELECT h FROM rc_keys)")
                seen = "UNION ALL SELECT line FROM rc_keys WHERE event_id IN " \
                       "(SELECT event_id FROM rc_seen)"
            # the first line of each event_id wins; ids already stored are duplicates
            self._run(f"""
CREATE OR REPLACE TEMP TABLE rc_drop AS
SELECT line FROM (SELECT line, row_number() OVER (PARTITION BY event_id ORDER BY line) AS k
                  FROM rc_keys) WHERE k > 1
{seen}
""")
            dropped = self._scalar("SELECT count(DISTINCT line) FROM rc_drop")
            new_n = valid_n - dropped
            if dropped:
                rows = f"(SELECT * FROM {rows} WHERE line NOT IN (SELECT line FROM rc_drop))"
            batch = self._scalar("SELECT coalesce(max(batch), 0) + 1 FROM batches")
            if new_n:
                self._run(
                    "INSERT INTO events SELECT hash(event_id), event_id, type, customer, ts, "
                    f"properties, ?, ? FROM {rows}", [now, batch])
                for fam in self._families.values():
                    clean = checked is not None and fam.covered_by(checked)
                    self._run("CREATE OR REPLACE TEMP TABLE rc_hour AS "
                              + fam.rollup_sql("hour", rows, "", props, clean=clean))
                    self._run(f"INSERT INTO {fam.table('hour')} SELECT * FROM rc_hour")
                    self._run(f"INSERT INTO {fam.table('day')} "
                              + fam.compact_sql("rc_hour", grain="day", order=False))
                    self._run("INSERT OR IGNORE INTO rollup_dirty SELECT ?, g.grain, m.month "
                              "FROM (SELECT DISTINCT date_trunc('month', bucket) AS month "
                              "FROM rc_hour) m, (VALUES ('hour'), ('day')) g(grain)",
                              [fam.name])
            self._run("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                      [batch, source, now, new_n, valid_n - new_n, len(rejected)])
            self._run("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self._run("ROLLBACK")
            raise
        finally:
            with contextlib.suppress(duckdb.Error, KeyError):
                con.unregister("rc_py")
            for t in ("rc_keys", "rc_drop", "rc_seen", "rc_hour"):
                with contextlib.suppress(duckdb.Error):
                    self._run(f"DROP TABLE IF EXISTS {t}")
        if new_n and compact:
            for fam in list(self._families.values()):
                self._compact_table(fam, "day", force=False)
        rejected.sort(key=lambda r: r.line)
        return AppendResult(accepted=new_n, duplicates=valid_n - new_n, rejected=rejected)

    # ---- voids

    def void(self, event_id: str, reason: str, *, at: datetime | None = None) -> StoredEvent:
        self._writable()
        if not reason or not reason.strip():
            raise InvalidInput("a void needs a reason (--reason TEXT): it is kept with the event")
        at = ensure_utc(at or utc_now())
        with self._lock:
            got = self._get(event_id)
            if got is None:
                raise NotFound(f"no event {event_id!r} in the usage store")
            if got.voided:
                at_text = iso(got.voided_at) if got.voided_at else "?"
                raise Conflict(
                    f"event {event_id!r} was already voided at {at_text} ({got.void_reason})"
                )
            ev = got.event
            self._run("BEGIN")
            try:
                self._run("INSERT INTO voids VALUES (?, ?, ?)", [event_id, reason.strip(), at])
                for fam in self._families.values():
                    if fam.event != ev.type:
                        continue
                    for grain in ("hour", "day"):
                        self._recompute(fam, grain, ev.customer, _floor(ev.timestamp, grain))
                self._run("COMMIT")
            except BaseException:
                self._run("ROLLBACK")
                raise
            out = self._get(event_id)
            assert out is not None
            return out

    def _recompute(self, fam: Family, grain: str, customer: str, bucket: datetime) -> None:
        t = fam.table(grain)
        end = bucket + (timedelta(hours=1) if grain == "hour" else timedelta(days=1))
        self._run(f"DELETE FROM {t} WHERE customer = ? AND bucket = ?", [customer, bucket])
        where = f"customer = $1 AND ts >= $2 AND ts < $3 AND {_NOT_VOIDED}"
        self._run(f"INSERT INTO {t} {fam.rollup_sql(grain, 'events', where)}",
                    [customer, bucket, end])

    # ---- reading

    def get(self, event_id: str) -> StoredEvent | None:
        with self._lock:
            return self._get(event_id)

    def _get(self, event_id: str) -> StoredEvent | None:
        row = self._one(
            "SELECT e.event_id, e.type, e.customer, e.ts, e.properties, e.ingested_at, "
            "v.voided_at, v.reason FROM events e LEFT JOIN voids v USING (event_id) "
            "WHERE e.h = hash($1) AND e.event_id = $1", [event_id])
        if row is None:
            return None
        ev = _event(row[:5])
        return StoredEvent(ev, _utc(row[5]), _utc(row[6]) if row[6] else None, row[7])

    def scan(
        self,
        *,
        window: Window | None = None,
        customers: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        include_voided: bool = False,
        batch_size: int = 50_000,
    ) -> Iterator[Event]:
        """Events in ``(timestamp, event_id)`` order; fetched in batches."""
        where, params = self._where(window, customers, types)
        if not include_voided:
            where.append(_NOT_VOIDED)
        sql = ("SELECT event_id, type, customer, ts, properties FROM events"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY ts, event_id")
        with self._lock:
            cur = self.con.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute(sql, params)
            while True:
                chunk = cur.fetchmany(batch_size)
                if not chunk:
                    break
                for row in chunk:
                    yield _event(row)
        finally:
            cur.close()

    @staticmethod
    def _where(window: Window | None, customers: Sequence[str] | None,
               types: Sequence[str] | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if window is not None:
            where.append("ts >= ? AND ts < ?")
            params += [window.start, window.end]
        if customers is not None:
            where.append(_in_list("customer", customers))
        if types is not None:
            where.append(_in_list("type", types))
        return where, params

    def customers(self, window: Window | None = None) -> list[str]:
        where, params = self._where(window, None, None)
        sql = "SELECT DISTINCT customer FROM events" + (
            " WHERE " + " AND ".join(where) if where else "") + " ORDER BY customer"
        with self._lock:
            return [r[0] for r in self._run(sql, params)]

    def stats(self) -> dict[str, object]:
        with self._lock:
            n, first, last = self._one(
                "SELECT count(*), min(ts), max(ts) FROM events")
            voids = self._scalar("SELECT count(*) FROM voids")
            custs = self._scalar("SELECT count(DISTINCT customer) FROM events")
            return {"url": self.url, "events": n, "voided": voids, "customers": custs,
                    "first": _utc(first) if first else None, "last": _utc(last) if last else None,
                    "rollup_families": len(self._families)}

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
            if meter.aggregation == "unique_count":
                out = self._unique(meter, window, customers, gb, key)
            else:
                rows = self._partials(meter, window, customers, gb, bucket=None)
                out = self._usages(meter, rows, gb, key)
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

    def _partials(
        self,
        meter: Meter,
        window: Window,
        customers: Sequence[str] | None,
        gb: tuple[str, ...],
        *,
        bucket: str | None,
    ) -> list[tuple[Any, ...]]:
        """Rows per customer[, bucket] and group: (customer, [bucket,] g..., q, [k,] c, b, be),
        from rollups where they answer and raw events elsewhere (see :meth:`_fold`)."""
        found = self._find(meter, gb)
        cust_sql = ""
        params: list[Any] = []
        if customers is not None:
            cust_sql = _in_list("customer", customers)

        def p(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        selects: list[str] = []
        if found is None:
            fam = Family.single(meter, gb)
            j = 0
            gmap = list(range(len(gb)))
            segments: list[tuple[str, datetime, datetime]] = [("raw", window.start, window.end)]
        else:
            fam, j, gmap = found
            segments = plan_segments(window, use_days=bucket != "hour")
        names = fam.partial_names([j])
        gsel = [f"g{i} AS x{n}" for n, i in enumerate(gmap)]
        raw_ranges = [(s, e) for kind, s, e in segments if kind == "raw"]
        for grain in ("hour", "day"):
            ranges = [(s, e) for kind, s, e in segments if kind == grain]
            if not ranges:
                continue
            cond = " OR ".join(f"(bucket >= {p(s)} AND bucket < {p(e)})" for s, e in ranges)
            bsel = [f"date_trunc('{bucket}', bucket) AS bkt"] if bucket else []
            where = f"({cond})" + (f" AND {cust_sql}" if cust_sql else "")
            selects.append(f"SELECT customer, {', '.join([*bsel, *gsel, *names])} "
                           f"FROM {fam.table(grain)} WHERE {where}")
        if raw_ranges:
            cond = " OR ".join(f"(ts >= {p(s)} AND ts < {p(e)})" for s, e in raw_ranges)
            where = f"({cond}) AND {_NOT_VOIDED}" + (f" AND {cust_sql}" if cust_sql else "")
            gcols = [f"g{i}" for i in range(len(fam.group_by))]
            bkey = [f"date_trunc('{bucket}', ts) AS bucket"] if bucket else []
            keys = ["customer", *bkey, *gcols]
            raw = (f"SELECT {', '.join(keys + fam.partial_cols())} "
                   f"FROM ({fam.event_sql('events', where)}) "
                   f"GROUP BY {', '.join(['customer', *(['bucket'] if bucket else []), *gcols])}")
            bsel = ["bucket AS bkt"] if bucket else []
            selects.append(f"SELECT customer, {', '.join([*bsel, *gsel, *names])} FROM ({raw})")
        if not selects:
            return []
        xs = [f"x{n}" for n in range(len(gmap))]
        base = ["customer", *(["bkt"] if bucket else [])]
        m = fam.meters[j]
        dec = "DECIMAL(38, 18)" if m.weighted_sum else f"DECIMAL(38, {SCALE})"
        if m.aggregation in ("count", "sum"):
            qexpr = f"CAST(sum(q{j}) AS {dec})"
        elif m.aggregation == "max":
            qexpr = f"max(q{j})"
        else:
            qexpr = f"arg_max(q{j}, k{j}) FILTER (k{j} IS NOT NULL)"
        # quantities leave as plain decimal text (cheaper to turn into Decimals); a plain
        # GROUP BY (totals are folded in Python) keeps the plan small for point queries
        cols = [*base, *xs, f"rc_fmt(CAST({qexpr} AS VARCHAR))"]
        if m.aggregation == "latest":
            cols.append(f"max(k{j})")
        cols += [f"sum(c{j})::BIGINT", f"sum(b{j})::BIGINT", f"min(be{j})"]
        sql = (f"SELECT {', '.join(cols)} FROM ({' UNION ALL '.join(selects)}) "
               f"GROUP BY {', '.join(base + xs)}")
        return self._run(sql, params)

    @staticmethod
    def _fold(meter: Meter, rows: list[tuple[Any, ...]], nbase: int, n_g: int,
              ) -> tuple[dict[Any, Decimal], dict[Any, dict[GroupKey, Decimal]]]:
        """Totals and groups from per-group rows ``(base..., groups..., q, [k], c, b, be)``:
        sums add, maxima take the largest, ``latest`` takes the newest group's value."""
        agg = meter.aggregation
        latest = agg == "latest"
        totals: dict[Any, Decimal] = {}
        newest: dict[Any, tuple[Any, Any]] = {}
        groups: dict[Any, dict[GroupKey, Decimal]] = {}
        for row in rows:
            key = row[0] if nbase == 1 else tuple(row[:nbase])
            rest = row[nbase + n_g:]
            if latest:
                q_, k_, c_, b_, be_ = rest
            else:
                q_, c_, b_, be_ = rest
                k_ = None
            if b_:
                _raise_bad(meter, be_, b_)
            if not c_:
                continue
            qd = _dec(q_)
            if n_g:
                groups.setdefault(key, {})[tuple(row[nbase:nbase + n_g])] = qd
            if key not in totals:
                totals[key] = qd
                if latest:
                    newest[key] = (k_["t"], k_["e"])
            elif agg in ("count", "sum"):
                totals[key] += qd
            elif agg == "max":
                totals[key] = max(totals[key], qd)
            else:
                stamp = (k_["t"], k_["e"])
                if stamp > newest[key]:
                    newest[key] = stamp
                    totals[key] = qd
        return totals, groups

    def _usages(self, meter: Meter, rows: list[tuple[Any, ...]], gb: tuple[str, ...],
                key: str) -> dict[str, MeterUsage]:
        totals, groups = self._fold(meter, rows, 1, len(gb))
        return {c: MeterUsage(key, totals[c], gb, groups.get(c, {}) if gb else {})
                for c in sorted(totals)}

    def _unique(self, meter: Meter, window: Window, customers: Sequence[str] | None,
                gb: tuple[str, ...], key: str) -> dict[str, MeterUsage]:
        fam = Family.single(meter, gb)
        where, params = self._where(window, customers, None)
        where.append(_NOT_VOIDED)
        ev = fam.event_sql("events", " AND ".join(where))
        gcols = [f"g{i}" for i in range(len(gb))]
        sets = (f"(customer, {', '.join(gcols)}), (customer)" if gcols else "(customer)")
        gid = f"grouping({', '.join(gcols)})" if gcols else "0"
        sql = (f"SELECT customer, {gid}, {', '.join([*gcols, 'count(DISTINCT v0)'])} "
               f"FROM ({ev}) WHERE v0 IS NOT NULL GROUP BY GROUPING SETS ({sets})")
        out: dict[str, MeterUsage] = {}
        totals: dict[str, Decimal] = {}
        groups: dict[str, dict[GroupKey, Decimal]] = {}
        for row in self._run(sql, params):
            customer, gidv = row[0], row[1]
            n = Decimal(row[-1])
            if not gcols or gidv != 0:
                totals[customer] = n
            else:
                groups.setdefault(customer, {})[tuple(row[2:2 + len(gcols)])] = n
        for customer in sorted(totals):
            out[customer] = MeterUsage(key, totals[customer], gb,
                                       groups.get(customer, {}) if gb else {})
        return out

    def _values(self, meter: Meter, window: Window,
                customers: Sequence[str] | None) -> dict[str, list[Decimal]]:
        fam = Family.single(meter, ())
        where, params = self._where(window, customers, None)
        where.append(_NOT_VOIDED)
        ev = fam.event_sql("events", " AND ".join(where))
        prod = "v0 * w0" if meter.weights else "v0"
        sql = (f"SELECT customer, {prod}, present0 AND v0 IS NULL, event_id FROM ({ev}) "
               f"WHERE v0 IS NOT NULL OR present0 ORDER BY customer, ts, event_id")
        out: dict[str, list[Decimal]] = {}
        for customer, v, bad, eid in self._run(sql, params):
            if bad or v is None:
                _raise_bad(meter, eid, 1)
            out.setdefault(customer, []).append(_dec(v))
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
            if meter.aggregation == "unique_count":
                return self._unique_series(meter, window, grain, customers, gb)
            rows = self._partials(meter, window, customers, gb, bucket=grain)
        n_g = len(gb)
        totals, groups = self._fold(meter, rows, 2, n_g)
        out: list[SeriesPoint] = []
        if n_g:
            for (customer, bkt), gs in groups.items():
                out += [SeriesPoint(customer, _utc(bkt), q_, g) for g, q_ in gs.items()]
        else:
            out = [SeriesPoint(c, _utc(bkt), q_) for (c, bkt), q_ in totals.items()]
        out.sort(key=lambda s: (s.customer, s.bucket, s.group))
        return out

    def _unique_series(self, meter: Meter, window: Window, grain: str,
                       customers: Sequence[str] | None, gb: tuple[str, ...]) -> list[SeriesPoint]:
        fam = Family.single(meter, gb)
        where, params = self._where(window, customers, None)
        where.append(_NOT_VOIDED)
        ev = fam.event_sql("events", " AND ".join(where))
        gcols = [f"g{i}" for i in range(len(gb))]
        keys = ["customer", f"date_trunc('{grain}', ts) AS bkt", *gcols]
        sql = (f"SELECT {', '.join(keys)}, count(DISTINCT v0) FROM ({ev}) WHERE v0 IS NOT NULL "
               f"GROUP BY ALL ORDER BY ALL")
        return [SeriesPoint(r[0], _utc(r[1]), Decimal(r[-1]), tuple(r[2:2 + len(gcols)]))
                for r in self._run(sql, params)]

    def usage_table(
        self,
        meters: Mapping[str, Meter],
        *,
        window: Window,
        customers: Sequence[str] | None = None,
    ) -> pa.Table:
        """Every meter's quantity per customer and group as one Arrow table.

        Meters of one family are read in a single pass over its rollups: columns
        ``customer``, the family's group properties, then one column per meter.
        Meters of different families are outer-joined on customer and group.
        """
        by_family: dict[str, list[tuple[str, Meter, int]]] = {}
        singles: list[str] = []
        group_bys = {tuple(m.group_by) for m in meters.values()}
        if len(group_bys) > 1:
            raise InvalidInput("usage_table needs meters with the same group_by; "
                               "call it once per group_by")
        with self._lock:
            for name, meter in meters.items():
                found = self._find(meter, tuple(meter.group_by))
                if found is None:
                    singles.append(name)
                else:
                    by_family.setdefault(found[0].name, []).append((name, meter, found[1]))
            if singles:
                raise InvalidInput(
                    "usage_table reads meters with rollups only; these have none: "
                    + ", ".join(singles) + " (sync_meters them, or use aggregate())"
                )
            tables = [self._family_table(self._families[f], items, window, customers)
                      for f, items in by_family.items()]
        if not tables:
            return pa.table({"customer": pa.array([], pa.string())})
        keys = ["customer", *next(iter(group_bys))]
        out = tables[0]
        for t in tables[1:]:
            out = out.join(t, keys=keys, join_type="full outer")
        return out.sort_by([(k, "ascending") for k in keys])

    def _family_table(self, fam: Family, items: list[tuple[str, Meter, int]], window: Window,
                      customers: Sequence[str] | None) -> pa.Table:
        params: list[Any] = []

        def p(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        cust_sql = ""
        if customers is not None:
            cust_sql = " AND " + _in_list("customer", customers)
        js = [j for _, _, j in items]
        names = fam.partial_names(js)
        gcols = [f"g{i}" for i in range(len(fam.group_by))]
        selects = []
        segs = plan_segments(window)
        for grain in ("hour", "day"):
            ranges = [(s, e) for kind, s, e in segs if kind == grain]
            if ranges:
                cond = " OR ".join(f"(bucket >= {p(s)} AND bucket < {p(e)})" for s, e in ranges)
                selects.append(f"SELECT customer, {', '.join(gcols + names)} "
                               f"FROM {fam.table(grain)} WHERE ({cond}){cust_sql}")
        raws = [(s, e) for kind, s, e in segs if kind == "raw"]
        if raws:
            cond = " OR ".join(f"(ts >= {p(s)} AND ts < {p(e)})" for s, e in raws)
            where = f"({cond}) AND {_NOT_VOIDED}{cust_sql}"
            raw = (f"SELECT customer, {', '.join(gcols + fam.partial_cols())} "
                   f"FROM ({fam.event_sql('events', where)}) "
                   f"GROUP BY {', '.join(['customer', *gcols])}")
            selects.append(f"SELECT customer, {', '.join(gcols + names)} FROM ({raw})")
        if not selects:
            selects.append(f"SELECT customer, {', '.join(gcols + names)} "
                           f"FROM {fam.table('day')} WHERE false")
        outs = []
        for (name, meter, j) in items:
            bad = f"sum(b{j})"
            outs.append(f"CASE WHEN {bad} > 0 THEN error('event ' || min(be{j}) || "
                        f"': meter {name} cannot read it; void or fix it') END AS bad_{j}")
            if meter.aggregation in ("count", "sum"):
                outs.append(f"sum(q{j}) AS \"{name}\"")
            elif meter.aggregation == "max":
                outs.append(f"max(q{j}) AS \"{name}\"")
            else:
                outs.append(f"arg_max(q{j}, k{j}) FILTER (k{j} IS NOT NULL) AS \"{name}\"")
        gnames = [f'g{i} AS "{g}"' for i, g in enumerate(fam.group_by)]
        sql = (f"SELECT customer, {', '.join(gnames + outs)} FROM "
               f"({' UNION ALL '.join(selects)}) GROUP BY ALL ORDER BY ALL")
        try:
            table = self.con.sql(sql, params=params).to_arrow_table()
        except duckdb.InvalidInputException as e:
            raise EventInvalid(str(e).split("Error: ", 1)[-1]) from None
        drop = [c for c in table.column_names if c.startswith("bad_")]
        return table.drop_columns(drop)


_NOT_VOIDED = "event_id NOT IN (SELECT event_id FROM voids)"
_TRACE = bool(os.environ.get("RATECARD_TRACE_SQL"))
TRACE_TOTALS: dict[str, list[float]] = {}


def _traced(con: duckdb.DuckDBPyConnection, sql: str,
            params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
    """Run and time one statement (RATECARD_TRACE_SQL=1): wall and CPU per statement kind."""
    import resource
    import time

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    w0, c0 = time.perf_counter(), cpu()
    rows = con.execute(sql, params) if params is not None else con.execute(sql)
    out = rows.fetchall()
    key = " ".join(sql.split())[:50]
    acc = TRACE_TOTALS.setdefault(key, [0.0, 0.0, 0.0])
    acc[0] += time.perf_counter() - w0
    acc[1] += cpu() - c0
    acc[2] += 1
    return out


def _next_month(dt: datetime) -> datetime:
    dt = dt.astimezone(UTC)
    return dt.replace(year=dt.year + dt.month // 12, month=dt.month % 12 + 1)


def _in_list(column: str, values: Sequence[str]) -> str:
    """``column IN ('a', 'b')`` with literals, so DuckDB prunes row groups by their
    min/max (a parameter list behind a subquery would scan every row group)."""
    if not values:
        return "false"
    return f"{column} IN ({', '.join(q(str(v)) for v in values)})"


def _dec(v: Any) -> Decimal:
    if v is None:
        return Decimal(0)
    if isinstance(v, str):
        return Decimal(v)
    d = v if isinstance(v, Decimal) else Decimal(v)
    # DuckDB returns fixed-scale decimals (1.500000000); keep the value, drop padding zeros
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


def _event(row: Sequence[Any]) -> Event:
    event_id, type_, customer, ts, props = row
    return Event(event_id, type_, customer, _utc(ts), _props(props))


def _props(text: str) -> dict[str, Any]:
    value = loads(text)
    return value if isinstance(value, dict) else {}


class _Blank(Exception):
    """A whitespace-only line: skipped, not counted."""


def _parse_line(raw: str, *, line: int, now: datetime, rules: EventRules,
                checks: PropertyChecks | None) -> Event:
    text = raw.rstrip("\r\n")
    if not text.strip():
        raise _Blank()
    try:
        obj = loads(text)
    except (ValueError, ArithmeticError, RecursionError) as e:
        msg = str(e).split(":")[0] if isinstance(e, ValueError) else type(e).__name__
        raise EventRejected(f"not valid JSON ({msg}); each line must be one JSON object",
                            line=line) from None
    return parse_event(obj, line=line, now=now, rules=rules, checks=checks,
                       size=len(text.encode("utf-8")))
