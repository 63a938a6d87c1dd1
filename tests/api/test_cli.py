"""``ratecard keys ...``, ``ratecard portal-token create`` and ``ratecard serve``'s checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_support import add_customer

from ratecard.api.keys import authenticate
from ratecard.cli import main
from ratecard.cli.serve import check_workers
from ratecard.errors import InvalidInput, Unauthorized
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("RATECARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("RATECARD_USAGE_URL", raising=False)
    return Workspace.open(tmp_path / "ws", create=True)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_create_list_revoke(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    w = str(ws.path)
    code, out, err = run(capsys, "keys", "create", "--role", "ingest", "--name", "backend",
                         "-w", w)
    assert code == 0
    token = out.strip()
    assert token.startswith("rck_") and "shown once" in err
    with session_scope(ws) as s:
        p = authenticate(s, token)
    assert (p.role, p.customer) == ("ingest", None)

    code, out, _ = run(capsys, "keys", "list", "-w", w, "--json")
    listed = json.loads(out)
    assert [(k["role"], k["name"], k["active"]) for k in listed] == [
        ("ingest", "backend", True)]
    assert token not in out

    code, out, _ = run(capsys, "keys", "revoke", listed[0]["key_id"], "-w", w)
    assert code == 0 and "revoked" in out
    with session_scope(ws) as s, pytest.raises(Unauthorized):
        authenticate(s, token)
    code, out, _ = run(capsys, "keys", "list", "-w", w, "--json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "keys", "list", "--all", "-w", w, "--json")
    assert len(json.loads(out)) == 1

    code, _, err = run(capsys, "keys", "create", "--role", "root", "-w", w)
    assert code == 1 and "root" in err
    code, _, err = run(capsys, "keys", "revoke", "nope", "-w", w)
    assert code == 3 and "no key" in err


def test_portal_token_is_scoped_and_can_expire(ws: Workspace,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    w = str(ws.path)
    code, _, err = run(capsys, "portal-token", "create", "--customer", "acme", "-w", w)
    assert code == 3 and "no customer 'acme'" in err
    add_customer(ws, "acme")
    code, out, _ = run(capsys, "portal-token", "create", "--customer", "acme", "-w", w,
                       "--json")
    created = json.loads(out)
    assert created["role"] == "portal" and created["customer"] == "acme"
    with session_scope(ws) as s:
        p = authenticate(s, created["token"])
    assert (p.role, p.customer) == ("portal", "acme")

    from datetime import timedelta

    from ratecard.clock import frozen, utc_now

    code, out, _ = run(capsys, "portal-token", "create", "--customer", "acme",
                       "--expires-in", "1h", "-w", w, "--json")
    short = json.loads(out)["token"]
    with frozen(utc_now() + timedelta(hours=2)), session_scope(ws) as s, \
            pytest.raises(Unauthorized, match="expired"):
        authenticate(s, short)


def test_serve_refuses_several_workers_on_duckdb(ws: Workspace,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    check_workers(ws, 1)
    with pytest.raises(InvalidInput, match="ClickHouse"):
        check_workers(ws, 2)
    with pytest.raises(InvalidInput):
        check_workers(ws, 0)
    monkeypatch.setenv("RATECARD_USAGE_URL", "clickhouse://127.0.0.1:9000/ratecard")
    check_workers(ws, 4)


def test_serve_command_refuses_before_starting(ws: Workspace,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve", "--workers", "3", "-w", str(ws.path))
    assert code == 1 and "one writer" in err
