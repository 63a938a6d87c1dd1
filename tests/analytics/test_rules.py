"""Margins and unit economics worked by hand: the support-agent example over March 2026."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ratecard.analytics.model import ActivityFact, CostFact, RevenueFact, UnpricedModel
from ratecard.analytics.rules import margin_report, plan_targets, ratio
from ratecard.catalog import load_catalog
from ratecard.errors import InvalidInput

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
D = Decimal

# support_agent.yaml: starter $199 incl. 200 resolutions + $1.29; pro $599 incl. 1,000 +
# $0.89; costs: gpt-4o $2.50 in / $10 out per million, $0.12 per resolution, $0.05 per
# escalation.
#   alpha (starter): 250 resolved, 40 escalated, 1M in + 0.2M out tokens, 5 members
#     revenue 199 + 50 × 1.29 = 263.50; model 2.50 + 2.00 = 4.50; meters 30 + 2 = 32
#   beta (pro): 1,500 resolved, 100 escalated, 40M in + 8M out, 20 members
#     revenue 599 + 500 × 0.89 = 1,044.00; model 100 + 80 = 180; meters 180 + 5 = 185
#   gamma (starter): 210 resolved, 60M in + 10M out, 2 members
#     revenue 199 + 10 × 1.29 = 211.90; model 150 + 100 = 250; meters 25.20
REVENUE = [
    RevenueFact("alpha", D("199"), plan="starter"),
    RevenueFact("alpha", D("64.50"), plan="starter", meter="resolutions"),
    RevenueFact("beta", D("599"), plan="pro"),
    RevenueFact("beta", D("445.00"), plan="pro", meter="resolutions"),
    RevenueFact("gamma", D("199"), plan="starter"),
    RevenueFact("gamma", D("12.90"), plan="starter", meter="resolutions"),
]
COSTS = [
    CostFact("alpha", D("4.50"), plan="starter", model="gpt-4o", requests=300,
             tokens=1_200_000),
    CostFact("alpha", D("30.00"), kind="meter", plan="starter", meter="resolutions"),
    CostFact("alpha", D("2.00"), kind="meter", plan="starter", meter="escalations"),
    CostFact("beta", D("180"), plan="pro", model="gpt-4o", requests=4000, tokens=48_000_000),
    CostFact("beta", D("180.00"), kind="meter", plan="pro", meter="resolutions"),
    CostFact("beta", D("5.00"), kind="meter", plan="pro", meter="escalations"),
    CostFact("gamma", D("250"), plan="starter", model="gpt-4o", requests=5000,
             tokens=70_000_000),
    CostFact("gamma", D("25.20"), kind="meter", plan="starter", meter="resolutions"),
]
ACTIVITY = [
    ActivityFact("alpha", "starter", tasks=D(290), resolutions=D(250), active_members=D(5)),
    ActivityFact("beta", "pro", tasks=D(1600), resolutions=D(1500), active_members=D(20)),
    ActivityFact("gamma", "starter", tasks=D(210), resolutions=D(210), active_members=D(2)),
]


@pytest.fixture(scope="module")
def targets() -> dict:
    return plan_targets(load_catalog(EXAMPLES / "support_agent.yaml"))


def report(by: str, targets: dict | None = None):  # type: ignore[no-untyped-def]
    return margin_report(by, START, END, REVENUE, COSTS, ACTIVITY, plans=targets,
                         unpriced=[UnpricedModel("glm-x", 12, 1, "not in the price book")])


def test_by_customer(targets: dict) -> None:
    r = report("customer", targets)
    rows = {row.key: row for row in r.rows}
    a = rows["alpha"]
    assert (a.revenue, a.model_cost, a.meter_cost, a.cost, a.margin) == (
        D("263.50"), D("4.50"), D("32.00"), D("36.50"), D("227.00"))
    assert ratio(a.margin_pct) == D("0.8615")  # 227 / 263.5 = 0.86148
    assert a.cpr == D("0.146")  # 36.50 / 250
    assert ratio(a.cpt) == D("0.1259")  # 36.50 / 290
    assert a.cpam == D("7.3")  # 36.50 / 5
    assert a.tokens_per_task is not None and ratio(a.tokens_per_task) == D("4137.9310")
    g = rows["gamma"]
    assert g.cost == D("275.20") and g.margin == D("-63.30") and g.loss_making
    # the customer that costs more than it pays comes first
    assert r.rows[0].key == "gamma"
    assert [x.key for x in r.losers] == ["gamma"]


def test_totals_and_model_cost_ratio(targets: dict) -> None:
    t = report("customer", targets).total
    assert t.revenue == D("1519.40") and t.model_cost == D("434.5")
    assert t.meter_cost == D("242.20") and t.margin == D("842.70")
    assert ratio(t.margin_pct) == D("0.5546")  # 842.7 / 1519.4
    assert ratio(t.model_cost_ratio) == D("0.2860")  # 434.5 / 1519.4
    assert t.tasks == D(2100) and t.active_members == D(27)
    assert t.customers == 3


def test_by_plan_against_the_agent_band(targets: dict) -> None:
    rows = {row.key: row for row in report("plan", targets).rows}
    starter, pro = rows["starter"], rows["pro"]
    assert starter.revenue == D("475.40") and starter.cost == D("311.70")
    assert ratio(starter.margin_pct) == D("0.3443")  # 163.7 / 475.4
    assert starter.target is not None and starter.target.band == (D("0.50"), D("0.65"))
    assert starter.target_status == "below"
    assert ratio(pro.margin_pct) == D("0.6504")  # 679 / 1044, just above 65%
    assert pro.target_status == "above"
    assert starter.below_min_margin is None  # the example sets no min_margin
    assert starter.cpr == D("311.70") / D(460)


def test_min_margin_per_plan() -> None:
    cat = load_catalog(EXAMPLES / "support_agent.yaml")
    cat = cat.model_copy(update={"plans": {
        **cat.plans, "pro": cat.plans["pro"].model_copy(update={"min_margin": D("0.7")})}})
    rows = {row.key: row for row in report("plan", plan_targets(cat)).rows}
    assert rows["pro"].below_min_margin is True
    assert rows["starter"].below_min_margin is None


def test_by_model_and_by_meter() -> None:
    rows = {row.key: row for row in report("model").rows}
    assert rows["gpt-4o"].model_cost == D("434.5") and rows["gpt-4o"].revenue == 0
    assert rows["gpt-4o"].margin_pct is None and rows["gpt-4o"].cpt is None
    assert rows["(none)"].revenue == D("1519.40") and rows["(none)"].meter_cost == D("242.20")
    meters = {row.key: row for row in report("meter").rows}
    assert meters["resolutions"].revenue == D("522.40")  # 64.50 + 445 + 12.90
    assert meters["resolutions"].meter_cost == D("235.20")  # 30 + 180 + 25.20
    assert meters["escalations"].cost == D("7.00") and meters["escalations"].loss_making
    assert report("meter").rows[0].key == "escalations"  # revenue 0, cost 7: a loss


def test_unpriced_events_travel_with_the_report() -> None:
    r = report("customer")
    assert r.unpriced_events == 12 and r.unpriced[0].model == "glm-x"


def test_byok_customers_have_no_model_cost() -> None:
    r = margin_report("customer", START, END,
                      [RevenueFact("delta", D("49"), plan="byok"),
                       RevenueFact("delta", D("0.617"), plan="byok", meter="tokens")],
                      [CostFact("delta", D(0), plan="byok", model="gpt-4o",
                                byok_amount=D("12.34"), requests=10, tokens=100)])
    (row,) = r.rows
    assert row.model_cost == 0 and row.byok_model_cost == D("12.34")
    assert row.margin == D("49.617") and row.margin_pct == 1


def test_unknown_dimension() -> None:
    with pytest.raises(InvalidInput, match="unknown --by dimension 'region'"):
        margin_report("region", START, END, [], [])


def test_empty_window() -> None:
    r = margin_report("plan", START, END, [], [])
    assert r.rows == () and r.total.revenue == 0 and r.total.margin_pct is None
