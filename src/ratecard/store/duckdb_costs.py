"""The cost of stored usage, computed in DuckDB: every ``llm.request`` event priced at its time.

One scan of the raw events (``events``, minus ``voids``) does the heavy work in SQL:

1. **normalise** each event's usage into ratecard's buckets (a raw ``usage`` object of
   the OpenAI, OpenAI Responses, Anthropic or Gemini shape, or canonical top-level
   properties; see :mod:`ratecard.costs.usage`). Rows whose JSON is not plainly one
   of those shapes with whole-number counts are *doubtful*: they are handed, grouped,
   to the Python normaliser, which is the definition (so reasons and results match
   ``ratecard costs quote`` exactly);
2. **join** each event with its model's price segment valid at its timestamp (a range
   join on ``[t0, t1)``), its prompt bucket (how many long-context thresholds its
   prompt is above) and the customer's plan at that time;
3. **sum** tokens per (customer, plan, model, provider, region, segment, bucket, batch).

The prices of each distinct (model, provider, region, segment, bucket, batch) come from
:func:`ratecard.costs.tables.rate_row` (the rules that price one request), and the
final multiply-and-sum runs in SQL with exact ``DECIMAL(38, 24)`` prices (or in Python
when a price has more than 24 decimals). Events of a model without a price are never
$0: they are counted per model and reason in :attr:`UsageCosts.unpriced`.

BYOK customers have no model cost: their rows carry ``cost = 0`` and the cost they
would have had in ``byok_cost`` (what a ``cost_plus`` fee on their own provider bill
is computed from).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ratecard.analytics.model import UnpricedModel
from ratecard.clock import Window
from ratecard.costs.model import NO_MODEL, NOT_IN_BOOK, TOKEN_KINDS, PriceBook, Unpriced
from ratecard.costs.rules import cost_of_request
from ratecard.costs.tables import RateRow, Segment, price_segments, rate_row
from ratecard.costs.usage import usage_from_properties
from ratecard.errors import InvalidInput

EVENT_TYPE = "llm.request"
RATE_SCALE = 24
_QUANTUM = Decimal(1).scaleb(-RATE_SCALE)
_MAX_DIGITS = 15  # longer token counts per event go through Python (no overflow)

# Every key read is extracted as raw JSON text with one parse per object
# (json_transform); a count is plain when its text is a canonical whole number.
_TOP_KEYS = ["model", "provider", "region", "batch", "usage", "input_tokens",
             "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
             "output_tokens", "reasoning_tokens"]
_TOP_COUNTS = _TOP_KEYS[5:]
_DETAILS: dict[str, list[str]] = {
    "prompt_tokens_details": ["cached_tokens", "cache_write_tokens", "cache_creation_tokens"],
    "completion_tokens_details": ["reasoning_tokens"],
    "cache_creation": ["ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"],
    "input_tokens_details": ["cached_tokens"],
    "output_tokens_details": ["reasoning_tokens"],
}
_OPENAI = ["prompt_tokens", "completion_tokens", "prompt_tokens_details",
           "completion_tokens_details"]
_RESPONSES = ["input_tokens_details", "output_tokens_details"]
_ANTHROPIC = ["cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation"]
_GEMINI = ["promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount",
           "thoughtsTokenCount", "totalTokenCount", "toolUsePromptTokenCount"]
_CANON = ["cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens"]
_USAGE_COUNTS = ["input_tokens", "cache_read_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "prompt_tokens",
                 "completion_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                 "promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount",
                 "thoughtsTokenCount", "totalTokenCount", "toolUsePromptTokenCount"]
# totalTokenCount only marks the Gemini shape: its value is never read (as in Python)
_UNREAD = {"totalTokenCount"}


def _schema(keys: Iterable[str]) -> str:
    return "'" + json.dumps({k: "JSON" for k in keys}).replace("'", "''") + "'"


def _lst(items: Iterable[str]) -> str:
    return "[" + ", ".join("'" + i.replace("'", "''") + "'" for i in items) + "]"


def _good(e: str) -> str:
    """A count is plain: absent, or a JSON whole number written canonically."""
    return (f"({e} IS NULL OR (length({e}) <= {_MAX_DIGITS} "
            f"AND TRY_CAST({e} AS UBIGINT)::VARCHAR = {e}))")


def _n(e: str) -> str:
    return f"COALESCE(TRY_CAST({e} AS BIGINT), 0)"


def _obj(e: str) -> str:
    return f"({e} IS NOT NULL AND starts_with({e}, '{{'))"


def _any(struct: str, keys: Iterable[str]) -> str:
    return "(" + " OR ".join(f"{struct}.\"{k}\" IS NOT NULL" for k in keys) + ")"


def _shape_sql() -> str:
    """The shape of the usage object ``y`` (Python's rules: one shape, never two)."""
    f_openai, f_resp = _any("y", _OPENAI), _any("y", _RESPONSES)
    f_anth = f"({_any('y', _ANTHROPIC)} AND NOT {f_openai})"
    f_gem, f_canon = _any("y", _GEMINI), _any("y", _CANON)
    n_found = (f"({f_openai}::INT + {f_resp}::INT + {f_anth}::INT + {f_gem}::INT "
               f"+ {f_canon}::INT)")
    io = _any("y", ["input_tokens", "output_tokens"])
    return (f"CASE WHEN y IS NULL THEN NULL WHEN {n_found} > 1 THEN 'mixed' "
            f"WHEN {f_openai} THEN (CASE WHEN {io} THEN 'mixed' ELSE 'openai' END) "
            f"WHEN {f_resp} THEN 'responses' WHEN {f_anth} THEN 'anthropic' "
            f"WHEN {f_gem} THEN 'gemini' WHEN {f_canon} THEN 'canonical' "
            f"WHEN {io} THEN 'canonical' ELSE 'none' END")


def _normalise_sql() -> str:
    """Buckets and the ``pre_ok`` flag from the extracted structs (see :func:`_group_sql`)."""
    u = {k: f'y."{k}"' for k in _USAGE_COUNTS}
    d = {(obj, k): f'd_{obj}."{k}"' for obj, keys in _DETAILS.items() for k in keys}
    n = {k: _n(v) for k, v in u.items()}
    nd = {k: _n(v) for k, v in d.items()}
    t = {k: f"COALESCE(v_{k}, 0)" for k in _TOP_COUNTS}
    ptd, ctd, cc = "prompt_tokens_details", "completion_tokens_details", "cache_creation"
    itd, otd = "input_tokens_details", "output_tokens_details"
    # OpenAI: cache reads from prompt_tokens_details.cached_tokens, or LiteLLM's top-level
    # cache_read_input_tokens (which must then agree); writes from the details (the later
    # key wins), else the top-level cache_creation_input_tokens.
    oa_cached = (f"(CASE WHEN {u['cache_read_input_tokens']} IS NOT NULL "
                 f"THEN {n['cache_read_input_tokens']} ELSE {nd[(ptd, 'cached_tokens')]} END)")
    w = (f"(CASE WHEN {d[(ptd, 'cache_creation_tokens')]} IS NOT NULL "
         f"THEN {nd[(ptd, 'cache_creation_tokens')]} "
         f"WHEN {d[(ptd, 'cache_write_tokens')]} IS NOT NULL "
         f"THEN {nd[(ptd, 'cache_write_tokens')]} ELSE 0 END)")
    oa_written = f"(CASE WHEN {w} = 0 THEN {n['cache_creation_input_tokens']} ELSE {w} END)"
    an_split = f"(y.\"{cc}\" IS NOT NULL AND y.\"{cc}\" <> '{{}}')"
    an_w5 = (f"(CASE WHEN {an_split} THEN {nd[(cc, 'ephemeral_5m_input_tokens')]} "
             f"ELSE {n['cache_creation_input_tokens']} END)")
    an_w1h = f"(CASE WHEN {an_split} THEN {nd[(cc, 'ephemeral_1h_input_tokens')]} ELSE 0 END)"

    def pick(canonical: str, top: str, openai: str, responses: str, anthropic: str,
             gemini: str) -> str:
        return (f"(CASE WHEN u_shape IS NULL THEN {top} WHEN u_shape = 'canonical' THEN "
                f"{canonical} WHEN u_shape = 'openai' THEN {openai} WHEN u_shape = 'responses' "
                f"THEN {responses} WHEN u_shape = 'anthropic' THEN {anthropic} "
                f"WHEN u_shape = 'gemini' THEN {gemini} ELSE 0 END)")

    b_input = pick(n["input_tokens"], t["input_tokens"],
                   f"({n['prompt_tokens']} - {oa_cached} - {oa_written})",
                   f"({n['input_tokens']} - {nd[(itd, 'cached_tokens')]})",
                   n["input_tokens"],
                   f"({n['promptTokenCount']} - {n['cachedContentTokenCount']} "
                   f"+ {n['toolUsePromptTokenCount']})")
    b_read = pick(n["cache_read_tokens"], t["cache_read_tokens"], oa_cached,
                  nd[(itd, "cached_tokens")], n["cache_read_input_tokens"],
                  n["cachedContentTokenCount"])
    b_write = pick(n["cache_write_tokens"], t["cache_write_tokens"], oa_written, "0", an_w5,
                   "0")
    b_write1h = pick(n["cache_write_1h_tokens"], t["cache_write_1h_tokens"], "0", "0",
                     an_w1h, "0")
    b_output = pick(n["output_tokens"], t["output_tokens"], n["completion_tokens"],
                    n["output_tokens"], n["output_tokens"],
                    f"({n['candidatesTokenCount']} + {n['thoughtsTokenCount']})")
    b_reason = pick(n["reasoning_tokens"], t["reasoning_tokens"],
                    nd[(ctd, "reasoning_tokens")], nd[(otd, "reasoning_tokens")], "0",
                    n["thoughtsTokenCount"])
    top_ok = " AND ".join(f"g_{k}" for k in _TOP_COUNTS)
    usage_ok = " AND ".join([_good(v) for k, v in u.items() if k not in _UNREAD]
                            + [_good(v) for v in d.values()])
    cols = [f'y."{o}"' for o in _DETAILS]
    objects_ok = " AND ".join(f"({c} IS NULL OR {_obj(c)})" for c in cols)
    has_top = _any("x", _TOP_COUNTS)
    checks = (
        f"CASE WHEN x.usage IS NULL THEN {has_top} AND {top_ok} "
        f"WHEN y IS NULL OR u_shape IS NULL OR u_shape IN ('mixed', 'none') OR {has_top} "
        f"THEN false "
        f"ELSE {objects_ok} AND {usage_ok} "
        f"AND (u_shape <> 'openai' OR {u['cache_read_input_tokens']} IS NULL "
        f"     OR {d[(ptd, 'cached_tokens')]} IS NULL "
        f"     OR {n['cache_read_input_tokens']} = {nd[(ptd, 'cached_tokens')]}) "
        f"AND (u_shape <> 'anthropic' OR NOT {an_split} "
        f"     OR {u['cache_creation_input_tokens']} IS NULL "
        f"     OR {nd[(cc, 'ephemeral_5m_input_tokens')]} + {nd[(cc, 'ephemeral_1h_input_tokens')]}"
        f"        = {n['cache_creation_input_tokens']}) END"
    )
    return f"""
      {b_input} AS input, {b_read} AS cache_read, {b_write} AS cache_write,
      {b_write1h} AS cache_write_1h, {b_output} AS output, {b_reason} AS reasoning,
      NOT has_null AND ({checks})
        AND starts_with(x.model, '"') AND x.model <> '""'
        AND (x.provider IS NULL OR starts_with(x.provider, '"'))
        AND (x.region IS NULL OR starts_with(x.region, '"'))
        AND (x.batch IS NULL OR x.batch IN ('true', 'false')) AS pre_ok"""


GRAIN = ("customer", "plan", "model")


@dataclass(frozen=True)
class PlanSpan:
    """``customer`` was on ``plan`` during ``[start, end)`` (``None``: open)."""

    customer: str
    plan: str
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class CostRow:
    """The model cost of one customer's requests of one model while on one plan
    (``model`` and ``plan`` are ``None`` when the grain leaves them out)."""

    customer: str
    plan: str | None
    model: str | None
    requests: int
    tokens: int
    cost: Decimal
    byok_cost: Decimal
    kinds: Mapping[str, Decimal] | None = None  # cost per token kind (with ``by_kind``)

    @property
    def full_cost(self) -> Decimal:
        """What the usage costs at the price book's prices, BYOK or not."""
        return self.cost + self.byok_cost


@dataclass
class UsageCosts:
    """Costed ``llm.request`` usage of a window."""

    window: Window
    rows: list[CostRow]
    unpriced: list[UnpricedModel]
    events: int = 0
    priced_events: int = 0
    python_events: int = 0  # events normalised by the Python path (doubtful JSON)
    kinds: dict[str, Decimal] = field(default_factory=dict)  # cost per token kind, all rows
    unpriced_customers: set[str] = field(default_factory=set)
    rollup: dict[str, int] | None = None  # what refreshing the day rollup did, when used

    @property
    def unpriced_events(self) -> int:
        return sum(u.events for u in self.unpriced)

    @property
    def cost(self) -> Decimal:
        return sum((r.cost for r in self.rows), Decimal(0))

    @property
    def byok_cost(self) -> Decimal:
        return sum((r.byok_cost for r in self.rows), Decimal(0))


def _segments_table(segs: list[Segment]) -> pa.Table:
    return pa.table({
        "model": pa.array([s.model for s in segs], pa.string()),
        "seg": pa.array([s.seg for s in segs], pa.int32()),
        "t0": pa.array([s.start for s in segs], pa.timestamp("us", tz="UTC")),
        "t1": pa.array([s.end for s in segs], pa.timestamp("us", tz="UTC")),
        "th": pa.array([list(s.thresholds) for s in segs], pa.list_(pa.int64())),
    })


def _spans_table(spans: Sequence[PlanSpan]) -> pa.Table:
    return pa.table({
        "customer": pa.array([s.customer for s in spans], pa.string()),
        "plan": pa.array([s.plan for s in spans], pa.string()),
        "t0": pa.array([s.start for s in spans], pa.timestamp("us", tz="UTC")),
        "t1": pa.array([s.end for s in spans], pa.timestamp("us", tz="UTC")),
    })


def _exact(v: Decimal | None) -> bool:
    return v is None or v == v.quantize(_QUANTUM)


def _rates_table(rows: list[RateRow]) -> pa.Table:
    dec = pa.decimal128(38, RATE_SCALE)
    cols: dict[str, Any] = {
        "model": pa.array([r.model for r in rows], pa.string()),
        "provider": pa.array([r.provider for r in rows], pa.string()),
        "region": pa.array([r.region for r in rows], pa.string()),
        "seg": pa.array([r.seg for r in rows], pa.int32()),
        "bucket": pa.array([r.bucket for r in rows], pa.int32()),
        "batch": pa.array([r.batch for r in rows], pa.bool_()),
        "priced": pa.array([r.version is not None for r in rows], pa.bool_()),
        "reason": pa.array([r.reason for r in rows], pa.string()),
    }
    for kind in TOKEN_KINDS:
        cols[f"r_{kind}"] = pa.array(
            [None if r.rates[kind] is None else r.rates[kind].quantize(_QUANTUM)  # type: ignore[union-attr]
             for r in rows], dec)
    cols["r_request"] = pa.array([None if r.per_request is None else
                                  r.per_request.quantize(_QUANTUM) for r in rows], dec)
    return pa.table(cols)


def _checked_sql(source: str) -> str:
    """``WITH ...`` ending in ``checked``: each event of ``source`` (a SELECT of
    ``event_id, customer, ts, properties``) with its buckets, ``ok`` and ``prompt``."""
    usage_keys = sorted(set(_USAGE_COUNTS) | set(_DETAILS))
    details = ",\n".join(
        f"CASE WHEN y.\"{o}\" IS NOT NULL AND starts_with(y.\"{o}\", '{{') "
        f"THEN json_transform(y.\"{o}\", {_schema(keys)}) END AS d_{o}"
        for o, keys in _DETAILS.items())
    top_typed = ", ".join(
        f'TRY_CAST(x."{k}" AS UBIGINT) AS v_{k}, '
        f'(x."{k}" IS NULL OR (length(x."{k}") <= {_MAX_DIGITS} '
        f'AND TRY_CAST(x."{k}" AS UBIGINT)::VARCHAR = x."{k}")) AS g_{k}'
        for k in _TOP_COUNTS)
    return f"""
    WITH src AS (
      SELECT e.event_id, e.customer, e.ts, e.properties AS p,
             contains(e.properties, 'null') AS has_null,
             json_transform(e.properties, {_schema(_TOP_KEYS)}) AS x
      FROM ({source}) e
    ),
    typed AS (
      SELECT *, {top_typed} FROM src
    ),
    src2 AS (
      SELECT *,
        CASE WHEN x.usage IS NOT NULL AND starts_with(x.usage, '{{') AND NOT has_null
             THEN json_transform(x.usage, {_schema(usage_keys)}) END AS y
      FROM typed
    ),
    src3 AS (
      SELECT *, {details}, {_shape_sql()} AS u_shape FROM src2
    ),
    norm AS (
      SELECT event_id, customer, ts, p, x.model ->> '$' AS model,
             x.provider ->> '$' AS provider, x.region ->> '$' AS region,
             COALESCE(x.batch = 'true', false) AS batch,
             {_normalise_sql()}
      FROM src3
    ),
    checked AS (
      SELECT *, COALESCE(pre_ok AND input >= 0 AND cache_read >= 0 AND cache_write >= 0
                AND cache_write_1h >= 0 AND reasoning <= output, false) AS ok,
             input + cache_read + cache_write + cache_write_1h AS prompt
      FROM norm
    )"""


def events_source(events: str, voids: str | None, *, customers: bool = False,
                  extra: str = "") -> str:
    """The ``llm.request`` events of the window (``$start``/``$end``), voided ones left out."""
    not_voided = f"AND e.event_id NOT IN (SELECT event_id FROM {voids})" if voids else ""
    only = "AND e.customer IN (SELECT customer FROM rc_customers)" if customers else ""
    return (f"SELECT e.event_id, e.customer, e.ts, e.properties FROM {events} e "
            f"WHERE e.type = '{EVENT_TYPE}' AND e.ts >= $start AND e.ts < $end "
            f"{not_voided} {only} {extra}")


GROUP_COLUMNS = ("customer, plan, model, provider, region, batch, ok, seg, bucket, raw, raw_ts, "
                 "n, input, cache_read, cache_write, cache_write_1h, output, reasoning, "
                 "first_at, last_at")


def _grouped_sql(source: str) -> str:
    """Events of ``source`` grouped by price combination and plan (the ``rc_groups`` shape)."""
    return _checked_sql(source) + """
    SELECT c.customer, sp.plan, c.model, c.provider, c.region, c.batch, c.ok,
           s.seg, CASE WHEN s.seg IS NULL OR NOT c.ok OR len(s.th) = 0 THEN 0
                       ELSE len(list_filter(s.th, lambda t: c.prompt > t)) END AS bucket,
           CASE WHEN c.ok THEN NULL ELSE c.p END AS raw,
           CASE WHEN c.ok THEN NULL ELSE c.ts END AS raw_ts,
           count(*) AS n,
           sum(CASE WHEN c.ok THEN c.input END)::HUGEINT AS input,
           sum(CASE WHEN c.ok THEN c.cache_read END)::HUGEINT AS cache_read,
           sum(CASE WHEN c.ok THEN c.cache_write END)::HUGEINT AS cache_write,
           sum(CASE WHEN c.ok THEN c.cache_write_1h END)::HUGEINT AS cache_write_1h,
           sum(CASE WHEN c.ok THEN c.output - c.reasoning END)::HUGEINT AS output,
           sum(CASE WHEN c.ok THEN c.reasoning END)::HUGEINT AS reasoning,
           min(c.ts) AS first_at, max(c.ts) AS last_at
    FROM checked c
    LEFT JOIN rc_segments s ON s.model = c.model
         AND c.ts >= COALESCE(s.t0, '-infinity'::TIMESTAMPTZ)
         AND c.ts < COALESCE(s.t1, 'infinity'::TIMESTAMPTZ)
    LEFT JOIN rc_spans sp ON sp.customer = c.customer
         AND c.ts >= COALESCE(sp.t0, '-infinity'::TIMESTAMPTZ)
         AND c.ts < COALESCE(sp.t1, 'infinity'::TIMESTAMPTZ)
    GROUP BY ALL
    """


def _group_sql(events: str, voids: str | None, customers: bool) -> str:
    return ("CREATE OR REPLACE TEMP TABLE rc_groups AS "
            + _grouped_sql(events_source(events, voids, customers=customers)))


_COST_KINDS = (("input", "input"), ("cache_read", "cache_read"), ("cache_write", "cache_write"),
               ("cache_write_1h", "cache_write_1h"), ("output", "output"),
               ("reasoning", "reasoning"))


def _kind_cost(col: str, rate: str) -> str:
    return f"(CASE WHEN g.{col} = 0 THEN 0 ELSE g.{col} * r.r_{rate} END)"


_JOIN = ("g.model = r.model AND g.provider IS NOT DISTINCT FROM r.provider "
         "AND g.region IS NOT DISTINCT FROM r.region AND g.seg = r.seg AND g.bucket = r.bucket "
         "AND g.batch = r.batch")
_PRICED = ("r.priced AND NOT (g.output > 0 AND r.r_output IS NULL) "
           "AND NOT (g.reasoning > 0 AND r.r_reasoning IS NULL)")


def _unpriced_reason() -> str:
    """The reason an event is unpriced, worded as :class:`Unpriced` words it."""
    missing = ("CASE WHEN g.batch THEN 'no batch or standard output price' "
               "ELSE 'no output price' END")
    return (f"CASE WHEN g.seg IS NULL THEN {_sql_str(NOT_IN_BOOK)} "
            f"WHEN NOT r.priced THEN r.reason ELSE {missing} END")


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def cost_events(
    con: duckdb.DuckDBPyConnection,
    book: PriceBook,
    window: Window,
    *,
    events: str = "events",
    voids: str | None = "voids",
    byok: Iterable[str] = (),
    spans: Sequence[PlanSpan] = (),
    customers: Sequence[str] | None = None,
    grain: Sequence[str] = GRAIN,
    by_kind: bool = False,
    rollup: Path | None = None,
) -> UsageCosts:
    """Cost every ``llm.request`` event of ``window`` in ``events`` (see the module docs).

    ``con`` should be a cursor of its own: the temporary tables this creates
    (``rc_*``) live on it. ``events`` needs ``event_id``, ``type``, ``customer``,
    ``ts`` (TIMESTAMPTZ) and ``properties`` (JSON text) columns. ``grain`` says which
    of customer, plan and model the rows are split by (``customer`` always is); a
    coarser grain returns fewer rows, the totals are the same. ``by_kind`` adds each
    row's cost per token kind (``input``, ..., ``request``). ``rollup`` names the day
    rollup file of :mod:`ratecard.store.duckdb_cost_rollup` to read whole days from
    (brought up to date first); without it, or when another process holds it, every
    event of the window is read.
    """
    if "customer" not in grain or set(grain) - set(GRAIN):
        raise InvalidInput(f"grain must include customer and may add plan and model: {grain}")
    con.execute("SET TimeZone = 'UTC'")
    segs = price_segments(book)
    con.register("rc_segments_src", _segments_table(segs))
    con.execute("CREATE OR REPLACE TEMP TABLE rc_segments AS SELECT * FROM rc_segments_src")
    con.unregister("rc_segments_src")
    con.register("rc_spans_src", _spans_table(list(spans)))
    con.execute("CREATE OR REPLACE TEMP TABLE rc_spans AS SELECT * FROM rc_spans_src")
    con.unregister("rc_spans_src")
    byok_set = sorted(set(byok))
    con.execute("CREATE OR REPLACE TEMP TABLE rc_byok (customer VARCHAR)")
    if byok_set:
        con.executemany("INSERT INTO rc_byok VALUES (?)", [[c] for c in byok_set])
    if customers is not None:
        con.execute("CREATE OR REPLACE TEMP TABLE rc_customers AS "
                    "SELECT unnest(?::VARCHAR[]) AS customer", [list(customers)])
    result = UsageCosts(window=window, rows=[], unpriced=[])
    if not (rollup is not None and voids is not None
            and _from_rollup(con, rollup, book, window, list(spans), segs, events, voids,
                             customers is not None, result)):
        con.execute(_group_sql(events, voids, customers is not None),
                    {"start": window.start, "end": window.end})
    seg_by_key = {(s.model, s.seg): s for s in segs}

    # prices of each distinct combination, by the single-request rules
    combos = con.execute(
        "SELECT DISTINCT model, provider, region, seg, bucket, batch FROM rc_groups "
        "WHERE ok AND seg IS NOT NULL").fetchall()
    rates = [rate_row(book, seg_by_key[(m, s)], p, r, b, bt) for m, p, r, s, b, bt in combos]
    exact = all(_exact(v) for row in rates for v in (*row.rates.values(), row.per_request))
    con.register("rc_rates_src", _rates_table(rates))
    con.execute("CREATE OR REPLACE TEMP TABLE rc_rates AS SELECT * FROM rc_rates_src")
    con.unregister("rc_rates_src")

    unpriced: dict[tuple[str, str], list[Any]] = {}
    rows: dict[tuple[str, str | None, str | None], list[Any]] = {}
    kinds: dict[str, Decimal] = {}
    byok_customers = set(byok_set)

    if exact:
        _sql_costs(con, rows, kinds, grain, by_kind)
    else:
        _python_costs(con, rates, rows, kinds, grain)
    for model, reason, n, custs, first, last in con.execute(f"""
        SELECT g.model, {_unpriced_reason()}, sum(g.n),
               list(DISTINCT g.customer), min(g.first_at), max(g.last_at)
        FROM rc_groups g LEFT JOIN rc_rates r ON {_JOIN}
        WHERE g.ok AND NOT COALESCE({_PRICED}, false)
        GROUP BY ALL""").fetchall():
        _add_unpriced(unpriced, model, reason, int(n), set(custs), first, last)

    # doubtful rows: the Python normaliser and pricer decide
    for customer, plan, raw, raw_ts, n in con.execute(
            "SELECT customer, plan, raw, raw_ts, n FROM rc_groups WHERE NOT ok"
    ).fetchall():
        result.python_events += int(n)
        at = _utc(raw_ts)
        label = NO_MODEL
        try:
            props = json.loads(raw, parse_float=Decimal)
            if not isinstance(props, dict):
                raise InvalidInput("the properties are not an object")
            name = props.get("model")
            if isinstance(name, str) and name:
                label = name
            usage = usage_from_properties(props)
            if label == NO_MODEL:
                raise Unpriced(NO_MODEL, "the event has no model property (a string)")
            prov, reg = props.get("provider"), props.get("region")
            b = cost_of_request(book, label, usage, at,
                                provider=prov if isinstance(prov, str) else None,
                                region=reg if isinstance(reg, str) else None)
        except Unpriced as e:
            _add_unpriced(unpriced, e.model, e.reason, int(n), {customer}, at, at)
            continue
        except InvalidInput as e:
            _add_unpriced(unpriced, label, f"unreadable usage: {e}", int(n), {customer}, at, at)
            continue
        acc = rows.setdefault(_key(grain, customer, plan, label), _new_acc())
        acc[0] += int(n)
        acc[1] += usage.total * int(n)
        acc[2] += b.total * int(n)
        for ln in b.lines:
            kinds[ln.kind] = kinds.get(ln.kind, Decimal(0)) + ln.amount * int(n)
            acc[3][ln.kind] = acc[3].get(ln.kind, Decimal(0)) + ln.amount * int(n)

    zero = Decimal(0)
    for (customer, plan, model), (n, tokens, total, row_kinds) in sorted(
            rows.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2] or "")):
        is_byok = customer in byok_customers
        result.rows.append(CostRow(
            customer, plan, model, n, tokens, zero if is_byok else total,
            total if is_byok else zero,
            {k: v.normalize() for k, v in row_kinds.items() if v} if by_kind else None))
    result.kinds = {k: v.normalize() for k, v in kinds.items() if v}
    result.unpriced_customers = {c for v in unpriced.values() for c in v[1]}
    result.unpriced = [UnpricedModel(m, v[0], len(v[1]), reason, v[2], v[3])
                       for (m, reason), v in sorted(unpriced.items())]
    result.priced_events = sum(r.requests for r in result.rows)
    result.events = result.priced_events + result.unpriced_events
    return result


def _key(grain: Sequence[str], customer: str, plan: str | None, model: str | None
         ) -> tuple[str, str | None, str | None]:
    return (customer, plan if "plan" in grain else None, model if "model" in grain else None)


def _from_rollup(con: duckdb.DuckDBPyConnection, path: Path, book: PriceBook,
                 window: Window, spans: list[PlanSpan], segs: list[Segment], events: str,
                 voids: str, customers: bool, result: UsageCosts) -> bool:
    """Build ``rc_groups`` through the day rollup; ``False`` when it cannot be used."""
    from ratecard.store import duckdb_cost_rollup as roll

    bounds = sorted({t for s in segs for t in (s.start, s.end) if t is not None})
    with roll.lock():
        if not roll.attach(con, path):
            return False
        try:
            result.rollup = roll.refresh(con, book, events=events, voids=voids)
            roll.build_groups(con, book, window, spans, bounds, events=events, voids=voids,
                              customers=customers)
        finally:
            roll.detach(con)
    return True


def _new_acc() -> list[Any]:
    return [0, 0, Decimal(0), {}]


def _utc(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)
    raise InvalidInput(f"unexpected timestamp {v!r}")


def _add_unpriced(acc: dict[tuple[str, str], list[Any]], model: str, reason: str, n: int,
                  customers: set[str], first: Any, last: Any) -> None:
    first_at, last_at = _utc(first), _utc(last)
    hit = acc.get((model, reason))
    if hit is None:
        acc[(model, reason)] = [n, set(customers), first_at, last_at]
    else:
        hit[0] += n
        hit[1] |= customers
        hit[2] = min(hit[2], first_at)
        hit[3] = max(hit[3], last_at)


def _sql_costs(con: duckdb.DuckDBPyConnection, rows: dict[Any, list[Any]],
               kinds: dict[str, Decimal], grain: Sequence[str], by_kind: bool) -> None:
    names = [c for c, _ in _COST_KINDS] + ["request"]
    exprs = [_kind_cost(c, r) for c, r in _COST_KINDS] + [
        "(CASE WHEN r.r_request IS NULL THEN 0 ELSE g.n * r.r_request END)"]
    priced = f"""
      SELECT g.customer, g.plan, g.model, g.n,
             g.input + g.cache_read + g.cache_write + g.cache_write_1h + g.output
               + g.reasoning AS tokens,
             {", ".join(f"{e} AS k_{n}" for e, n in zip(exprs, names, strict=True))}
      FROM rc_groups g JOIN rc_rates r ON {_JOIN}
      WHERE g.ok AND {_PRICED}"""
    total = " + ".join(f"k_{n}" for n in names)
    cols = ", ".join(c if c in grain else f"NULL AS {c}" for c in GRAIN)
    keys = ", ".join(c for c in GRAIN if c in grain)
    per_kind = "".join(f", sum(k_{n})::VARCHAR" for n in names) if by_kind else ""
    sql = (f"SELECT {cols}, sum(n)::BIGINT, sum(tokens)::VARCHAR, "
           f"sum({total})::VARCHAR{per_kind} FROM ({priced}) GROUP BY {keys}")
    for customer, plan, model, n, tokens, cost, *parts in con.execute(sql).fetchall():
        row_kinds = {k: Decimal(v) for k, v in zip(names, parts, strict=False) if v}
        rows[(customer, plan, model)] = [int(n), int(tokens), Decimal(cost).normalize(),
                                         row_kinds]
    sums = con.execute("SELECT " + ", ".join(f"sum(k_{n})::VARCHAR" for n in names)
                       + f" FROM ({priced})").fetchone()
    for n, v in zip(names, sums or (), strict=False):
        if v is not None:
            kinds[n] = kinds.get(n, Decimal(0)) + Decimal(v)


def _python_costs(con: duckdb.DuckDBPyConnection, rates: list[RateRow],
                  rows: dict[Any, list[Any]], kinds: dict[str, Decimal],
                  grain: Sequence[str]) -> None:
    """The same sums with prices of more than 24 decimals: exact in Python."""
    by_key = {(r.model, r.provider, r.region, r.seg, r.bucket, r.batch): r for r in rates}
    for (customer, plan, model, provider, region, seg, bucket, batch, n, *tokens) in con.execute(
            "SELECT customer, plan, model, provider, region, seg, bucket, batch, n, input, "
            "cache_read, cache_write, cache_write_1h, output, reasoning FROM rc_groups "
            "WHERE ok AND seg IS NOT NULL").fetchall():
        r = by_key[(model, provider, region, seg, bucket, batch)]
        counts = dict(zip(TOKEN_KINDS, (int(t) for t in tokens), strict=True))
        if r.version is None or any(counts[k] and r.rates[k] is None for k in TOKEN_KINDS):
            continue
        acc = rows.setdefault(_key(grain, customer, plan, model), _new_acc())
        acc[0] += int(n)
        acc[1] += sum(counts.values())
        for k in TOKEN_KINDS:
            if counts[k]:
                amount = counts[k] * r.rates[k]  # type: ignore[operator]
                acc[2] += amount
                kinds[k] = kinds.get(k, Decimal(0)) + amount
                acc[3][k] = acc[3].get(k, Decimal(0)) + amount
        if r.per_request is not None:
            fee = int(n) * r.per_request
            acc[2] += fee
            kinds["request"] = kinds.get("request", Decimal(0)) + fee
            acc[3]["request"] = acc[3].get("request", Decimal(0)) + fee
