"""`ratecard simulate` through the CLI: a workspace with state and a usage store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ratecard.billing.catalogs import apply_catalog
from ratecard.billing.customers import create_customer
from ratecard.billing.subscriptions import create_subscription
from ratecard.catalog.loader import parse_catalog_text
from ratecard.cli import main
from ratecard.metering.model import Event
from ratecard.store import state
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

from .conftest import BASE_FEE, CURRENT, FEBRUARY, t


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace whose state has the February customers and whose store has their
    events."""
    usage = pytest.importorskip("ratecard.store.usage")
    ws = Workspace.open(tmp_path / "ws", create=True)
    with session_scope(ws) as s:
        apply_catalog(s, parse_catalog_text(CURRENT), CURRENT)
        for cid in FEBRUARY:
            create_customer(s, cid)
            create_subscription(s, cid, "payg", start=t("2026-01-01"))
    store = usage.open_usage_store(ws.usage_url)
    events = [Event(f"{cid}-{i}", "ticket.closed", cid, t("2026-02-10"),
                    {"outcome": "resolved"})
              for cid, n in FEBRUARY.items() for i in range(n)]
    store.append(events)
    store.close()
    state.dispose(ws.database_url)
    yield ws.path
    state.dispose(ws.database_url)


def test_simulate_json_html_and_no_state_change(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cand = tmp_path / "candidate.yaml"
    cand.write_text(BASE_FEE)
    files = [workspace / "state.db", *workspace.glob("*.duckdb")]
    before = {f: _digest(f) for f in files}
    report = tmp_path / "report.html"
    code = main(["simulate", "--candidate", str(cand), "--from", "2026-02-01T00:00:00Z",
                 "--to", "2026-03-01T00:00:00Z", "--workspace", str(workspace), "--json",
                 "--html", str(report)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    rep = data["candidates"][0]
    deltas = {c["customer"]: c["delta"] for c in rep["customers"]}
    assert deltas == {"a": "149.50", "b": "1.00", "c": "-108.00", "d": "-238.00",
                      "e": "199.00"}
    assert rep["zero_baseline"] == ["e"]
    assert rep["totals"]["USD"]["delta"] == "3.50"
    assert "held fixed" in data["assumption"]
    assert data["comparison"][0]["pays_more"] == 3
    assert report.exists() and "Usage held fixed" in report.read_text()
    state.dispose(str((workspace / "state.db").resolve()))
    assert {f: _digest(f) for f in files} == before


def test_simulate_table_output(workspace: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    cand = tmp_path / "candidate.yaml"
    cand.write_text(BASE_FEE)
    code = main(["simulate", "-c", str(cand), "-c", str(cand), "--from", "2026-02-01",
                 "--to", "2026-03-01", "--workspace", str(workspace), "--limit", "2"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Assumption:" in out and "candidates compared" in out
    assert "3 more" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--map", "payg"], "CURRENT=CANDIDATE"),
    (["--map", "payg=gold"], "no candidate plan 'gold'"),
    (["--plan", "nope"], "no plan 'nope' in the workspace"),
    (["--from", "2026-05-01", "--to", "2026-06-01"], "no usage between"),
    (["--from", "2026-03-01", "--to", "2026-02-01"], "before it starts"),
])
def test_simulate_errors(workspace: Path, tmp_path: Path, args: list[str], message: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    cand = tmp_path / "candidate.yaml"
    cand.write_text(BASE_FEE)
    base = ["simulate", "-c", str(cand), "--workspace", str(workspace)]
    if "--from" not in args:
        base += ["--from", "2026-02-01", "--to", "2026-03-01"]
    assert main(base + args) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_candidate_that_does_not_validate_lists_its_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cand = tmp_path / "bad.yaml"
    cand.write_text(BASE_FEE.replace("model: per_unit, included: 300",
                                     "model: tiered, included: 300")
                    .replace("base_fee: 100", "base_fee: -5"))
    code = main(["simulate", "-c", str(cand), "--from", "2026-02-01", "--to", "2026-03-01",
                 "--workspace", str(tmp_path / "nowhere")])
    assert code == 1
    err = capsys.readouterr().err
    assert "2 problems in the catalog" in err
    assert "tiered" in err and "base_fee" in err


def test_simulate_with_migration_and_price_response(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cand = tmp_path / "candidate.yaml"
    cand.write_text(BASE_FEE)
    args = ["simulate", "-c", str(cand), "--from", "2026-02-01", "--to", "2026-03-01",
            "--workspace", str(workspace), "--migration", "--at", "2026-03-10",
            "--churn-per-pct", "0.005"]
    assert main([*args, "--json"]) == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    (mp,) = data["migration"]
    paths = {s["customer"]: s["path"] for s in mp["schedule"]}
    assert paths["a"] == "keep grandfathered" and paths["d"] == "move at renewal"
    assert {s["renewal_at"] for s in mp["schedule"]} == {"2026-04-01T00:00:00Z"}
    (resp,) = data["price_response"]
    assert resp["expected"] == "1388.00" and "assumption" in resp["assumption"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Migration plan" in out and "Expected revenue" in out
    assert "--at-renewal" in out
