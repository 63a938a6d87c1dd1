"""Reading an HTTP event batch into the store's lines (no per-event validation here)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.api.batch import MAX_BATCH, parse_body, risky
from ratecard.errors import InvalidInput


def test_the_three_json_shapes_and_ndjson_give_the_same_lines() -> None:
    evs = [{"event_id": f"e{i}", "type": "t", "customer": "c", "properties": {"n": i}}
           for i in range(3)]
    a = parse_body(json.dumps(evs).encode(), "application/json")
    b = parse_body(json.dumps({"events": evs}).encode(), "application/json; charset=utf-8")
    c = parse_body("\n\n".join(json.dumps(e) for e in evs).encode(), "application/x-ndjson")
    assert [json.loads(r) for r in a.table.column("raw").to_pylist()] == evs
    assert a.table.column("raw").to_pylist() == b.table.column("raw").to_pylist()
    assert [json.loads(r) for r in c.table.column("raw").to_pylist()] == evs
    assert a.table.column("line").to_pylist() == [1, 2, 3]
    assert c.table.column("line").to_pylist() == [1, 3, 5]  # NDJSON: physical lines
    one = parse_body(json.dumps(evs[0]).encode(), None)
    assert one.single and one.count == 1


@pytest.mark.parametrize("body", [b"", b"  ", b"{", b"nul", b"3", b'"x"', b"[]",
                                  b'{"events": {}}', b"[" * 5000])
def test_bodies_that_hold_no_batch(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_body(body, "application/json")


def test_the_limit_is_10000_events() -> None:
    ok = "\n".join("{}" for _ in range(MAX_BATCH)).encode()
    assert parse_body(ok, "application/x-ndjson").count == MAX_BATCH
    with pytest.raises(InvalidInput, match="at most 10,000"):
        parse_body(ok + b"\n{}", "application/x-ndjson")
    with pytest.raises(InvalidInput, match="at most 10,000"):
        parse_body(json.dumps([{}] * (MAX_BATCH + 1)).encode(), "application/json")


def test_numbers_a_float_cannot_hold_stay_exact() -> None:
    body = b'[{"v": 0.12345678901234567891, "w": 1e-400, "big": 99999999999999999999999}]'
    assert risky(body)
    b = parse_body(body, "application/json")
    assert b.exact
    raw = b.table.column("raw").to_pylist()[0]
    assert "0.12345678901234567891" in raw and "99999999999999999999999" in raw
    assert not risky(b'{"v": 0.5, "id": "abc", "t": "2026-01-01T00:00:00.123456Z"}')


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_batch_or_a_clear_refusal(body: bytes) -> None:
    for ctype in ("application/json", "application/x-ndjson"):
        try:
            b = parse_body(body, ctype)
        except InvalidInput as e:
            assert str(e)
        else:
            assert 1 <= b.count <= MAX_BATCH == 10_000
