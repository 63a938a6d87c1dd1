"""`ratecard advise` and `ratecard catalog lint` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratecard.catalog import load_catalog
from ratecard.cli import main

QUESTIONNAIRE = """\
product_type: agent
buyer: business
outcome_measurable: true
outcome_attributable: true
human_equivalent_cost: "15"
cost_per_task: "0.12"
expected_volume: 1000
unit: resolution
event: ticket.closed
outcome_filter: {outcome: resolved}
"""

BAD_CATALOG = """\
currency: USD
meters:
  tasks: {event: agent.task, aggregation: count}
costs:
  meters: {tasks: "0.05"}
plans:
  team:
    archetype: agent
    seats: {unit_price: 49}
"""


def test_advise_writes_a_valid_catalog_and_explains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    q = tmp_path / "q.yaml"
    q.write_text(QUESTIONNAIRE)
    out = tmp_path / "out" / "catalog.yaml"
    assert main(["advise", "-q", str(q), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "=> OUTCOME" in text
    assert "target gross margin 50-65%" in text
    assert "2.74 USD" in text
    assert "wrote the catalog" in text
    catalog = load_catalog(out)
    assert set(catalog.plans) == {"starter", "pro", "enterprise"}
    assert main(["catalog", "lint", str(out)]) == 0
    assert "no pricing anti-patterns" in capsys.readouterr().out


def test_advise_flags_override_and_json(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    q = tmp_path / "q.yaml"
    q.write_text(QUESTIONNAIRE)
    code = main(["advise", "-q", str(q), "--no-outcome-attributable", "--human-cost", "30",
                 "--sales-motion", "enterprise", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["charge_metric"]["metric"] == "workflow"
    assert [s["answer"] for s in report["charge_metric"]["path"]] == ["yes", "no"]
    assert report["price"]["human_equivalent_cost"] == "30"
    assert report["archetype"]["target_margin"] == "0.50"
    assert report["byok"]["verdict"] == "avoid"
    assert len(report["tiers"]) == 3
    assert report["catalog"]["plans"]["pro"]["archetype"] == "agent"
    assert report["out"] is None


def test_advise_from_flags_only(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["advise", "--product-type", "api", "--no-outcome-measurable",
                 "--no-discrete-tasks", "--cost-per-task", "0.002", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["charge_metric"]["metric"] == "consumption"
    assert report["price"]["anchor"] == "cost"
    assert report["catalog"] is None
    assert any("expected_volume" in n for n in report["notes"])


@pytest.mark.parametrize(("args", "message"), [
    (["advise", "--product-type", "agent", "--outcome-measurable", "--outcome-attributable",
      "--human-cost", "10", "--out", "x.yaml"], "--out needs expected_volume"),
    (["advise", "--product-type", "robot"], "product type 'robot' is not known"),
    (["advise", "--product-type", "agent"], "set outcome_measurable"),
    (["advise", "-q", "missing.yaml"], "cannot read the questionnaire"),
    (["advise", "--product-type", "agent", "--cost-meter", "tasks"], "--from and --to"),
    (["advise", "--product-type", "agent", "--cost-meter", "tasks", "--cost-per-task", "1"],
     "not both"),
])
def test_advise_errors_are_one_line(args: list[str], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.yaml").exists()


WORKSPACE_CATALOG = """\
currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
costs:
  meters: {resolutions: "0.12"}
plans:
  payg:
    archetype: agent
    charges: [{meter: resolutions, model: per_unit, unit_price: "0.99"}]
"""


def test_advise_takes_the_real_cost_per_task_from_a_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    usage = pytest.importorskip("ratecard.store.usage")
    from ratecard.billing.catalogs import apply_catalog
    from ratecard.billing.customers import create_customer
    from ratecard.billing.subscriptions import create_subscription
    from ratecard.catalog.loader import parse_catalog_text
    from ratecard.clock import parse_time
    from ratecard.metering.model import Event
    from ratecard.store import state
    from ratecard.store.state import session_scope
    from ratecard.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", create=True)
    start = parse_time("2026-01-01T00:00:00Z")
    with session_scope(ws) as s:
        apply_catalog(s, parse_catalog_text(WORKSPACE_CATALOG), WORKSPACE_CATALOG)
        for cid in ("a", "b"):
            create_customer(s, cid)
            create_subscription(s, cid, "payg", start=start)
    store = usage.open_usage_store(ws.usage_url)
    at = parse_time("2026-02-10T00:00:00Z")
    store.append([Event(f"{c}-{i}", "ticket.closed", c, at, {"outcome": "resolved"})
                  for c, n in (("a", 30), ("b", 70)) for i in range(n)])
    store.close()
    state.dispose(ws.database_url)
    try:
        code = main(["advise", "--product-type", "agent", "--outcome-measurable",
                     "--outcome-attributable", "--human-cost", "15", "--cost-meter",
                     "resolutions", "--from", "2026-02-01", "--to", "2026-03-01",
                     "--workspace", str(ws.path), "--json"])
        assert code == 0, capsys.readouterr().err
        report = json.loads(capsys.readouterr().out)
        # 100 resolutions at a unit cost of 0.12: the floor at 50% is 0.24
        assert report["price"]["cost_per_task"] == "0.12"
        assert report["price"]["floor"] == "0.24"
        assert any("cost per task from workspace" in n for n in report["notes"])
        assert main(["advise", "--product-type", "agent", "--outcome-measurable",
                     "--outcome-attributable", "--human-cost", "15", "--cost-meter",
                     "resolutions", "--from", "2025-02-01", "--to", "2025-03-01",
                     "--workspace", str(ws.path)]) == 1
        assert "has no usage" in capsys.readouterr().err
    finally:
        state.dispose(ws.database_url)


def test_lint_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CATALOG)
    assert main(["catalog", "lint", str(bad)]) == 1
    text = capsys.readouterr().out
    assert "agent-per-seat" in text and "why:" in text and "fix:" in text
    assert main(["catalog", "lint", str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["errors"] >= 1
    rules = {f["rule"] for f in report["findings"]}
    assert {"agent-per-seat", "flat-fee-unlimited-ai", "tier-count"} <= rules
    # warnings alone pass
    warn = tmp_path / "warn.yaml"
    warn.write_text(BAD_CATALOG.replace("    seats: {unit_price: 49}\n",
                                        "    charges: [{meter: tasks, model: per_unit, "
                                        "unit_price: 1}]\n"))
    assert main(["catalog", "lint", str(warn), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["errors"] == 0 and report["warnings"] == 1


def test_lint_with_margins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = tmp_path / "c.yaml"
    cat.write_text(BAD_CATALOG.replace("    seats: {unit_price: 49}\n",
                                       "    charges: [{meter: tasks, model: per_unit, "
                                       "unit_price: 1}]\n"))
    margins = tmp_path / "m.json"
    margins.write_text(json.dumps({"plans": [{"plan": "team", "margin": "0.31"}]}))
    assert main(["catalog", "lint", str(cat), "--margins", str(margins), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [f["rule"] for f in report["findings"] if f["severity"] == "error"] == \
        ["margin-below-target"]
    margins.write_text("team: \"0.55\"\n")
    assert main(["catalog", "lint", str(cat), "--margins", str(margins)]) == 0
    capsys.readouterr()
    margins.write_text("team: [oops\n")
    assert main(["catalog", "lint", str(cat), "--margins", str(margins)]) == 1
    assert "not valid YAML or JSON" in capsys.readouterr().err


def test_lint_of_an_invalid_catalog_lists_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cat = tmp_path / "broken.yaml"
    cat.write_text("currency: USD\nplans:\n  p:\n    charges:\n"
                   "      - {meter: nope, model: per_unit, unit_price: 1}\n")
    assert main(["catalog", "lint", str(cat)]) == 1
    err = capsys.readouterr().err
    assert "no meter 'nope'" in err and "Traceback" not in err
