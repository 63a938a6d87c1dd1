"""API test helpers: an app over a fresh workspace, its client and one token per role.

``api`` (parametrised through ``state_url``) gives a :class:`Api`: an HTTP client on the
app, the workspace, and one token per role (``api.h("admin")`` is the header dict).
Customers ``cust-a`` and ``cust-b`` exist, each with a portal token.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from ratecard.api import keys
from ratecard.api.app import create_app
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CUSTOMERS = ("cust-a", "cust-b")


@dataclass
class Api:
    client: TestClient
    ws: Workspace
    tokens: dict[str, str] = field(default_factory=dict)

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, path: str, who: str = "admin", **kw: Any) -> httpx.Response:
        return self.client.get(path, headers={**self.h(who), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, who: str = "admin", **kw: Any) -> httpx.Response:
        return self.client.post(path, headers={**self.h(who), **kw.pop("headers", {})}, **kw)


def add_customer(ws: Workspace, external_id: str, currency: str = "USD") -> None:
    try:
        from ratecard.billing.customers import create_customer
    except ImportError:  # pragma: no cover - the billing service is there
        create_customer = None
    with session_scope(ws) as s:
        if create_customer is not None:
            create_customer(s, external_id, currency=currency)
        else:  # pragma: no cover
            from ratecard.store.models import CustomerRow

            s.add(CustomerRow(external_id=external_id, name=external_id, currency=currency,
                              timezone="UTC", metadata_={}, byok=False,
                              created_at=datetime.now(UTC)))


def make_api(ws: Workspace, **app_kw: object) -> Api:
    app = create_app(ws, **app_kw)  # type: ignore[arg-type]
    client = TestClient(app, raise_server_exceptions=False)
    api = Api(client=client, ws=ws)
    for c in CUSTOMERS:
        add_customer(ws, c)
    with session_scope(ws) as s:
        for role in keys.KEY_ROLES:
            api.tokens[role] = keys.create_key(s, role, f"test {role}").token
        for c in CUSTOMERS:
            api.tokens[f"portal:{c}"] = keys.create_portal_token(s, c).token
    return api


def apply_example(api: Api, name: str = "support_agent") -> dict[str, object]:
    source = (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")
    r = api.post("/v1/catalog", json={"source": source})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]
