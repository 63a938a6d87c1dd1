"""The dashboard and the portal in headless Chromium: pages load, charts draw, numbers agree.

The numbers a page shows are read back from the DOM and compared with what the API
answers for the same thing, so a page can never drift from ``/v1``. Screenshots go to
``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ratecard.web.render import money, qty

pytestmark = pytest.mark.browser

DASHBOARD_PAGES = ("overview", "customers", "plans", "invoices", "usage", "margins", "credits")


def api(base: str, path: str, token: str) -> Any:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def api_all(base: str, path: str, token: str) -> list[Any]:
    out: list[Any] = []
    cursor = None
    while True:
        sep = "&" if "?" in path else "?"
        body = api(base, f"{path}{sep}limit=1000" + (f"&cursor={cursor}" if cursor else ""),
                   token)
        out.extend(body["data"])
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def sign_in(browser: Any, base: str, key: str) -> None:
    browser.goto(f"{base}/dashboard/login")
    browser.submit(f"document.querySelector('#key').value = {key!r};"
                   "document.querySelector('form').submit()")


def chart_marks(browser: Any, *, first_only: bool = False) -> list[dict[str, str]]:
    """The data marks of the page's charts (or of its first chart only)."""
    charts = ("[document.querySelector('svg.chart')].filter(Boolean)" if first_only
              else "Array.from(document.querySelectorAll('svg.chart'))")
    return list(browser.eval(
        f"{charts}.flatMap(c => Array.from(c.querySelectorAll('[data-value]'))).map(e => ({{"
        "series: e.getAttribute('data-series'), label: e.getAttribute('data-label'),"
        "value: e.getAttribute('data-value')}))"))


def test_dashboard_pages_render_and_agree_with_the_api(chromium: Any, live_server: Any,
                                                       demo_ws: Any, artifacts: Path) -> None:
    base = live_server.url
    chromium.goto(f"{base}/dashboard")
    assert "/dashboard/login" in chromium.url  # no key: the sign-in page
    sign_in(chromium, base, demo_ws.admin_key)
    assert chromium.url.rstrip("/").endswith("/dashboard")
    for name in DASHBOARD_PAGES:
        path = "/dashboard" if name == "overview" else f"/dashboard/{name}"
        chromium.goto(base + path)
        assert chromium.eval("document.querySelector('h1') !== null"), name
        chromium.screenshot(artifacts / f"dashboard-{name}.png")

    # customers: the same people as GET /v1/customers
    customers = api_all(base, "/v1/customers", demo_ws.read_key)
    chromium.goto(f"{base}/dashboard/customers?page=1")
    shown = chromium.eval("document.querySelector('.sub').textContent")
    assert f"{len(customers)} customers" in shown
    rows = chromium.eval("Array.from(document.querySelectorAll('#customers tbody tr'))"
                         ".map(r => r.getAttribute('data-customer'))")
    assert set(rows) <= {c["id"] for c in customers} and len(rows) == min(50, len(customers))

    # invoices: every total on the page equals the API's invoice
    chromium.goto(f"{base}/dashboard/invoices")
    listed = chromium.eval(
        "Array.from(document.querySelectorAll('#invoices tbody tr')).map(r => ["
        "r.getAttribute('data-invoice'), r.querySelector('td.num').textContent.trim()])")
    assert listed
    for inv_id, text in listed[:15]:
        inv = api(base, f"/v1/invoices/{inv_id}", demo_ws.read_key)
        assert text == money(inv["total"], inv["currency"]), inv_id
    inv_id = listed[0][0]
    chromium.goto(f"{base}/dashboard/invoices/{inv_id}")
    inv = api(base, f"/v1/invoices/{inv_id}", demo_ws.read_key)
    page_total = chromium.eval("document.querySelector('[data-invoice-total]').textContent")
    assert page_total.strip() == money(inv["total"], inv["currency"])
    n_lines = chromium.eval("document.querySelectorAll('#invoice-lines tbody tr').length")
    assert n_lines == len(inv["lines"])
    chromium.screenshot(artifacts / "dashboard-invoice.png")

    # plans: subscribers chart has one bar per plan, with the page's numbers
    chromium.goto(f"{base}/dashboard/plans")
    plans = api_all(base, "/v1/plans", demo_ws.read_key)
    marks = chart_marks(chromium)
    assert {m["label"] for m in marks} == {p.get("code") or p.get("plan") for p in plans}
    assert sum(int(m["value"]) for m in marks) > 0

    # usage explorer: a chart with data (when this build can ingest events)
    chromium.goto(f"{base}/dashboard/usage?meter=prompts&window=30d")
    # the first chart is usage over time; the second ranks the top customers
    marks = chart_marks(chromium, first_only=True)
    if demo_ws.result.events == 0:
        assert chromium.eval("document.querySelector('svg[data-chart=empty]') !== null")
        return
    assert marks and any(m["value"] != "0" for m in marks)
    total = chromium.eval("document.querySelector('[data-usage-total]')"
                          ".getAttribute('data-usage-total')")
    assert sum(int(m["value"]) for m in marks if m["series"] == "prompts") == int(total)
    chromium.screenshot(artifacts / "dashboard-usage-prompts.png")


def test_portal_shows_one_customer_and_agrees_with_the_api(chromium: Any, live_server: Any,
                                                           demo_ws: Any,
                                                           artifacts: Path) -> None:
    base = live_server.url
    customer, token = demo_ws.portal_customer, demo_ws.portal_token
    chromium.goto(f"{base}/portal?token={token}")
    assert chromium.url.endswith("/portal")  # the token left the address bar
    shown = chromium.eval("document.querySelector('[data-portal-customer]')"
                          ".getAttribute('data-portal-customer')")
    assert shown == customer
    problems = chromium.eval("Array.from(document.querySelectorAll('.notice-error'))"
                             ".map(e => e.textContent)")
    assert problems == []
    chromium.screenshot(artifacts / "portal.png")

    # invoices: the portal's list is the API's, total for total
    theirs = api_all(base, f"/v1/customers/{customer}/invoices", token)
    want = {str(i["id"]): money(i["total"], i["currency"]) for i in theirs
            if i["status"] != "draft"}
    rows = chromium.eval(
        "Array.from(document.querySelectorAll('#portal-invoices tbody tr[data-invoice]'))"
        ".map(r => [r.getAttribute('data-invoice'), r.querySelector('[data-total]')"
        ".textContent.trim()])")
    assert dict(rows) == want

    # limits: each window as the API's check answers it, with its exact reset time
    limits = chromium.eval(
        "Array.from(document.querySelectorAll('[data-limit-feature]')).map(e => ({"
        "feature: e.getAttribute('data-limit-feature'), window: e.getAttribute("
        "'data-limit-window'), used: e.querySelector('[data-used]').textContent,"
        "cap: e.querySelector('[data-cap]').textContent, resets: (e.querySelector("
        "'[data-resets]') || {getAttribute: () => null}).getAttribute('datetime')}))")
    assert limits, "a coding-plan customer has prompt limits"
    for lim in limits:
        check = api(base, f"/v1/customers/{customer}/entitlements/{lim['feature']}", token)
        windows = {w["window"]: w for w in check.get("windows", [])}
        w = windows[lim["window"]]
        assert lim["used"] == qty(w["used"]) and lim["cap"] == qty(w["limit"])
        assert lim["resets"] == w["resets_at"]
    bars = chromium.eval("document.querySelectorAll('svg.chart-meter [data-value]').length")
    assert bars == len(limits)

    # another customer's document is not reachable with this token
    other = api_all(base, f"/v1/customers/{demo_ws.other_customer}/invoices",
                    demo_ws.read_key)
    chromium.goto(f"{base}/portal/invoices/{other[0]['id']}/document.html")
    assert chromium.eval("document.title").startswith("Not found")
