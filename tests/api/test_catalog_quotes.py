"""Catalog apply (and dry run), plans and versions, quotes: on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from api_support import EXAMPLES, Api, apply_example


def test_apply_dry_run_then_apply_then_version(api: Api) -> None:
    source = (EXAMPLES / "support_agent.yaml").read_text(encoding="utf-8")
    r = api.post("/v1/catalog", json={"source": source, "dry_run": True})
    assert r.status_code == 200
    assert r.json()["dry_run"] is True and r.json()["revision"] is None
    assert api.get("/v1/catalog").status_code == 404  # nothing applied
    body = apply_example(api)
    assert body["revision"] == 1 and body["changed"] is True
    assert {p["code"] for p in body["plans"]} == {"starter", "pro", "enterprise"}  # type: ignore[union-attr]

    shown = api.get("/v1/catalog", who="read").json()
    assert shown["revision"] == 1 and "starter" in shown["catalog"]["plans"]

    changed = source.replace('unit_price: "1.29"', 'unit_price: "1.39"')
    assert changed != source
    r = api.post("/v1/catalog", json={"source": changed})
    assert r.status_code == 200
    starter = next(p for p in r.json()["plans"] if p["code"] == "starter")
    assert (starter["change"], starter["old_version"], starter["new_version"]) == (
        "changed", 1, 2)
    assert any("1.39" in line for line in r.json()["diff"])

    versions = api.get("/v1/plans/starter/versions", who="read").json()["data"]
    assert [v["version"] for v in versions] == [1, 2]
    assert [v["latest"] for v in versions] == [False, True]
    assert api.get("/v1/plans/starter").json()["version"] == 2
    v1 = api.get("/v1/plans/starter/versions/1").json()
    assert v1["plan"]["charges"][0]["unit_price"] == "1.29"
    r = api.get("/v1/plans/starter/versions/9")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = api.get("/v1/plans/nope")
    assert r.status_code == 404


def test_an_invalid_catalog_names_its_problems(api: Api) -> None:
    r = api.post("/v1/catalog", json={"source": "plans:\n  p: {base_fee: -5}\n"})
    assert r.status_code == 422
    assert r.json()["error"] == "catalog_invalid"
    assert "plans.p" in r.json()["detail"]


def test_quote_matches_the_cli_shape_and_hand_total(api: Api) -> None:
    apply_example(api)
    usage = json.loads((EXAMPLES / "support_agent.usage.json").read_text())
    r = api.post("/v1/quotes", who="ingest", json={"plan": "starter", "usage": usage})
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["plan"] == "starter" and q["currency"] == "USD"
    # the README's worked example: 199 + 150 × 1.29
    assert q["total"] == "392.50"
    assert [ln["kind"] for ln in q["lines"]][:1] == ["base_fee"]
    # exact decimals in, exact decimals out
    r = api.post("/v1/quotes", who="read",
                 json={"plan": "starter", "usage": {"resolutions": "200.5"}})
    assert r.json()["total"] == "199.65"


def test_quote_against_an_inline_catalog_and_an_old_version(api: Api) -> None:
    source = (EXAMPLES / "support_agent.yaml").read_text(encoding="utf-8")
    r = api.post("/v1/quotes", json={"plan": "starter", "usage": {"resolutions": 201},
                                     "catalog": source})
    assert r.status_code == 200 and r.json()["total"] == "200.29"
    apply_example(api)
    api.post("/v1/catalog", json={"source": source.replace("base_fee: 199", "base_fee: 249")})
    new = api.post("/v1/quotes", json={"plan": "starter", "usage": {}}).json()
    old = api.post("/v1/quotes", json={"plan": "starter", "version": 1, "usage": {}}).json()
    assert (old["total"], new["total"]) == ("199.00", "249.00")
    r = api.post("/v1/quotes", json={"plan": "starter", "usage": {"nope": 1}})
    assert r.status_code == 422 and r.json()["error"] == "usage_invalid"
