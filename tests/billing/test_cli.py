"""The billing CLI end to end on SQLite and PostgreSQL: exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ratecard.cli import main

from .conftest import CATALOG


@pytest.fixture
def cli(state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("RATECARD_DATABASE_URL", state_url)
    ws = tmp_path / "ws"
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*args, "--workspace", str(ws)])
        out, err = capsys.readouterr()
        return code, out, err

    run.catalog = catalog  # type: ignore[attr-defined]
    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


def test_catalog_apply_diff_and_dry_run(cli: Any) -> None:
    code, out, _ = cli("catalog", "apply", str(cli.catalog))
    assert code == 0 and "+ plan starter: new, version 1" in out
    changed = cli.tmp / "v2.yaml"
    changed.write_text(CATALOG.replace("base_fee: 62", "base_fee: 70"))
    code, out, _ = cli("catalog", "apply", str(changed), "--dry-run")
    assert code == 0 and "~ plans.pro.base_fee: 62 -> 70" in out and "dry run" in out
    code, out, _ = cli("catalog", "apply", str(changed), "--json")
    data = json.loads(out)
    assert [p["new_version"] for p in data["plans"] if p["code"] == "pro"] == [2]
    code, out, _ = cli("plans", "show", "pro", "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]
    code, out, _ = cli("plans", "list", "--json")
    assert {p["plan"]: p["version"] for p in json.loads(out)}["pro"] == 2


def test_customers_and_subscriptions(cli: Any) -> None:
    cli("catalog", "apply", str(cli.catalog))
    code, out, _ = cli("customers", "create", "acme", "--name", "Acme", "--timezone",
                       "Asia/Shanghai", "--email", "billing@acme.cn", "--metadata", "tier=gold",
                       "--byok", "--json")
    assert code == 0
    assert json.loads(out) | {"created_at": ""} == {
        "id": "acme", "name": "Acme", "currency": "USD", "timezone": "Asia/Shanghai",
        "email": "billing@acme.cn", "metadata": {"tier": "gold"}, "byok": True,
        "created_at": ""}
    code, out, _ = cli("subscriptions", "create", "--customer", "acme", "--plan", "starter",
                       "--start", "2026-01-01", "--json")
    sub = json.loads(out)
    assert code == 0 and sub["started_at"] == "2025-12-31T16:00:00Z"  # Shanghai midnight
    code, out, _ = cli("subscriptions", "change", str(sub["id"]), "--plan", "pro",
                       "--at", "2026-01-15", "--json")
    assert json.loads(out)["direction"] == "upgrade"
    code, out, _ = cli("subscriptions", "cancel", str(sub["id"]), "--at", "2026-01-20",
                       "--json")
    assert json.loads(out)["ends_at"] == "2026-01-31T16:00:00Z"
    code, out, _ = cli("subscriptions", "list", "--customer", "acme", "--json")
    assert [s["plan"] for s in json.loads(out)] == ["pro"]
    code, out, _ = cli("subscriptions", "show", str(sub["id"]))
    assert code == 0 and "pro v1" in out
    code, out, _ = cli("customers", "show", "acme", "--json")
    assert len(json.loads(out)["subscriptions"]) == 1
    code, out, _ = cli("customers", "list")
    assert code == 0 and "acme" in out


@pytest.mark.parametrize(("args", "exit_code", "message"), [
    (("customers", "show", "ghost"), 3, "no customer 'ghost'"),
    (("customers", "create", "x", "--currency", "XXX"), 1, "not an ISO 4217"),
    (("customers", "create", "x", "--timezone", "Mars/Olympus"), 1, "not an IANA timezone"),
    (("subscriptions", "create", "--customer", "acme", "--plan", "gold"), 3, "no plan 'gold'"),
    (("subscriptions", "create", "--customer", "ghost", "--plan", "pro"), 3, "no customer"),
    (("subscriptions", "create", "--customer", "acme", "--plan", "pro", "--start",
      "yesterday"), 1, "is not a timestamp"),
    (("subscriptions", "create", "--customer", "acme", "--plan", "euro"), 1,
     "pays in USD but plan 'euro' v1 is priced in EUR"),
    (("subscriptions", "change", "1", "--plan", "pro"), 4, "is cancelled"),
    (("subscriptions", "show", "42"), 3, "no subscription 42"),
    (("invoices", "show", "INV-000009"), 3, "no invoice INV-000009"),
    (("plans", "migrate", "pro", "--to-version", "1"), 1, "exactly one of --now"),
    (("plans", "migrate", "pro", "--to-version", "7", "--now"), 3, "no version 7"),
])
def test_bad_input_is_one_line_with_an_exit_code(
    cli: Any, args: tuple[str, ...], exit_code: int, message: str
) -> None:
    cli("catalog", "apply", str(cli.catalog))
    cli("customers", "create", "acme")
    cli("subscriptions", "create", "--customer", "acme", "--plan", "starter", "--start",
        "2026-01-01")
    cli("subscriptions", "cancel", "1", "--now", "--at", "2026-01-02")
    code, out, err = cli(*args)
    assert code == exit_code, (out, err)
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_invoice_run_from_the_usage_store_and_invoice_commands(cli: Any) -> None:
    from datetime import UTC, datetime

    from ratecard.metering.model import Event
    from ratecard.store.usage import open_usage_store

    cli("catalog", "apply", str(cli.catalog))
    cli("customers", "create", "acme", "--name", "Acme")
    cli("subscriptions", "create", "--customer", "acme", "--plan", "starter", "--start",
        "2026-01-01")
    store = open_usage_store(f"duckdb:///{cli.tmp / 'ws' / 'usage.duckdb'}")
    store.append([Event(f"e{i}", "ticket.closed", "acme", datetime(2026, 1, 9, tzinfo=UTC),
                        {"outcome": "resolved"}) for i in range(25)])
    store.close()
    code, out, err = cli("invoices", "run", "--at", "2026-02-01T06:00:00Z", "--json")
    assert code == 0, err
    assert json.loads(out)["created"] == 2
    code, out, _ = cli("invoices", "run", "--at", "2026-02-01T06:00:00Z", "--json")
    assert json.loads(out)["created"] == 0  # idempotent
    code, out, _ = cli("invoices", "list", "--customer", "acme", "--json")
    rows = json.loads(out)
    assert [r["status"] for r in rows] == ["finalized", "draft"]
    code, out, _ = cli("invoices", "show", str(rows[1]["id"]), "--json")
    inv = json.loads(out)
    assert {"number", "customer", "status", "period_start", "period_end", "currency", "lines",
            "total"} <= inv.keys()
    assert [(ln["description"][:11], ln["quantity"], ln["unit_price"], ln["amount"])
            for ln in inv["lines"]] == [("Starter: ba", "1", "31", "31.00"),
                                         ("Resolutions", "25", "1.29", "19.35")]
    assert inv["total"] == "50.35"
    code, out, _ = cli("invoices", "finalize", str(inv["id"]), "--json")
    assert json.loads(out)["number"] == "INV-000002"
    code, out, err = cli("invoices", "finalize", "INV-000002")
    assert code == 4 and "already finalized" in err
    code, out, _ = cli("invoices", "credit", "INV-000002", "--amount", "5", "--reason", "sla",
                       "--json")
    assert json.loads(out)["number"] == "CN-000001"
    code, out, err = cli("invoices", "void", "INV-000002")
    assert code == 4 and "credit notes" in err
    code, _, _ = cli("invoices", "pay", "INV-000001")
    assert code == 0
    code, out, _ = cli("invoices", "show", "INV-000002")
    assert code == 0 and "CN-000001" in out
    html, pdf = cli.tmp / "inv.html", cli.tmp / "inv.pdf"
    code, _, _ = cli("invoices", "render", "INV-000002", "--html", str(html), "--pdf", str(pdf))
    assert code == 0 and "INV-000002" in html.read_text()
    assert pdf.read_bytes().startswith(b"%PDF")
    code, out, err = cli("invoices", "render", "INV-000002")
    assert code == 1 and "--html" in err
