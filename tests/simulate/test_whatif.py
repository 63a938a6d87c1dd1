"""Cost what-ifs: routing, caching, batching, falling prices, the projection table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from ratecard.cli import main
from ratecard.costs.model import Unpriced
from ratecard.errors import InvalidInput
from ratecard.simulate.whatif import (
    Levers,
    Mix,
    Route,
    cached,
    mix_cost,
    project,
    projection_table,
    route,
)

D = Decimal
M = Decimal(1_000_000)
# USD per token: big costs 2/M input, 1/M cache read, 8/M output; small a tenth of it;
# batch is half price.
PRICES = {
    "big": {"input": D(2) / M, "cache_read": D(1) / M, "cache_write": D(2) / M,
            "output": D(8) / M},
    "small": {"input": D("0.2") / M, "cache_read": D("0.1") / M, "cache_write": D("0.2") / M,
              "output": D("0.8") / M},
}


def rates(model: str, batch: bool) -> Mapping[str, Decimal]:
    if model not in PRICES:
        raise Unpriced(model, "not in the test book")
    p = PRICES[model]
    return {k: v / 2 for k, v in p.items()} if batch else p


def mix(plan: str = "pro", model: str = "big", inp: int = 3_000_000, out: int = 1_000_000,
        read: int = 0) -> Mix:
    return Mix(plan, model, {"input": D(inp), "output": D(out), "cache_read": D(read)},
               D(100))


def test_mix_cost_worked_by_hand() -> None:
    # 3M input × 2/M + 1M output × 8/M = 6 + 8
    assert mix_cost(mix(), rates) == D(14)
    # half through batch at half price: 7 + 3.5
    assert mix_cost(mix(), rates, D("0.5")) == D("10.5")


def test_caching_moves_prompt_tokens_to_the_cache_read_price() -> None:
    m = cached(mix(read=1_000_000), D("0.75"))     # prompt 4M, 3M from the cache
    assert m.tokens["cache_read"] == D(3_000_000) and m.tokens["input"] == D(1_000_000)
    assert mix_cost(m, rates) == D(2) + D(3) + D(8)
    assert cached(m, None) is m


def test_routing_splits_traffic() -> None:
    ms = route([mix(), mix(model="small")], [Route("big", "small", D("0.6"))])
    big = [x for x in ms if x.model == "big"]
    small = [x for x in ms if x.model == "small"]
    assert big[0].tokens["input"] == D(1_200_000) and big[0].requests == D(40)
    assert sum(x.tokens["input"] for x in small) == D(3_000_000) + D(1_800_000)
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        Route("big", "small", D("1.5"))
    with pytest.raises(InvalidInput, match="another model"):
        Route("big", "big", D("0.5"))


def test_project_margins_now_with_levers_and_over_time() -> None:
    levers = Levers(routes=(Route("big", "small", D("0.5")),), batch_share=D(0))
    rep = project({"pro": D(100)}, [mix()], rates, levers, other_cost={"pro": D(6)})
    (p,) = rep.plans
    assert p.model_cost_now == D(14)
    assert p.margin(None) == (D(100) - 14 - 6) / 100
    # half on the small model: 7 + 0.7
    assert p.model_cost[0] == D("7.7")
    # 10x cheaper every 3 years: a tenth at 36 months, the cube root of a tenth at 12
    assert p.model_cost[36] == D("0.77")
    assert abs(p.model_cost[12] - D("7.7") * D(10) ** (D(-1) / 3)) < D("1e-30")
    assert p.margin(36) == (D(100) - D("0.77") - 6) / 100
    assert p.margin(0) > p.margin(None)
    assert any("10x every 3 years" in x for x in rep.levers.describe())
    data = rep.as_dict()
    assert [h["months"] for h in data["plans"][0]["with_levers"]] == [0, 12, 24, 36]


def test_unpriced_models_are_left_out_and_named() -> None:
    rep = project({"pro": D(10)}, [mix(), mix(model="mystery")], rates, Levers())
    assert rep.unpriced == ("mystery",)
    assert rep.plans[0].model_cost_now == D(14)
    assert "never $0" in rep.notes[0]


def test_levers_are_checked() -> None:
    with pytest.raises(InvalidInput, match="cache hit"):
        Levers(cache_hit=D(2))
    with pytest.raises(InvalidInput, match="batch share"):
        Levers(batch_share=D(-1))
    with pytest.raises(InvalidInput, match="times cheaper"):
        Levers(decline=D("0.5"))
    assert Levers(decline=D(1)).factor(36) == 1


def test_projection_table_worked_by_hand() -> None:
    rows = projection_table(rates, frontier="big", small="small", tokens=D(40_000_000),
                            mrr=D(1000))
    # 30M input × 2/M + 10M output × 8/M
    assert rows[0].cost == D(140)
    # caching half the prompt: 15 × 2 + 15 × 1 + 80 = 125; half through batch: × 0.75
    assert rows[1].cost == D("93.75")
    # 75% routed to small (a tenth of the price): 93.75 × (0.25 + 0.075)
    assert rows[2].cost == D("93.75") * D("0.325")
    assert rows[3].cost == D("93.75") * (D("0.1") + D("0.09"))
    assert [r.margin for r in rows] == sorted(r.margin for r in rows)
    assert rows[0].margin == D("0.86")


def test_whatif_table_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RATECARD_HOME", raising=False)
    assert main(["whatif", "--table", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["optimization"] for s in data["scenarios"]] == ["none", "foundation",
                                                              "intermediate", "advanced"]
    costs = [D(s["monthly_cost"]) for s in data["scenarios"]]
    assert costs == sorted(costs, reverse=True) and costs[0] > 0
    assert main(["whatif", "--table", "--frontier", "no-such-model"]) == 1
    assert "pick --frontier" in capsys.readouterr().err
    assert main(["whatif", "--from", "2026-02-01"]) == 1
    assert "--from and --to" in capsys.readouterr().err


def test_whatif_over_a_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    usage = pytest.importorskip("ratecard.store.usage")
    from ratecard.billing.catalogs import apply_catalog
    from ratecard.billing.customers import create_customer
    from ratecard.billing.subscriptions import create_subscription
    from ratecard.catalog.loader import parse_catalog_text
    from ratecard.metering.model import Event
    from ratecard.store import state
    from ratecard.store.state import session_scope
    from ratecard.workspace import Workspace

    from .conftest import CURRENT, FEBRUARY, t

    ws = Workspace.open(tmp_path / "ws", create=True)
    with session_scope(ws) as s:
        apply_catalog(s, parse_catalog_text(CURRENT), CURRENT)
        for cid in FEBRUARY:
            create_customer(s, cid)
            create_subscription(s, cid, "payg", start=t("2026-01-01"))
    store = usage.open_usage_store(ws.usage_url)
    events = [Event(f"{c}-{i}", "ticket.closed", c, t("2026-02-10"), {"outcome": "resolved"})
              for c, n in FEBRUARY.items() for i in range(n)]
    events.append(Event("llm-1", "llm.request", "a", t("2026-02-11"),
                        {"model": "gpt-4o", "input_tokens": 1_000_000,
                         "output_tokens": 100_000}))
    store.append(events)
    store.close()
    state.dispose(ws.database_url)
    try:
        args = ["whatif", "--from", "2026-02-01", "--to", "2026-03-01", "--workspace",
                str(ws.path), "--route", "gpt-4o=gpt-4o-mini:1"]
        assert main([*args, "--json"]) == 0, capsys.readouterr().err
        data = json.loads(capsys.readouterr().out)
        (plan,) = data["plans"]
        assert plan["plan"] == "payg"
        assert D(plan["revenue"]) == D("1584.00")           # what payg billed in February
        assert D(plan["other_cost"]) == D(1600) * D("0.12")  # resolutions at 0.12
        assert D(plan["now"]["model_cost"]) == D("3.5")     # 1M × 2.5/M + 0.1M × 10/M
        # everything on gpt-4o-mini: 1M × 0.15/M + 0.1M × 0.6/M
        assert D(plan["with_levers"][0]["model_cost"]) == D("0.21")
        assert main(args) == 0
        assert "margin per plan" in capsys.readouterr().out
    finally:
        state.dispose(ws.database_url)
