"""``ratecard credits ...``, ``ratecard check`` and ``ratecard entitlements ...`` end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ratecard.cli import main
from ratecard.store import state
from ratecard.workspace import Workspace

from .conftest import CATALOG


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    path = tmp_path / "ws"
    w = Workspace.open(path, create=True)
    cat = tmp_path / "catalog.yaml"
    cat.write_text(CATALOG, encoding="utf-8")
    assert main(["catalog", "apply", str(cat), "-w", str(path)]) == 0
    yield path
    state.dispose(w.database_url)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    data: Any = None
    if "--json" in args and code in (0, 2) and out.strip():
        data = json.loads(out)
    return code, data, err


def test_credits_commands(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = ["-w", str(ws)]
    assert run(capsys, "customers", "create", "acme", *w)[0] == 0
    code, g, _ = run(capsys, "credits", "grant", "-c", "acme", "--amount", "100",
                     "--expires-after", "30d", "--json", *w)
    assert code == 0 and g["amount"] == "100" and g["source"] == "promotion"
    code, p, _ = run(capsys, "credits", "purchase", "-c", "acme", "--pack", "growth",
                     "--reference", "po-1", "--json", *w)
    assert code == 0 and (p["credits"], p["bonus"], p["price"]) == ("500", "75", "500")
    code, b, _ = run(capsys, "credits", "burn", "-c", "acme", "--amount", "150",
                     "--reference", "r1", "--json", *w)
    # the promotion and the bonus both expire; the promotion (30 days) first
    assert code == 0 and [a["credits"] for a in b["allocations"]] == ["100", "50"]
    code, bal, _ = run(capsys, "credits", "balance", "-c", "acme", "--verify", "--json", *w)
    assert code == 0 and bal["available"] == "525" and bal["verify"]["ok"] is True
    assert bal["deferred_revenue"] == "500.00"
    code, led, _ = run(capsys, "credits", "ledger", "-c", "acme", "--json", *w)
    assert [e["kind"] for e in led] == ["grant", "grant", "grant", "burn", "burn"]
    code, v, _ = run(capsys, "credits", "void", "-c", "acme", "--grant", p["grants"][1]["id"],
                     "--reason", "goodwill reversed", "--json", *w)
    assert code == 0 and v["voided_at"] is not None
    code, _, err = run(capsys, "credits", "burn", "-c", "acme", "--amount", "1",
                       "--grant", p["grants"][1]["id"], *w)
    assert code == 4 and "was voided" in err and err.count("\n") == 1
    code, _, err = run(capsys, "credits", "grant", "-c", "acme", "--amount", "-5", *w)
    assert code == 1 and err.startswith("error: ") and "must be positive" in err
    code, _, err = run(capsys, "credits", "grant", "-c", "acme", "--amount", "5",
                       "--effective", "2026-05-02", "--expires", "2026-05-01", *w)
    assert code == 1 and "not after the effective time" in err
    code, _, err = run(capsys, "credits", "balance", "-c", "nobody", *w)
    assert code == 3 and "no customer 'nobody'" in err
    code, _, err = run(capsys, "credits", "burn", "-c", "acme", "--amount", "9999", *w)
    assert code == 4 and "usable credits" in err
    code, t, _ = run(capsys, "credits", "topup", "-c", "acme", "--threshold", "100",
                     "--target", "2000", "--pack", "small", "--monthly-cap", "50",
                     "--low-balance", "200", "--json", *w)
    assert code == 0 and t["auto_topup"]["pack"] == "small" and t["low_balance"] == "200"
    code, b, _ = run(capsys, "credits", "burn", "-c", "acme", "--amount", "401", "--json", *w)
    assert code == 0 and b["topup"] is not None and b["notices"] == ["low_balance"]
    code, n, _ = run(capsys, "credits", "notices", "-c", "acme", "--json", *w)
    assert [x["kind"] for x in n] == ["low_balance"]
    assert run(capsys, "credits", "balance", "-c", "acme", *w)[0] == 0
    assert run(capsys, "credits", "ledger", "-c", "acme", "--limit", "2", *w)[0] == 0


def test_check_and_entitlements_commands(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = ["-w", str(ws)]
    assert run(capsys, "customers", "create", "dev1", *w)[0] == 0
    assert run(capsys, "subscriptions", "create", "--customer", "dev1", "--plan", "lite",
               "--start", "2026-01-01", *w)[0] == 0
    code, r, _ = run(capsys, "check", "--customer", "dev1", "--feature", "prompts",
                     "--quantity", "5", "--json", *w)
    assert code == 0 and r["allowed"] is True and r["limit"] == "120"
    assert set(r) >= {"allowed", "limit", "used", "remaining", "resets_at", "reason"}
    code, r, _ = run(capsys, "check", "-c", "dev1", "-f", "prompts", "--quantity", "121",
                     "--json", "--exit-code", *w)
    assert code == 2 and r["allowed"] is False
    code, r, _ = run(capsys, "check", "-c", "dev1", "-f", "sso", "--json", *w)
    assert r["allowed"] is False and r["kind"] == "boolean"
    code, _, err = run(capsys, "check", "-c", "dev1", "-f", "warp", *w)
    assert code == 3 and "unknown feature 'warp'" in err
    code, _, err = run(capsys, "check", "-c", "ghost", "-f", "sso", *w)
    assert code == 3 and "no customer 'ghost'" in err
    code, o, _ = run(capsys, "entitlements", "override", "-c", "dev1", "-f", "sso",
                     "--value", "true", "--start", "2026-01-01", "--json", *w)
    assert code == 0 and o["value"] is True
    code, r, _ = run(capsys, "check", "-c", "dev1", "-f", "sso", "--json", *w)
    assert r["allowed"] is True and r["source"] == f"override:{o['id']}"
    code, lst, _ = run(capsys, "entitlements", "overrides", "-c", "dev1", "--json", *w)
    assert [x["id"] for x in lst] == [o["id"]]
    code, shown, _ = run(capsys, "entitlements", "show", "-c", "dev1", "--json", *w)
    assert {x["feature"] for x in shown} == {"sso", "models", "integrations", "prompts"}
    assert run(capsys, "entitlements", "end", o["id"], *w)[0] == 0
    code, r, _ = run(capsys, "check", "-c", "dev1", "-f", "sso", "--json", *w)
    assert r["allowed"] is False
    assert run(capsys, "check", "-c", "dev1", "-f", "prompts", *w)[0] == 0
    assert run(capsys, "entitlements", "show", "-c", "dev1", *w)[0] == 0


def test_file_ingest_then_rebuild_feeds_checks(ws: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import timedelta

    from ratecard.clock import iso, utc_now

    w = ["-w", str(ws)]
    now = utc_now().replace(second=0, microsecond=0)
    start = now - timedelta(hours=2)
    assert run(capsys, "customers", "create", "dev9", *w)[0] == 0
    assert run(capsys, "subscriptions", "create", "--customer", "dev9", "--plan", "lite",
               "--start", iso(now - timedelta(days=3)), *w)[0] == 0
    lines = [json.dumps({"event_id": f"e{i}", "type": "coding.prompt", "customer": "dev9",
                         "timestamp": iso(start + timedelta(seconds=30 * i)),
                         "properties": {"tokens": 5}}) for i in range(130)]
    f = tmp_path / "prompts.jsonl"
    f.write_text("\n".join(lines + lines[:10]) + "\n", encoding="utf-8")  # 10 resent
    assert run(capsys, "events", "ingest", str(f), *w)[0] == 0
    code, r, _ = run(capsys, "entitlements", "rebuild", "--since", iso(start), "--json", *w)
    assert code == 0 and r == {"events": 130}
    code, r, _ = run(capsys, "check", "-c", "dev9", "-f", "prompts", "--at", iso(now), "--json",
                     *w)
    assert r["used"] == "130" and r["allowed"] is False and r["limit"] == "120"
    # a void made with the CLI is repaired the same way
    assert run(capsys, "events", "void", "e0", "--reason", "test", *w)[0] == 0
    assert run(capsys, "entitlements", "rebuild", "-c", "dev9", *w)[0] == 0
    code, r, _ = run(capsys, "check", "-c", "dev9", "-f", "prompts", "--at", iso(now), "--json",
                     *w)
    assert r["used"] == "129"
