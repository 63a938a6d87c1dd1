"""Margins of a real workspace (state database, usage store, invoices), worked by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ratecard.analytics import cost_per_task, margins
from ratecard.analytics.rules import ratio
from ratecard.cli import main
from ratecard.clock import Window
from ratecard.errors import InvalidInput

MARCH = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
D = Decimal


@pytest.fixture
def support(business: Callable[[str], Any]) -> Any:
    """support_agent.yaml over March 2026 (the numbers of tests/analytics/test_rules.py):

    alpha (starter): 250 resolved, 40 escalated, 10 requests of 100k in + 20k out gpt-4o
    beta (pro): 1,500 resolved, 100 escalated, 40 requests of 1M in + 200k out
    gamma (starter): 210 resolved, 50 requests of 1.2M in + 200k out
    gpt-4o costs $2.50 in / $10 out per million; $0.12 per resolution, $0.05 per escalation
    """
    b = business("support_agent.yaml")
    for cid, plan in (("alpha", "starter"), ("beta", "pro"), ("gamma", "starter")):
        b.customer(cid, plan)
    b.add("alpha", "ticket.closed", 250, outcome="resolved")
    b.add("alpha", "ticket.closed", 40, outcome="escalated")
    b.add("alpha", "llm.request", 10, model="gpt-4o", input_tokens=100_000,
          output_tokens=20_000)
    b.add("beta", "ticket.closed", 1500, outcome="resolved")
    b.add("beta", "ticket.closed", 100, outcome="escalated")
    b.add("beta", "llm.request", 40, model="gpt-4o", input_tokens=1_000_000,
          output_tokens=200_000)
    b.add("gamma", "ticket.closed", 210, outcome="resolved")
    b.add("gamma", "llm.request", 50, model="gpt-4o", input_tokens=1_200_000,
          output_tokens=200_000)
    # a model nobody priced: counted, listed, never $0
    b.add("gamma", "llm.request", 3, model="in-house-7b", input_tokens=10)
    b.bill()
    return b


def test_support_agent_month_by_customer(support: Any) -> None:
    r = margins(support.ws, MARCH, "customer")
    rows = {x.key: x for x in r.rows}
    # revenue: 199 + 50 × 1.29; 599 + 500 × 0.89; 199 + 10 × 1.29 (April's fees are not March's)
    assert {k: x.revenue for k, x in rows.items()} == {
        "alpha": D("263.50"), "beta": D("1044.00"), "gamma": D("211.90")}
    assert {k: x.model_cost for k, x in rows.items()} == {
        "alpha": D("4.5"), "beta": D("180"), "gamma": D("250")}
    assert {k: x.meter_cost for k, x in rows.items()} == {
        "alpha": D("32.00"), "beta": D("185.00"), "gamma": D("25.20")}
    assert rows["alpha"].margin == D("227.00") and ratio(rows["alpha"].margin_pct) == D("0.8615")
    assert rows["alpha"].cpr == D("0.146")  # 36.50 / 250 resolutions
    assert r.rows[0].key == "gamma" and [x.key for x in r.losers] == ["gamma"]
    assert r.total.revenue == D("1519.40") and r.total.cost == D("676.70")
    assert ratio(r.total.model_cost_ratio) == D("0.2860")
    assert [(u.model, u.events) for u in r.unpriced] == [("in-house-7b", 3)]
    assert any("no tasks meter" in n for n in r.notes)


def test_support_agent_month_by_plan_against_the_agent_band(support: Any) -> None:
    rows = {x.key: x for x in margins(support.ws, MARCH, "plan").rows}
    assert ratio(rows["starter"].margin_pct) == D("0.3443")  # 163.70 / 475.40
    assert rows["starter"].target_status == "below"
    assert rows["pro"].target_status == "above"  # 679 / 1044 = 65.04%


def test_by_model_and_meter(support: Any) -> None:
    by_model = {x.key: x for x in margins(support.ws, MARCH, "model").rows}
    assert by_model["gpt-4o"].model_cost == D("434.5")
    assert by_model["gpt-4o"].requests == 100
    by_meter = {x.key: x for x in margins(support.ws, MARCH, "meter").rows}
    assert by_meter["resolutions"].revenue == D("77.40") + D("445.00")
    assert by_meter["escalations"].cost == D("7.00")


def test_cost_per_task_for_the_advisor(support: Any) -> None:
    # everything it cost (676.70) per resolved ticket (1,960)
    assert cost_per_task(support.ws, meter="resolutions", window=MARCH) == D("676.70") / 1960


def test_unknown_dimension_is_refused_before_any_work(support: Any) -> None:
    with pytest.raises(InvalidInput, match="unknown --by dimension"):
        margins(support.ws, MARCH, "region")


def test_byok_customer_has_no_model_cost(business: Callable[[str], Any]) -> None:
    b = business("llm_api.yaml")
    b.customer("dev", "byok", byok=True)
    b.customer("shop", "payg")
    # 10M glm-4-plus input tokens each: $0.50 per million costs 5.00 when we pay
    b.add("dev", "llm.request", 10, model="glm-4-plus", input_tokens=1_000_000)
    b.add("shop", "llm.request", 10, model="glm-4-plus", input_tokens=1_000_000)
    b.bill()
    rows = {x.key: x for x in margins(b.ws, MARCH, "customer").rows}
    assert rows["dev"].model_cost == 0 and rows["dev"].byok_model_cost == D("5")
    assert rows["shop"].model_cost == D("5") and rows["shop"].byok_model_cost == 0
    assert rows["shop"].revenue == D("7.00")  # 10M × $0.70 per million
    assert rows["dev"].margin == rows["dev"].revenue  # the platform fee is all margin


def test_margins_cli(support: Any, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["margins", "--from", "2026-03-01", "--to", "2026-04-01", "--workspace",
            str(support.ws.path)]
    assert main([*args, "--by", "plan", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    plans = {p["plan"]: p for p in doc["plans"]}
    assert plans["starter"]["margin"] == "0.3443" and plans["starter"]["revenue"] == "475.4"
    assert plans["starter"]["target_status"] == "below"
    assert doc["unpriced_events"] == 3 and doc["losing_customers"][0]["customer"] == "gamma"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "gamma" in out and "loss" in out and "in-house-7b" in out
    assert main([*args, "--by", "region"]) == 1
    assert "unknown --by dimension" in capsys.readouterr().err


def test_costs_unpriced_cli(support: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costs", "unpriced", "--from", "2026-03-01", "--to", "2026-04-01",
                 "--workspace", str(support.ws.path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["events"] == 103 and doc["priced_events"] == 100
    assert [(u["model"], u["events"], u["customers"]) for u in doc["unpriced"]] == [
        ("in-house-7b", 3, 1)]
    assert doc["unpriced"][0]["reason"].startswith("not in the price book")


def test_credit_notes_reduce_revenue(support: Any) -> None:
    from ratecard.billing import invoices as inv
    from ratecard.store.state import session_scope

    with session_scope(support.ws) as s:
        usage_invoice = next(i for i in inv.list_invoices(s, customer="alpha")
                             if i["period_end"] == "2026-04-01T00:00:00Z")
        line = next(ln for ln in usage_invoice["lines"] if ln["meter"] == "resolutions")
        inv.create_credit_note(s, usage_invoice["id"], amount=D("10.00"), line=line["position"],
                               reason="goodwill")
    rows = {x.key: x for x in margins(support.ws, MARCH, "customer").rows}
    assert rows["alpha"].revenue == D("253.50")  # 263.50 − 10 credited on the usage line


@pytest.mark.parametrize("costed", [False, True])
def test_cost_plus_fee_on_the_byok_customers_would_be_cost(
        business: Callable[[str], Any], costed: bool) -> None:
    """llm_api.yaml's BYOK plan: a 5% fee on each token kind's provider cost.

    glm-4-plus costs 0.50 input / 0.10 cached / 1.50 output per million. Four requests
    send canonical buckets (1M in, 2M cached, 100k out: 0.50 + 0.20 + 0.15) and one an
    OpenAI usage object for the same tokens, which only the store's costing reads.
    """
    b = business("llm_api.yaml")
    b.customer("dev", "byok", byok=True)
    b.add("dev", "llm.request", 4, model="glm-4-plus", input_tokens=1_000_000,
          cache_read_tokens=2_000_000, output_tokens=100_000)
    b.add("dev", "llm.request", 1, model="glm-4-plus", usage={
        "prompt_tokens": 3_000_000, "completion_tokens": 100_000,
        "prompt_tokens_details": {"cached_tokens": 2_000_000}})
    b.bill(costed=costed)
    from ratecard.billing import invoices as inv
    from ratecard.store.state import session_scope

    with session_scope(b.ws) as s:
        lines = [ln for i in inv.list_invoices(s, customer="dev") for ln in i["lines"]
                 if ln["meter"] is not None]
    fees = {ln["meter"]: D(ln["amount"]) for ln in lines}
    if costed:  # 5% of 5 × (0.50, 0.20, 0.15), every request counted, rounded to cents
        assert fees == {"input_tokens": D("0.13"), "cached_tokens": D("0.05"),
                        "output_tokens": D("0.04")}
    else:  # the catalog alone sees only the 4 requests with top-level counts
        assert fees == {"input_tokens": D("0.10"), "cached_tokens": D("0.04"),
                        "output_tokens": D("0.03")}
    report = margins(b.ws, MARCH, "customer")
    (row,) = report.rows
    assert row.model_cost == 0 and row.byok_model_cost == D("4.25")
