"""Which cost a meter carries for cost_plus charges."""

from __future__ import annotations

from decimal import Decimal

from ratecard.catalog.schema import Meter
from ratecard.costs.metered import ALL_KINDS, meter_cost, meter_kinds
from ratecard.store.duckdb_costs import CostRow

D = Decimal


def m(**kw: object) -> Meter:
    return Meter.model_validate({"event": "llm.request", **kw})


ROWS = [
    CostRow("c", None, "a", 2, 10, D(0), D("1.75"),
            {"input": D("1"), "output": D("0.5"), "reasoning": D("0.25")}),
    CostRow("c", None, "b", 1, 5, D("3.5"), D(0), {"input": D("3"), "request": D("0.5")}),
]


def test_meter_kinds() -> None:
    assert meter_kinds(m(aggregation="sum", property="output_tokens")) == ("output",
                                                                          "reasoning")
    assert meter_kinds(m(aggregation="count")) == ALL_KINDS
    assert meter_kinds(m(aggregation="sum", property="tokens")) is None
    assert meter_kinds(m(aggregation="count", filter={"model": "a"})) is None
    assert meter_kinds(m(aggregation="count", group_by=["region"])) is None
    assert meter_kinds(Meter(event="ticket.closed", aggregation="count")) is None


def test_meter_cost_total_and_by_model() -> None:
    assert meter_cost(ROWS, m(aggregation="sum", property="input_tokens")) == (D("4"), None)
    total, groups = meter_cost(ROWS, m(aggregation="sum", property="output_tokens",  # type: ignore[misc]
                                       group_by=["model"]))
    assert total == D("0.75") and groups == {("a",): D("0.75"), ("b",): D(0)}
    assert meter_cost(ROWS, m(aggregation="count"))[0] == D("5.25")  # type: ignore[index]
    assert meter_cost(ROWS, m(aggregation="max", property="input_tokens")) is None
