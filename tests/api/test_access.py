"""Access control on every route of the OpenAPI document.

For each operation under ``/v1``: no key is 401; every key role the operation does
not list in ``x-roles`` is 403; a portal token is 403 on a route that is not scoped
to a customer and 403 on another customer's route; the roles it lists get past the
door (neither 401 nor 403).
"""

from __future__ import annotations

import re
from typing import Any

from api_support import Api

KEY_ROLES = ("admin", "ingest", "read")
WRITE_METHODS = {"post", "put", "patch", "delete"}
# writes any non-admin key may make: sending events (ingest) and pure computations
NON_ADMIN_WRITES = {("post", "/v1/events"), ("post", "/v1/quotes")}


def operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    doc = api.client.get("/openapi.json").json()
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                out.append((method, path, op))
    return out


def concrete(path: str, customer: str = "cust-a") -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[0]
        if name == "customer":
            return customer
        if name in {"version", "id", "invoice_id", "subscription_id"}:
            return "1"
        return "x"

    return re.sub(r"\{([^}]+)\}", fill, path)


def call(api: Api, method: str, path: str, headers: dict[str, str]) -> int:
    kw: dict[str, Any] = {"headers": headers}
    if method in {"post", "put", "patch"}:
        kw["json"] = {}
    return api.client.request(method.upper(), path, **kw).status_code


def test_every_route_refuses_who_it_must(sqlite_api: Api) -> None:
    api = sqlite_api
    ops = [(m, p, op) for m, p, op in operations(api) if p.startswith("/v1/")
           and p != "/v1/health"]
    assert len(ops) >= 10
    checked_portal_scoped = 0
    for method, path, op in ops:
        where = f"{method.upper()} {path}"
        roles = set(op.get("x-roles", ()))
        assert roles and "admin" in roles, f"{where} declares no roles"
        if method in WRITE_METHODS and (method, path) not in NON_ADMIN_WRITES:
            assert roles == {"admin"}, f"{where} writes and must be admin-only, not {roles}"
        if "portal" in roles:
            assert method == "get" and path.startswith("/v1/customers/{customer}"), where
        url = concrete(path)

        assert call(api, method, url, {}) == 401, f"{where} without a key"
        assert call(api, method, url, {"Authorization": "Bearer rck_nope_nope"}) == 401, where
        assert call(api, method, url, {"Authorization": "Basic abc"}) == 401, where
        for role in KEY_ROLES:
            status = call(api, method, url, api.h(role))
            if role in roles:
                assert status not in (401, 403), f"{where} refused an allowed {role} key"
            else:
                assert status == 403, f"{where} let a {role} key in ({status})"
        other = call(api, method, url, api.h("portal:cust-b"))
        assert other in (403, 404), f"{where} let another customer's portal token in"
        own = call(api, method, url, api.h("portal:cust-a"))
        if "portal" in roles:
            checked_portal_scoped += 1
            assert own not in (401, 403), f"{where} refused the customer's own portal token"
        else:
            assert own == 403, f"{where} let a portal token in ({own})"
    # a customer's own pages: itself, subscriptions, invoices (+ HTML, PDF), usage,
    # credits and ledger, entitlements and checks
    assert checked_portal_scoped >= 10


def test_unknown_routes_need_a_key_and_answer_json_404(sqlite_api: Api) -> None:
    api = sqlite_api
    assert api.client.get("/v1/no-such-thing").status_code == 401
    r = api.get("/v1/no-such-thing")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    r = api.get("/v1/no-such-thing", who="portal:cust-a")
    assert r.status_code == 403


def test_revoked_key_stops_at_once(sqlite_api: Api) -> None:
    api = sqlite_api
    r = api.post("/v1/keys", json={"role": "read", "name": "tmp"})
    assert r.status_code == 201
    created = r.json()
    token, key_id = created["token"], created["key_id"]
    h = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/plans", headers=h).status_code == 200
    assert api.client.request("DELETE", f"/v1/keys/{key_id}",
                              headers=api.h("admin")).status_code == 200
    r = api.client.get("/v1/plans", headers=h)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


def test_a_tampered_token_is_refused(sqlite_api: Api) -> None:
    api = sqlite_api
    token = api.tokens["admin"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = api.client.get("/v1/plans", headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = api.client.get("/v1/plans", headers={"X-API-Key": token})
    assert r.status_code == 200


def test_keys_are_stored_hashed(sqlite_api: Api) -> None:
    from sqlalchemy import select

    from ratecard.store.api_models import ApiKeyRow
    from ratecard.store.state import session_scope

    with session_scope(sqlite_api.ws) as s:
        rows = s.scalars(select(ApiKeyRow)).all()
    stored = {r.secret_hash for r in rows} | {r.key_id for r in rows}
    assert len(rows) == 5
    for token in sqlite_api.tokens.values():
        assert token not in stored
        assert all(token not in v for v in stored)
    listed = sqlite_api.get("/v1/keys").json()["data"]
    assert len(listed) == 5 and all("token" not in k for k in listed)
