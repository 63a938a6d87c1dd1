"""The overview shows MRR and ARR per currency and revenue by stream from analytics.revenue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ratecard.analytics.revenue import revenue_report
from ratecard.clock import utc_now
from ratecard.money import to_str
from ratecard.workspace import Workspace


@pytest.fixture(scope="module")
def client(demo_ws: Any) -> Iterator[TestClient]:
    from ratecard.api.app import create_app

    with TestClient(create_app(demo_ws.path), follow_redirects=False) as c:
        c.post("/dashboard/login", data={"key": demo_ws.read_key, "next": "/dashboard"})
        yield c


def test_overview_shows_mrr_arr_and_streams_per_currency(client: TestClient,
                                                         demo_ws: Any) -> None:
    from ratecard.store.state import session_scope

    html = client.get("/dashboard").text
    with session_scope(Workspace.open(demo_ws.path)) as s:
        rep = revenue_report(s, utc_now())
    assert rep.by_stream, "the demo has invoices"
    for cur in rep.by_stream:
        assert f'id="streams-{cur}"' in html
    assert rep.mrr, "the demo has paying subscriptions"
    for cur in rep.mrr:
        assert f'data-kpi="mrr-{cur}"' in html and f'data-kpi="arr-{cur}"' in html
    for cur, m in rep.mrr.items():
        assert rep.arr[cur] == m * 12
        assert to_str(m)
