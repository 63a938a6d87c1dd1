"""The SDK against a real server on loopback: check, quote, errors, and event batching."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdk_support import Live

from ratecard.client import ApiError, Client

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def apply(live: Live, name: str) -> None:
    with Client(live.url, live.tokens["admin"]) as c:
        c.post("/v1/catalog", {"source": (EXAMPLES / f"{name}.yaml").read_text()})


def test_quote_and_check(server: Live) -> None:
    apply(server, "support_agent")
    with Client(server.url, server.tokens["admin"]) as admin:
        admin.post("/v1/subscriptions", {"customer": "cust-a", "plan": "starter"})
    with Client(server.url, server.tokens["ingest"]) as c:
        q = c.quote("starter", {"resolutions": 350})
        assert q["total"] == "392.50"
        r = c.check("cust-a", "channels", value="chat")
        assert r["allowed"] is True
        r = c.check("cust-a", "channels", value="voice")
        assert r["allowed"] is False
        with pytest.raises(ApiError) as e:
            c.check("nobody", "channels")
        assert e.value.http_status == 404 and e.value.code == "not_found"
        with pytest.raises(ApiError) as e:
            c.get("/v1/customers")  # an ingest key reads nothing
        assert e.value.http_status == 403


def test_a_wrong_key_is_an_error_not_a_retry_loop(server: Live) -> None:
    with Client(server.url, "rck_bad_bad", max_retries=3) as c, \
            pytest.raises(ApiError) as e:
        c.quote("starter", {})
    assert e.value.http_status == 401
