"""``POST /v1/events``: single events, JSON and NDJSON batches, duplicates, rejections,
limits; the store then holds exactly what was acknowledged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from api_support import Api, apply_example


def now_iso(minutes_ago: int = 1) -> str:
    t = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return t.isoformat().replace("+00:00", "Z")


def event(i: int, customer: str = "cust-a", **props: object) -> dict[str, object]:
    return {"event_id": f"e-{i}", "type": "ticket.closed", "customer": customer,
            "timestamp": now_iso(), "properties": {"outcome": "resolved", **props}}


def stored_ids(api: Api) -> list[str]:
    from ratecard.api.usage import usage_store

    store = usage_store(api.client.app)
    return sorted(ev.event_id for ev in store.scan())


def test_single_event_batch_and_resend(api: Api) -> None:
    apply_example(api, "support_agent")
    r = api.post("/v1/events", who="ingest", json=event(1))
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": []}

    batch = [event(i) for i in range(2, 12)]
    r = api.post("/v1/events", who="ingest", json={"events": batch})
    assert r.json() == {"accepted": 10, "duplicates": 0, "rejected": []}
    # a client that lost the answer sends the same batch again: nothing is doubled
    r = api.post("/v1/events", who="ingest", json=batch)
    assert r.json() == {"accepted": 0, "duplicates": 10, "rejected": []}
    assert stored_ids(api) == sorted(f"e-{i}" for i in range(1, 12))


def test_rejections_name_the_event_and_the_reason(api: Api) -> None:
    apply_example(api, "support_agent")
    batch = [
        event(1),
        {"event_id": "e-2", "type": "ticket.closed", "customer": "cust-a",
         "timestamp": "yesterday"},
        {"type": "ticket.closed", "customer": "cust-a"},
        {"event_id": "e-4", "type": "ticket.closed", "customer": "cust-a",
         "timestamp": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        "not an event",
        event(6),
    ]
    r = api.post("/v1/events", who="ingest", json=batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    by_index = {x["index"]: x for x in body["rejected"]}
    assert sorted(by_index) == [2, 3, 4, 5]
    assert by_index[2]["event_id"] == "e-2" and "RFC 3339" in by_index[2]["reason"]
    assert "event_id" in by_index[3]["reason"]
    assert "future" in by_index[4]["reason"]
    assert "object" in by_index[5]["reason"]
    assert stored_ids(api) == ["e-1", "e-6"]


def test_ndjson_body(api: Api) -> None:
    lines = "\n".join(json.dumps(event(i)) for i in range(5)) + "\n\n"
    r = api.post("/v1/events", who="ingest", content=lines.encode(),
                 headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 5
    r = api.post("/v1/events", who="ingest", content=b'{"event_id": "x"\n{broken\n',
                 headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200
    assert [x["index"] for x in r.json()["rejected"]] == [1, 2]


def test_bad_bodies_are_4xx_never_5xx(sqlite_api: Api) -> None:
    api = sqlite_api
    cases: list[tuple[bytes, str, int]] = [
        (b"", "application/json", 422),
        (b"{not json", "application/json", 422),
        (b"42", "application/json", 422),
        (b'{"events": 5}', "application/json", 422),
        (b"[]", "application/json", 422),
        (b"\xff\xfe", "application/x-ndjson", 422),
        (b"[" * 100_000, "application/json", 422),
    ]
    for body, ctype, status in cases:
        r = api.post("/v1/events", who="ingest", content=body,
                     headers={"content-type": ctype})
        assert r.status_code == status, (body[:20], r.status_code, r.text)
        assert set(r.json()) == {"error", "detail"}


def test_a_batch_over_the_limit_is_refused_whole(sqlite_api: Api) -> None:
    api = sqlite_api
    over = [{"event_id": f"o-{i}", "type": "t", "customer": "c"} for i in range(10_001)]
    r = api.post("/v1/events", who="ingest", json=over)
    assert r.status_code == 422 and "at most 10,000" in r.json()["detail"]
    r = api.post("/v1/events", who="ingest", json=over[:10_000])
    assert r.status_code == 200 and r.json()["accepted"] == 10_000


def test_only_ingest_and_admin_keys_send_events(sqlite_api: Api) -> None:
    api = sqlite_api
    assert api.post("/v1/events", who="read", json=event(1)).status_code == 403
    assert api.post("/v1/events", who="portal:cust-a", json=event(1)).status_code == 403
    assert api.client.post("/v1/events", json=event(1)).status_code == 401
    assert api.post("/v1/events", who="admin", json=event(1)).status_code == 200


def test_exact_numbers_survive_the_trip(sqlite_api: Api) -> None:
    from decimal import Decimal

    from ratecard.api.usage import usage_store

    body = ('[{"event_id": "n1", "type": "sale", "customer": "cust-a", '
            '"properties": {"amount": 0.10000000000000000001, "big": 123456789012345678901}}]')
    r = sqlite_api.post("/v1/events", who="ingest", content=body.encode(),
                        headers={"content-type": "application/json"})
    assert r.json()["accepted"] == 1, r.text
    ev = next(iter(usage_store(sqlite_api.client.app).scan()))
    assert Decimal(str(ev.properties["amount"])) == Decimal("0.10000000000000000001")
    assert int(str(ev.properties["big"])) == 123456789012345678901


def test_checks_see_what_was_ingested_once(api: Api) -> None:
    apply_example(api, "coding_plan")
    assert api.post("/v1/customers", json={"id": "dev", "currency": "CNY"}).status_code == 201
    r = api.post("/v1/subscriptions", json={
        "customer": "dev", "plan": "lite",
        "start": (datetime.now(UTC) - timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.text

    def prompts(ids: range) -> list[dict[str, object]]:
        return [{"event_id": f"p-{i}", "type": "coding.prompt", "customer": "dev",
                 "timestamp": now_iso(), "properties": {"model": "glm-4.6",
                                                        "input_tokens": 10,
                                                        "output_tokens": 5}} for i in ids]

    def used() -> str:
        r = api.get("/v1/customers/dev/entitlements/prompts", who="ingest")
        assert r.status_code == 200, r.text
        return str(r.json()["used"])

    assert api.post("/v1/events", who="ingest", json=prompts(range(5))).json()["accepted"] == 5
    assert used() == "5"
    # resent: duplicates, counted once
    assert api.post("/v1/events", who="ingest", json=prompts(range(5))).json()["duplicates"] == 5
    assert used() == "5"
    # a batch mixing new events, old ones and one twice over
    mixed = prompts(range(3, 9)) + prompts(range(8, 9))
    body = api.post("/v1/events", who="ingest", json=mixed).json()
    assert (body["accepted"], body["duplicates"]) == (4, 3)
    assert used() == "9"


def test_usage_and_voids(api: Api) -> None:
    apply_example(api, "support_agent")
    batch = [event(i) for i in range(4)] + [
        {"event_id": "x-1", "type": "ticket.closed", "customer": "cust-a",
         "timestamp": now_iso(), "properties": {"outcome": "escalated"}}]
    assert api.post("/v1/events", who="ingest", json=batch).json()["accepted"] == 5
    start = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = api.get("/v1/customers/cust-a/usage", who="portal:cust-a",
                params={"meter": "resolutions", "from": start})
    assert r.status_code == 200, r.text
    (usage,) = r.json()["data"]
    assert (usage["meter"], usage["quantity"]) == ("resolutions", "4")
    every = api.get("/v1/customers/cust-a/usage", params={"from": start}).json()["data"]
    assert {u["meter"] for u in every} >= {"resolutions", "escalations"}
    assert api.get("/v1/customers/cust-b/usage", who="portal:cust-a").status_code == 403
    r = api.get("/v1/customers/cust-a/usage", params={"meter": "nope"})
    assert r.status_code == 404
    r = api.get("/v1/customers/cust-a/usage", params={"from": "2026-02-01", "to": "2026-01-01"})
    assert r.status_code == 422

    shown = api.get("/v1/events/e-1", who="read").json()
    assert shown["event_id"] == "e-1" and shown["voided_at"] is None
    r = api.post("/v1/events/e-1/void", json={"reason": "test traffic"})
    assert r.status_code == 200, r.text
    assert r.json()["void_reason"] == "test traffic" and r.json()["voided_at"]
    after = api.get("/v1/customers/cust-a/usage",
                    params={"meter": "resolutions", "from": start}).json()["data"][0]
    assert after["quantity"] == "3"
    assert api.get("/v1/events/nope").status_code == 404
    assert api.post("/v1/events/nope/void", json={"reason": "x"}).status_code == 404
    assert api.post("/v1/events/e-2/void", who="ingest",
                    json={"reason": "x"}).status_code == 403

