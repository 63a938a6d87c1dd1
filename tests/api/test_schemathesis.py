"""Property-based tests of the whole API from its OpenAPI document (schemathesis).

Every operation gets generated inputs (valid ones and invalid ones: wrong types, missing
fields, odd strings and numbers) with an admin key, over a workspace holding a catalog,
customers, subscriptions, credits and invoices; no answer may be a 5xx, and every error
answer has the one error shape. Bounded: a few examples per operation, so the whole
run takes well under two minutes.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_support import EXAMPLES, Api, make_api
from hypothesis import HealthCheck, settings
from hypothesis.errors import Unsatisfiable

from ratecard.workspace import Workspace

MAX_EXAMPLES = {"positive": 10, "negative": 6}


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    mp = pytest.MonkeyPatch()
    mp.delenv("RATECARD_DATABASE_URL", raising=False)
    mp.delenv("RATECARD_USAGE_URL", raising=False)
    ws = Workspace.open(tmp_path_factory.mktemp("schemathesis") / "ws", create=True)
    api = make_api(ws)
    source = (EXAMPLES / "support_agent.yaml").read_text(encoding="utf-8")
    assert api.post("/v1/catalog", json={"source": source}).status_code == 200
    for c in ("cust-a", "cust-b"):
        r = api.post("/v1/subscriptions", json={"customer": c, "plan": "starter",
                                                "start": "2026-01-01"})
        assert r.status_code == 201, r.text
    api.post("/v1/customers/cust-a/credits/grants", json={"amount": "100"})
    yield api
    mp.undo()


@pytest.fixture(scope="module")
def api_schema(populated: Api) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return schemathesis.openapi.from_asgi("/openapi.json", populated.client.app)


def operations(schema: Any) -> list[Any]:
    out = []
    for result in schema.get_all_operations():
        out.append(result.ok())
    return out


def send(api: Api, case: Any) -> Any:
    """The case through the app's own client (a 5xx is answered, never raised)."""
    kw = case.as_transport_kwargs(base_url="http://testserver", headers=api.h("admin"))
    data = kw.pop("data", None)
    if data is not None:
        if isinstance(data, str | bytes):
            kw["content"] = data
        else:
            kw["data"] = data
    kw.pop("cookies", None)
    kw.pop("timeout", None)
    kw.pop("allow_redirects", None)
    kw.pop("verify", None)
    return api.client.request(**kw)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_makes_the_server_fail(api_schema: Any, populated: Api, mode: str) -> None:
    from hypothesis import given

    generation = schemathesis.GenerationMode(mode)
    failures: list[str] = []
    ops = operations(api_schema)
    assert len(ops) >= 30
    for op in ops:
        strategy = op.as_strategy(generation_mode=generation)

        @given(case=strategy)
        @settings(max_examples=MAX_EXAMPLES[mode], deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = send(populated, case)
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{where} -> {response.status_code}: {response.text[:300]}")
                return
            if response.status_code >= 400:
                body = json.loads(response.content)
                if set(body) != {"error", "detail"}:
                    failures.append(f"{where}: error body {body}")

        try:
            run()
        except Unsatisfiable:  # nothing to vary (no parameters), or no invalid form of it
            if generation == schemathesis.GenerationMode.POSITIVE:
                raise
    assert failures == []


def test_the_document_covers_every_domain(populated: Api) -> None:
    paths = populated.client.get("/openapi.json").json()["paths"]
    for prefix in ("/v1/catalog", "/v1/quotes", "/v1/customers", "/v1/subscriptions",
                   "/v1/invoices", "/v1/keys"):
        assert any(p.startswith(prefix) for p in paths), prefix
    assert Path(__file__).name == "test_schemathesis.py"
