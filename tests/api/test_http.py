"""The HTTP layer: one error shape, size limits, pagination, exact money."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import Api, apply_example, make_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratecard.api.http import decode_cursor, dumps, encode_cursor, paginate
from ratecard.errors import InvalidInput
from ratecard.workspace import Workspace


def is_error(body: object, code: str | None = None) -> bool:
    return (isinstance(body, dict) and set(body) == {"error", "detail"}
            and isinstance(body["detail"], str) and body["detail"] != ""
            and (code is None or body["error"] == code))


def test_malformed_json_wrong_types_and_missing_fields_are_422(sqlite_api: Api) -> None:
    api = sqlite_api
    r = api.post("/v1/quotes", content=b'{"plan": ',
                 headers={"content-type": "application/json"})
    assert r.status_code == 422 and is_error(r.json(), "invalid_input")
    assert "JSON" in r.json()["detail"]
    r = api.post("/v1/quotes", json={"plan": 12, "seats": "many"})
    assert r.status_code == 422 and is_error(r.json(), "invalid_input")
    assert "body.plan" in r.json()["detail"] and "body.seats" in r.json()["detail"]
    r = api.post("/v1/quotes", json={})
    assert r.status_code == 422 and "body.plan" in r.json()["detail"]
    r = api.post("/v1/quotes", json=[1, 2])
    assert r.status_code == 422 and is_error(r.json())
    r = api.post("/v1/keys", json={"role": "root"})
    assert r.status_code == 422 and "body.role" in r.json()["detail"]


def test_unknown_route_and_wrong_method(sqlite_api: Api) -> None:
    r = sqlite_api.get("/v1/nope")
    assert r.status_code == 404 and is_error(r.json(), "not_found")
    r = sqlite_api.client.request("PUT", "/v1/catalog", headers=sqlite_api.h("admin"))
    assert r.status_code == 405 and is_error(r.json(), "method_not_allowed")
    r = sqlite_api.client.get("/nowhere")
    assert r.status_code == 404 and is_error(r.json(), "not_found")


def test_oversized_body_is_a_clear_413(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RATECARD_DATABASE_URL", raising=False)
    api = make_api(Workspace.open(tmp_path / "ws", create=True), max_body=1000)
    body = b'{"plan": "' + b"x" * 2000 + b'"}'
    r = api.post("/v1/quotes", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and is_error(r.json(), "payload_too_large")
    assert "1,000 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * 500

    r = api.client.post("/v1/quotes", content=chunks(), headers=api.h("admin"))
    assert r.status_code == 413 and is_error(r.json(), "payload_too_large")


def test_absurd_numbers_are_refused_not_crashed(sqlite_api: Api) -> None:
    apply_example(sqlite_api)
    for q in ("1e999999999", "-1", "NaN", "abc", [1, "x"], {"a": 1}):
        r = sqlite_api.post("/v1/quotes", json={"plan": "pro", "usage": {"resolutions": q}})
        assert r.status_code == 422, (q, r.text)
        assert is_error(r.json())


def test_lists_paginate_with_a_cursor(sqlite_api: Api) -> None:
    api = sqlite_api
    for i in range(7):
        assert api.post("/v1/keys", json={"role": "read", "name": f"k{i}"}).status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/v1/keys", params=params).json()
        assert len(body["data"]) <= 3
        seen += [k["key_id"] for k in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 12  # 5 from the fixture + 7
    assert pages == 4
    r = api.get("/v1/keys", params={"cursor": "%%%"})
    assert r.status_code == 422 and is_error(r.json(), "invalid_input")
    r = api.get("/v1/keys", params={"limit": 5000})
    assert r.status_code == 422


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=50), unique=True),
       st.integers(min_value=1, max_value=10))
def test_pages_cover_every_item_once_in_order(items: list[int], limit: int) -> None:
    out: list[int] = []
    cursor = None
    for _ in range(100):
        chunk, cursor = paginate(items, lambda x: x, limit, cursor)
        assert len(chunk) <= limit
        out += chunk
        if cursor is None:
            break
    assert out == sorted(items)


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(["2026-01-01T00:00:00Z", "k1"])) == [
        "2026-01-01T00:00:00Z", "k1"]
    with pytest.raises(InvalidInput):
        decode_cursor("!!!")


def test_money_is_written_as_exact_strings() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    assert dumps({"a": Decimal("0.10"), "t": datetime(2026, 1, 1, tzinfo=UTC)}) == (
        b'{"a":"0.10","t":"2026-01-01T00:00:00Z"}')
    assert dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'


def test_openapi_documents_errors_security_and_roles(sqlite_api: Api) -> None:
    doc = sqlite_api.client.get("/openapi.json").json()
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
    op = doc["paths"]["/v1/plans"]["get"]
    assert op["security"] == [{"bearer": []}]
    assert set(op["x-roles"]) == {"admin", "read"}
    assert "401" in op["responses"] and "403" in op["responses"]
    assert "security" not in doc["paths"]["/v1/health"]["get"]
