"""Who sees which page: every dashboard route wants an admin or read key; the portal shows
its token's customer only; no page loads anything from another origin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from ratecard.web.routes import router

SAMPLE = {"customer_id": "nobody", "code": "api_payg", "ref": "1", "fmt": "html",
          "name": "app.css"}
PUBLIC = {"/dashboard/login", "/dashboard/static/{name}"}


@pytest.fixture(scope="module")
def client(demo_ws: Any) -> Iterator[TestClient]:
    from ratecard.api.app import create_app

    with TestClient(create_app(demo_ws.path), follow_redirects=False) as c:
        yield c


def dashboard_gets() -> list[str]:
    out = []
    for r in router.routes:
        if isinstance(r, Route) and "GET" in (r.methods or set()) and \
                r.path.startswith("/dashboard") and r.path not in PUBLIC:
            out.append(re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE[m.group(1)], r.path))
    return out


def signed_in(client: TestClient, key: str) -> TestClient:
    client.cookies.clear()
    r = client.post("/dashboard/login", data={"key": key, "next": "/dashboard/plans"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/dashboard/plans"
    return client


def test_the_walk_covers_every_page() -> None:
    paths = dashboard_gets()
    assert len(paths) >= 10
    assert "/dashboard" in paths and "/dashboard/customers/nobody" in paths


def test_every_dashboard_page_needs_a_key(client: TestClient) -> None:
    client.cookies.clear()
    for path in dashboard_gets():
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/dashboard/login?next="), path
    client.cookies.set("ratecard_key", "rck_deadbeef_not-a-key", path="/dashboard")
    for path in dashboard_gets():
        assert client.get(path).status_code == 303, path


@pytest.mark.parametrize("which", ["ingest_key", "portal_token"])
def test_other_credentials_are_refused(client: TestClient, demo_ws: Any, which: str) -> None:
    client.cookies.clear()
    r = client.post("/dashboard/login", data={"key": getattr(demo_ws, which)})
    assert r.status_code == 403
    assert "needs an admin or read key" in r.text
    client.cookies.set("ratecard_key", getattr(demo_ws, which), path="/dashboard")
    for path in dashboard_gets():
        assert client.get(path).status_code == 403, path


def test_a_wrong_key_stays_on_the_sign_in_page(client: TestClient) -> None:
    client.cookies.clear()
    r = client.post("/dashboard/login", data={"key": "rck_0000_wrong"})
    assert r.status_code == 401 and "not valid" in r.text
    assert "set-cookie" not in r.headers


def test_read_key_sees_every_page(client: TestClient, demo_ws: Any) -> None:
    signed_in(client, demo_ws.read_key)
    for path in dashboard_gets():
        r = client.get(path)
        expected = 404 if "nobody" in path else 200
        assert r.status_code == expected, (path, r.text[:300])
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        if r.headers["content-type"].startswith("text/html") and "document" not in path:
            assert not re.search(r'(src|href)="(https?:)?//', r.text), path  # no CDN
    assert client.get("/dashboard/invoices/1/document.pdf").content.startswith(b"%PDF")


def test_cookie_is_http_only_and_sign_out_forgets_it(client: TestClient, demo_ws: Any) -> None:
    client.cookies.clear()
    r = client.post("/dashboard/login", data={"key": demo_ws.admin_key})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    r = client.post("/dashboard/logout")
    assert r.status_code == 303 and 'ratecard_key=""' in r.headers["set-cookie"]


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/portal",
                                    "/dashboard\r\nX: y"])
def test_no_open_redirect_after_sign_in(client: TestClient, demo_ws: Any, target: str) -> None:
    client.cookies.clear()
    r = client.post("/dashboard/login", data={"key": demo_ws.read_key, "next": target})
    assert r.headers["location"] == "/dashboard"


def test_static_files_cannot_escape_their_folder(client: TestClient) -> None:
    assert client.get("/dashboard/static/app.css").status_code == 200
    assert client.get("/dashboard/static/app.js").status_code == 200
    for bad in ("..%2Fviews.py", ".hidden", "%2E%2E%2Froutes.py", "nope.css"):
        assert client.get(f"/dashboard/static/{bad}").status_code == 404, bad


def test_portal_link_sets_a_cookie_and_shows_that_customer_only(client: TestClient,
                                                                 demo_ws: Any) -> None:
    client.cookies.clear()
    assert client.get("/portal").status_code == 401
    r = client.get("/portal", params={"token": "rcp_00_nope"})
    assert r.status_code == 401
    r = client.get("/portal", params={"token": demo_ws.admin_key})
    assert r.status_code == 403  # an API key is not a portal link
    r = client.get("/portal", params={"token": demo_ws.portal_token})
    assert r.status_code == 303 and r.headers["location"] == "/portal"
    assert "path=/portal" in r.headers["set-cookie"].lower()
    page = client.get("/portal")
    assert page.status_code == 200
    assert f'data-portal-customer="{demo_ws.portal_customer}"' in page.text
    assert demo_ws.other_customer not in page.text
    # the portal cookie opens no dashboard page
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_portal_documents_are_the_customers_own(client: TestClient, demo_ws: Any) -> None:
    from ratecard.billing.invoices import list_invoices
    from ratecard.store.state import session_scope
    from ratecard.workspace import Workspace

    with session_scope(Workspace.open(demo_ws.path)) as s:
        mine = [i for i in list_invoices(s, customer=demo_ws.portal_customer)]
        theirs = [i for i in list_invoices(s, customer=demo_ws.other_customer)]
    assert mine and theirs
    client.cookies.clear()
    client.get("/portal", params={"token": demo_ws.portal_token})
    own = client.get(f"/portal/invoices/{mine[0]['id']}/document.pdf")
    assert own.status_code == 200 and own.content.startswith(b"%PDF")
    for ref in (theirs[0]["id"], theirs[0]["number"] or "x", "999999"):
        r = client.get(f"/portal/invoices/{ref}/document.pdf")
        assert r.status_code == 404, ref
        assert not r.content.startswith(b"%PDF")
