"""Costing stored events in DuckDB agrees with pricing each request in Python.

The events live in a real DuckDB database with the usage store's ``events`` and
``voids`` tables; :func:`cost_events` must give, for any mix of usage shapes, the
same cost per customer and the same unpriced counts (per model and reason) as
:func:`ratecard.costs.usage_from_properties` + :func:`cost_of_request` event by event.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from costs_helpers import MARCH_15, book_prices, rates
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratecard.clock import Window
from ratecard.costs import LongContextTier, ModelPrice, PriceBook, Unpriced, cost_of_request
from ratecard.costs.model import NO_MODEL
from ratecard.costs.usage import usage_from_properties
from ratecard.errors import InvalidInput
from ratecard.store.duckdb_costs import PlanSpan, cost_events

BOOK = PriceBook.build([
    *book_prices(),
    ModelPrice(model="multi", provider="a", rates=rates(input="1", output="2")),
    ModelPrice(model="multi", provider="b", rates=rates(input="3", output="5")),
])
MARCH = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def new_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE events (event_id VARCHAR, type VARCHAR, customer VARCHAR, "
                "ts TIMESTAMPTZ, properties VARCHAR, batch BIGINT DEFAULT 0)")
    con.execute("CREATE TABLE voids (event_id VARCHAR)")
    return con


_DEC = re.compile(r'"__dec__([^"]+)"')


def dumps(props: dict[str, Any]) -> str:
    """JSON text with Decimals written as JSON numbers (as a provider would send them)."""
    text = json.dumps(props, default=lambda d: f"__dec__{d}")
    return _DEC.sub(r"\1", text)


def insert(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, datetime, str]],
           type_: str = "llm.request", batch: int = 0) -> None:
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    [[eid, type_, c, ts, text, batch] for eid, c, ts, text in rows])


def expected(rows: list[tuple[str, str, datetime, str]], byok: set[str] = frozenset()  # type: ignore[assignment]
             ) -> tuple[dict[str, Decimal], Counter[tuple[str, str]]]:
    """The reference: each event priced on its own in Python."""
    costs: dict[str, Decimal] = defaultdict(Decimal)
    unpriced: Counter[tuple[str, str]] = Counter()
    for _, customer, at, text in rows:
        props = json.loads(text, parse_float=Decimal)
        name = props.get("model")
        label = name if isinstance(name, str) and name else NO_MODEL
        try:
            usage = usage_from_properties(props)
            if label == NO_MODEL:
                raise Unpriced(NO_MODEL, "the event has no model property (a string)")
            prov, reg = props.get("provider"), props.get("region")
            b = cost_of_request(BOOK, label, usage, at,
                                provider=prov if isinstance(prov, str) else None,
                                region=reg if isinstance(reg, str) else None)
        except Unpriced as e:
            unpriced[(e.model, e.reason)] += 1
            continue
        except InvalidInput as e:
            unpriced[(label, f"unreadable usage: {e}")] += 1
            continue
        costs[customer] += b.total
    return dict(costs), unpriced


def actual(con: duckdb.DuckDBPyConnection, byok: set[str] = frozenset()  # type: ignore[assignment]
           ) -> tuple[dict[str, Decimal], Counter[tuple[str, str]], Any]:
    r = cost_events(con.cursor(), BOOK, MARCH, byok=byok)
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for row in r.rows:
        costs[row.customer] += row.cost + row.byok_cost
    unpriced = Counter({(u.model, u.reason): u.events for u in r.unpriced})
    return {c: v for c, v in costs.items()}, unpriced, r


# --------------------------------------------------------------------------- worked by hand


def test_a_month_of_requests_by_hand() -> None:
    con = new_db()
    t = datetime(2026, 3, 2, 10, tzinfo=UTC)
    rows = [
        # claude-x (3 / 0.30 / 3.75 / 6 / 15 per million): 1,000 + 50,000 cached + 2,000 out
        ("e1", "acme", t, dumps({"model": "claude-x", "input_tokens": 1000,
                                  "cache_read_tokens": 50000, "output_tokens": 2000})),
        # the same request as OpenAI and as Anthropic usage objects
        ("e2", "acme", t, dumps({"model": "claude-x", "usage": {
            "prompt_tokens": 51000, "completion_tokens": 2000,
            "prompt_tokens_details": {"cached_tokens": 50000}}})),
        ("e3", "acme", t, dumps({"model": "claude-x", "usage": {
            "input_tokens": 1000, "cache_read_input_tokens": 50000, "output_tokens": 2000}})),
        # m changes price on March 15: 1,000 in + 1,000 out = 0.003 before, 0.0015 after
        ("e4", "beta", MARCH_15 - timedelta(microseconds=1),
         dumps({"model": "m", "input_tokens": 1000, "output_tokens": 1000})),
        ("e5", "beta", MARCH_15, dumps({"model": "m", "input_tokens": 1000,
                                        "output_tokens": 1000})),
        # batch above the long-context threshold: 150,001 × 3 + 50,000 × 0.3 + 1,000 × 11.25
        ("e6", "beta", t, dumps({"model": "claude-x", "batch": True, "input_tokens": 150001,
                                 "cache_read_tokens": 50000, "output_tokens": 1000})),
        # unpriced: unknown model, output on an embedding model, unreadable usage
        ("e7", "beta", t, dumps({"model": "mystery", "input_tokens": 5})),
        ("e8", "beta", t, dumps({"model": "embed-x", "input_tokens": 5, "output_tokens": 1})),
        ("e9", "beta", t, dumps({"model": "plain", "input_tokens": -5})),
        # voided, outside the window, another event type: never counted
        ("e10", "acme", t, dumps({"model": "plain", "input_tokens": 10**9})),
        ("e11", "acme", datetime(2026, 4, 1, tzinfo=UTC),
         dumps({"model": "plain", "input_tokens": 10**9})),
    ]
    insert(con, rows)
    insert(con, [("e12", "acme", t, dumps({"model": "plain", "input_tokens": 10**9}))],
           type_="ticket.closed")
    con.execute("INSERT INTO voids VALUES ('e10')")
    r = cost_events(con.cursor(), BOOK, MARCH, spans=[PlanSpan("acme", "pro")])
    by = {(row.customer, row.model): row for row in r.rows}
    assert by[("acme", "claude-x")].cost == Decimal("0.144")  # 3 × 0.048
    assert by[("acme", "claude-x")].plan == "pro" and by[("acme", "claude-x")].requests == 3
    assert by[("beta", "m")].cost == Decimal("0.0045")  # 0.003 + 0.0015
    assert by[("beta", "claude-x")].cost == Decimal("0.476253")
    assert by[("beta", "claude-x")].plan is None
    assert r.priced_events == 6 and r.unpriced_events == 3 and r.events == 9
    reasons = {u.model: u.reason for u in r.unpriced}
    assert reasons["mystery"].startswith("not in the price book")
    assert reasons["embed-x"] == "no output price"
    assert reasons["plain"].startswith("unreadable usage: usage.input_tokens: -5 is negative")
    assert r.python_events == 1  # only the negative count needed the Python path


def test_byok_customers_cost_nothing_but_keep_what_they_would_have_cost() -> None:
    con = new_db()
    t = datetime(2026, 3, 2, tzinfo=UTC)
    insert(con, [("e1", "own-key", t, dumps({"model": "plain", "input_tokens": 1_000_000})),
                 ("e2", "managed", t, dumps({"model": "plain", "input_tokens": 1_000_000}))])
    r = cost_events(con.cursor(), BOOK, MARCH, byok=["own-key"])
    by = {row.customer: row for row in r.rows}
    assert (by["own-key"].cost, by["own-key"].byok_cost) == (0, Decimal(1))
    assert (by["managed"].cost, by["managed"].byok_cost) == (Decimal(1), 0)
    assert r.cost == 1 and r.byok_cost == 1


def test_plan_spans_split_a_customer_month() -> None:
    con = new_db()
    insert(con, [(f"e{i}", "acme", datetime(2026, 3, 1 + i, tzinfo=UTC),
                  dumps({"model": "plain", "input_tokens": 1_000_000})) for i in range(20)])
    spans = [PlanSpan("acme", "lite", None, datetime(2026, 3, 11, tzinfo=UTC)),
             PlanSpan("acme", "pro", datetime(2026, 3, 11, tzinfo=UTC), None)]
    r = cost_events(con.cursor(), BOOK, MARCH, spans=spans)
    assert {(row.plan, row.requests, row.cost) for row in r.rows} == {
        ("lite", 10, Decimal(10)), ("pro", 10, Decimal(10))}


def test_prices_with_more_than_24_decimals_stay_exact() -> None:
    book = PriceBook.build([ModelPrice(model="odd", rates=rates(input="1", output="1")),
                            ModelPrice(model="third", rates=rates(input="1", output="1"))])
    # $1 per 3 million tokens: not a finite decimal, priced in Python instead of SQL
    third = ModelPrice(model="third", rates=rates(input="1", output="1"))
    third = ModelPrice(model="third", rates=type(third.rates)(
        input=Decimal(1) / Decimal(3_000_000), output=Decimal(0)))
    book = PriceBook.build([book.versions("odd")[0], third])
    con = new_db()
    t = datetime(2026, 3, 2, tzinfo=UTC)
    insert(con, [("e1", "a", t, dumps({"model": "third", "input_tokens": 3_000_000})),
                 ("e2", "a", t, dumps({"model": "odd", "input_tokens": 1}))])
    r = cost_events(con.cursor(), book, MARCH)
    by = {row.model: row.cost for row in r.rows}
    assert by["third"] == Decimal(1) / Decimal(3_000_000) * 3_000_000
    assert by["odd"] == Decimal("0.000001")


# --------------------------------------------------------------------------- SQL == Python

counts = st.one_of(
    st.integers(0, 400_000), st.integers(0, 400_000), st.integers(0, 300),
    st.sampled_from([0, -1, 10**16, "7", " 7", "+7", "abc", "", True, None, {}, [1],
                     Decimal("5.5"), Decimal("5.0"), Decimal("1E+3"), Decimal("1E-20")]),
)


def maybe_keys(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), counts, max_size=len(keys))


openai_usage = st.builds(
    lambda base, ptd, ctd: {**base, **({"prompt_tokens_details": ptd} if ptd is not None
                                       else {}),
                            **({"completion_tokens_details": ctd} if ctd is not None else {})},
    maybe_keys(["prompt_tokens", "completion_tokens", "total_tokens",
                "cache_read_input_tokens", "cache_creation_input_tokens"]),
    st.one_of(st.none(), maybe_keys(["cached_tokens", "cache_write_tokens",
                                     "cache_creation_tokens", "audio_tokens"]), st.just("x")),
    st.one_of(st.none(), maybe_keys(["reasoning_tokens"])),
)
anthropic_usage = st.builds(
    lambda base, cc: {**base, **({"cache_creation": cc} if cc is not None else {})},
    maybe_keys(["input_tokens", "output_tokens", "cache_read_input_tokens",
                "cache_creation_input_tokens"]),
    st.one_of(st.none(), maybe_keys(["ephemeral_5m_input_tokens",
                                     "ephemeral_1h_input_tokens"])),
)
responses_usage = st.builds(
    lambda base, itd, otd: {**base, "input_tokens_details": itd,
                            **({"output_tokens_details": otd} if otd is not None else {})},
    maybe_keys(["input_tokens", "output_tokens"]), maybe_keys(["cached_tokens"]),
    st.one_of(st.none(), maybe_keys(["reasoning_tokens"])),
)
gemini_usage = maybe_keys(["promptTokenCount", "candidatesTokenCount",
                           "cachedContentTokenCount", "thoughtsTokenCount", "totalTokenCount",
                           "toolUsePromptTokenCount"])
canonical = maybe_keys(["input_tokens", "cache_read_tokens", "cache_write_tokens",
                        "cache_write_1h_tokens", "output_tokens", "reasoning_tokens"])
usage_obj = st.one_of(openai_usage, anthropic_usage, responses_usage, gemini_usage, canonical,
                      st.builds(lambda a, b: {**a, **b}, openai_usage, anthropic_usage),
                      st.just("not an object"), st.none())


@st.composite
def event_props(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = {}
    model = draw(st.sampled_from(["claude-x", "o-x", "o-r", "plain", "search-x", "m", "embed-x",
                                  "multi", "mystery", "", 5, None, "__absent__"]))
    if model != "__absent__":
        props["model"] = model
    if draw(st.booleans()):
        props["usage"] = draw(usage_obj)
        if draw(st.integers(0, 9)) == 0:
            props["input_tokens"] = 1  # both: an error
    else:
        props.update(draw(canonical))
    batch = draw(st.sampled_from(["__absent__", True, False, "true", "FALSE", "maybe", None, 1]))
    if batch != "__absent__":
        props["batch"] = batch
    provider = draw(st.sampled_from(["__absent__", "a", "b", 7, None]))
    if provider != "__absent__":
        props["provider"] = provider
    return props


times = st.sampled_from([datetime(2026, 3, 2, tzinfo=UTC), MARCH_15 - timedelta(microseconds=1),
                         MARCH_15, datetime(2026, 3, 31, 23, 59, tzinfo=UTC)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["acme", "beta", "own-key"]), times, event_props()),
                min_size=1, max_size=40))
def test_sql_and_python_agree_on_any_mix_of_events(
        events: list[tuple[str, datetime, dict[str, Any]]]) -> None:
    con = new_db()
    rows = [(f"e{i}", c, at, dumps(p)) for i, (c, at, p) in enumerate(events)]
    insert(con, rows)
    want_costs, want_unpriced = expected(rows)
    got_costs, got_unpriced, r = actual(con, byok={"own-key"})
    assert got_unpriced == want_unpriced
    assert {c: v for c, v in got_costs.items() if v or c in want_costs} == {
        c: v for c, v in want_costs.items()}
    assert r.events == len(rows)
    own = [row for row in r.rows if row.customer == "own-key"]
    assert all(row.cost == 0 for row in own)


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}},
    {"input_tokens": 6, "cache_read_input_tokens": 4, "output_tokens": 2},
    {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 2},
    {"promptTokenCount": 10, "cachedContentTokenCount": 4, "candidatesTokenCount": 2},
])
def test_plain_usage_objects_take_the_sql_path(usage: dict[str, Any]) -> None:
    con = new_db()
    insert(con, [("e1", "a", datetime(2026, 3, 2, tzinfo=UTC),
                  dumps({"model": "claude-x", "usage": usage}))])
    r = cost_events(con.cursor(), BOOK, MARCH)
    assert r.python_events == 0
    # 6 uncached × 3 + 4 cached × 0.3 + 2 output × 15 per million
    assert r.cost == Decimal("0.0000492")


def test_a_coarser_grain_gives_the_same_totals() -> None:
    con = new_db()
    t = datetime(2026, 3, 2, tzinfo=UTC)
    insert(con, [(f"e{i}", "acme", t, dumps({"model": m, "input_tokens": 1000 * (i + 1)}))
                 for i, m in enumerate(["plain", "claude-x", "o-x", "plain"])])
    insert(con, [("bad", "acme", t, '{"model": "plain", "input_tokens": "10"}')])  # Python path
    fine = cost_events(con.cursor(), BOOK, MARCH)
    coarse = cost_events(con.cursor(), BOOK, MARCH, grain=("customer",))
    assert len(fine.rows) == 3 and len(coarse.rows) == 1
    (row,) = coarse.rows
    assert row.model is None and row.plan is None
    assert row.cost == fine.cost and row.requests == 5
    assert coarse.kinds == fine.kinds and sum(fine.kinds.values()) == fine.cost
    with pytest.raises(InvalidInput, match="grain"):
        cost_events(con.cursor(), BOOK, MARCH, grain=("model",))


# --------------------------------------------------------------------------- the day rollup

ROLL_BOOK = PriceBook.build([
    *[p for p in BOOK.all_prices() if p.model != "m"],
    # a price change in the middle of a day
    ModelPrice(model="m", rates=rates(input="1", output="2"),
               valid_to=datetime(2026, 3, 15, 13, 30, tzinfo=UTC)),
    ModelPrice(model="m", rates=rates(input="0.5", output="1"),
               valid_from=datetime(2026, 3, 15, 13, 30, tzinfo=UTC)),
])
roll_times = st.builds(lambda d, m: datetime(2026, 2, 27, tzinfo=UTC) + timedelta(
    days=d, minutes=m), st.integers(0, 34), st.integers(0, 1439))


def summary(r: Any) -> tuple[Any, ...]:
    rows = sorted((x.customer, x.plan, x.model, x.requests, x.tokens, x.cost, x.byok_cost)
                  for x in r.rows)
    unpriced = sorted((u.model, u.reason, u.events, u.customers) for u in r.unpriced)
    return rows, unpriced, r.events


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(st.sampled_from(["acme", "beta", "own-key"]), roll_times,
                                   event_props()), min_size=1, max_size=25),
                min_size=1, max_size=3),
       st.lists(st.integers(0, 80), max_size=6),
       st.sampled_from([MARCH, Window(datetime(2026, 3, 3, 17, tzinfo=UTC),
                                      datetime(2026, 3, 29, 6, 15, tzinfo=UTC))]))
def test_the_day_rollup_gives_exactly_what_reading_every_event_gives(
        batches: list[list[tuple[str, datetime, dict[str, Any]]]], voids: list[int],
        window: Window) -> None:
    import tempfile
    from pathlib import Path

    spans = [PlanSpan("acme", "lite", None, datetime(2026, 3, 9, 10, tzinfo=UTC)),
             PlanSpan("acme", "pro", datetime(2026, 3, 9, 10, tzinfo=UTC), None),
             PlanSpan("beta", "pro", datetime(2026, 3, 2, tzinfo=UTC), None)]
    con = new_db()
    with tempfile.TemporaryDirectory() as tmp:
        roll = Path(tmp) / "usage.costs.duckdb"
        n = 0
        for b, events in enumerate(batches):
            insert(con, [(f"e{n + i}", c, at, dumps(p)) for i, (c, at, p) in
                         enumerate(events)], batch=b)
            n += len(events)
            for v in voids[b::len(batches)]:
                con.execute("INSERT INTO voids VALUES (?)", [f"e{v}"])
            kw: dict[str, Any] = {"byok": ["own-key"], "spans": spans}
            direct = cost_events(con.cursor(), ROLL_BOOK, window, **kw)
            rolled = cost_events(con.cursor(), ROLL_BOOK, window, rollup=roll, **kw)
            assert rolled.rollup is not None
            assert summary(rolled) == summary(direct)


def test_a_new_price_book_with_other_thresholds_rebuilds_the_rollup(tmp_path: Any) -> None:
    con = new_db()
    t = datetime(2026, 3, 2, tzinfo=UTC)
    insert(con, [("e1", "a", t, dumps({"model": "claude-x", "input_tokens": 250_000}))])
    roll = tmp_path / "usage.costs.duckdb"
    first = cost_events(con.cursor(), BOOK, MARCH, rollup=roll)
    again = cost_events(con.cursor(), BOOK, MARCH, rollup=roll)
    assert first.rollup == {"rebuilt": 1, "new_rows": 1, "voided": 0}
    assert again.rollup == {"rebuilt": 0, "new_rows": 0, "voided": 0}
    assert first.cost == again.cost == Decimal("1.5")  # 250,000 × $6/M (above 200k)
    cheaper = PriceBook.build([ModelPrice(model="claude-x", rates=rates(input="3", output="15"),
                                          long_context=(LongContextTier(
                                              300_000, rates(input="9")),))])
    other = cost_events(con.cursor(), cheaper, MARCH, rollup=roll)
    assert other.rollup is not None and other.rollup["rebuilt"] == 1
    assert other.cost == Decimal("0.75")  # 250,000 × $3/M: below the new threshold
