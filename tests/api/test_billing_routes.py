"""Customers, subscriptions, entitlement checks and credits over HTTP, on SQLite and
PostgreSQL, each answer checked against the service it wraps."""

from __future__ import annotations

from api_support import Api, apply_example

from ratecard.credits import service as credits
from ratecard.entitlements import service as entitlements
from ratecard.store.state import session_scope


def test_customer_subscription_and_check(api: Api) -> None:
    apply_example(api, "coding_plan")
    r = api.post("/v1/customers", json={"id": "dev-1", "name": "Dev One", "currency": "CNY",
                                        "timezone": "Asia/Shanghai"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "dev-1" and r.json()["currency"] == "CNY"
    r = api.post("/v1/customers", json={"id": "dev-1"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = api.post("/v1/customers", json={"id": "bad id with spaces"})
    assert r.status_code == 422

    r = api.post("/v1/subscriptions", json={"customer": "dev-1", "plan": "lite",
                                            "start": "2026-01-01"})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert (sub["plan"], sub["version"], sub["customer"]) == ("lite", 1, "dev-1")

    shown = api.get("/v1/customers/dev-1").json()
    assert [s["id"] for s in shown["subscriptions"]] == [sub["id"]]
    assert api.get(f"/v1/subscriptions/{sub['id']}", who="read").json()["plan"] == "lite"
    listed = api.get("/v1/subscriptions", params={"customer": "dev-1"}).json()["data"]
    assert [s["id"] for s in listed] == [sub["id"]]

    r = api.get("/v1/customers/dev-1/entitlements/prompts", who="ingest",
                params={"quantity": "5"})
    assert r.status_code == 200, r.text
    answer = r.json()
    with session_scope(api.ws) as s:
        direct = entitlements.check(s, "dev-1", "prompts", quantity="5").to_dict()
    assert answer == direct and answer["allowed"] is True
    r = api.get("/v1/customers/dev-1/entitlements/prompts", params={"quantity": "121"})
    assert r.json()["allowed"] is False
    r = api.get("/v1/customers/dev-1/entitlements/models", params={"value": "gpt-4o"})
    assert r.json()["allowed"] is False
    r = api.get("/v1/customers/dev-1/entitlements/prompts", params={"quantity": "lots"})
    assert r.status_code == 422
    r = api.get("/v1/customers/nobody/entitlements/prompts")
    assert r.status_code == 404

    ents = api.get("/v1/customers/dev-1/entitlements").json()["data"]
    assert {e["feature"] for e in ents} >= {"prompts", "models"}

    r = api.post("/v1/customers/dev-1/overrides",
                 json={"feature": "prompts", "value": {"meter": "prompts", "limits": [
                     {"limit": 500, "window": "5h"}]}, "note": "pilot"})
    assert r.status_code == 201, r.text
    ovr = r.json()
    assert api.get("/v1/customers/dev-1/entitlements/prompts",
                   params={"quantity": "300"}).json()["allowed"] is True
    assert [o["id"] for o in api.get("/v1/customers/dev-1/overrides").json()["data"]] == [
        ovr["id"]]
    assert api.post(f"/v1/customers/cust-a/overrides/{ovr['id']}/end").status_code == 404
    r = api.post(f"/v1/customers/dev-1/overrides/{ovr['id']}/end")
    assert r.status_code == 200 and r.json()["ends_at"] is not None

    r = api.post(f"/v1/subscriptions/{sub['id']}/change", json={"plan": "pro", "when": "now"})
    assert r.status_code == 200, r.text
    r = api.post(f"/v1/subscriptions/{sub['id']}/cancel", json={"when": "now"})
    assert r.status_code == 200, r.text
    assert api.get("/v1/subscriptions/999").status_code == 404


def test_credits_over_http_match_the_wallet(api: Api) -> None:
    apply_example(api, "llm_api")
    r = api.post("/v1/customers/cust-a/credits/grants",
                 json={"amount": "50", "source": "promotion", "key": "welcome"})
    assert r.status_code == 201, r.text
    again = api.post("/v1/customers/cust-a/credits/grants",
                     json={"amount": "50", "source": "promotion", "key": "welcome"})
    assert again.json()["id"] == r.json()["id"]  # idempotent by key
    r = api.post("/v1/customers/cust-a/credits/purchases",
                 json={"pack": "growth", "reference": "order-1"})
    assert r.status_code == 201, r.text
    assert (r.json()["credits"], r.json()["bonus"]) == ("500", "75")
    r = api.post("/v1/customers/cust-a/credits/burns", json={"amount": "60", "reference": "b1"})
    assert r.status_code == 201 and r.json()["covered"] == "60"
    r = api.post("/v1/customers/cust-a/credits/burns", json={"amount": "100000"})
    assert r.status_code == 409 and r.json()["error"] == "insufficient_credits"

    bal = api.get("/v1/customers/cust-a/credits", who="portal:cust-a").json()
    with session_scope(api.ws) as s:
        direct = credits.balance(s, "cust-a")
    assert bal["available"] == "565" == str(direct.available)
    ledger = api.get("/v1/customers/cust-a/credits/ledger", params={"limit": 2}).json()
    assert len(ledger["data"]) == 2 and ledger["next_cursor"]
    rest = api.get("/v1/customers/cust-a/credits/ledger",
                   params={"cursor": ledger["next_cursor"], "limit": 100}).json()["data"]
    seqs = [e["seq"] for e in ledger["data"] + rest]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) >= 4
    assert sum(int(e["amount"]) for e in ledger["data"] + rest) == 565

    gid = again.json()["id"]
    r = api.post(f"/v1/customers/cust-a/credits/grants/{gid}/void", json={"reason": "test"})
    assert r.status_code == 200 and r.json()["voided_at"]
    assert api.get("/v1/customers/nobody/credits").status_code == 404


def test_portal_token_sees_only_its_own_customer(api: Api) -> None:
    apply_example(api, "support_agent")
    for c in ("cust-a", "cust-b"):
        assert api.post("/v1/subscriptions", json={"customer": c, "plan": "starter"}
                        ).status_code == 201
    own = api.get("/v1/customers/cust-a", who="portal:cust-a")
    assert own.status_code == 200 and own.json()["id"] == "cust-a"
    assert api.get("/v1/customers/cust-b", who="portal:cust-a").status_code == 403
    assert api.get("/v1/customers/cust-a/subscriptions",
                   who="portal:cust-a").json()["data"][0]["customer"] == "cust-a"
    assert api.get("/v1/customers", who="portal:cust-a").status_code == 403
    assert api.get("/v1/subscriptions", who="portal:cust-a").status_code == 403
    r = api.get("/v1/customers/cust-a/entitlements/channels", who="portal:cust-a",
                params={"value": "chat"})
    assert r.json()["allowed"] is True
    assert api.get("/v1/customers/cust-b/entitlements/channels",
                   who="portal:cust-a").status_code == 403
    # a portal token changes nothing, not even its own customer
    r = api.post("/v1/customers/cust-a/credits/grants", who="portal:cust-a",
                 json={"amount": "5"})
    assert r.status_code == 403
