"""The charge-metric decision tree, every branch, and the credits-or-direct choice."""

from __future__ import annotations

import pytest

from ratecard.advisor.decision import (
    Q_ATTRIBUTABLE,
    Q_DISCRETE,
    Q_MEASURABLE,
    BillingUnit,
    ChargeMetric,
    choose_billing_unit,
    choose_charge_metric,
)
from ratecard.errors import InvalidInput


@pytest.mark.parametrize(
    ("measurable", "attributable", "discrete", "metric", "path"),
    [
        # measurable and attributable: outcome pricing
        (True, True, None, ChargeMetric.OUTCOME,
         [(Q_MEASURABLE, True, "attribution"), (Q_ATTRIBUTABLE, True, "outcome")]),
        # measurable but shared attribution: charge for the work
        (True, False, None, ChargeMetric.WORKFLOW,
         [(Q_MEASURABLE, True, "attribution"), (Q_ATTRIBUTABLE, False, "workflow")]),
        # not measurable, discrete tasks: workflow
        (False, None, True, ChargeMetric.WORKFLOW,
         [(Q_MEASURABLE, False, "tasks"), (Q_DISCRETE, True, "workflow")]),
        # not measurable, diffuse work: consumption
        (False, None, False, ChargeMetric.CONSUMPTION,
         [(Q_MEASURABLE, False, "tasks"), (Q_DISCRETE, False, "consumption")]),
    ],
)
def test_every_branch_of_the_tree(
    measurable: bool, attributable: bool | None, discrete: bool | None,
    metric: ChargeMetric, path: list[tuple[str, bool, str]],
) -> None:
    d = choose_charge_metric(outcome_measurable=measurable, outcome_attributable=attributable,
                             discrete_tasks=discrete)
    assert d.metric is metric
    assert [(s.question, s.answer, s.leads_to) for s in d.path] == path
    explained = d.explain()
    assert explained[-1].startswith(f"=> {metric.value.upper()}")
    assert len(explained) == 3
    assert d.as_dict()["metric"] == metric.value


def test_answers_off_the_path_are_ignored() -> None:
    # attribution is never asked when no outcome is measurable, and vice versa
    a = choose_charge_metric(outcome_measurable=False, outcome_attributable=True,
                             discrete_tasks=False)
    b = choose_charge_metric(outcome_measurable=True, outcome_attributable=True,
                             discrete_tasks=False)
    assert a.metric is ChargeMetric.CONSUMPTION
    assert b.metric is ChargeMetric.OUTCOME


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"outcome_measurable": None}, "outcome_measurable"),
        ({"outcome_measurable": True}, "outcome_attributable"),
        ({"outcome_measurable": False}, "discrete_tasks"),
    ],
)
def test_a_missing_answer_on_the_path_names_the_field(kwargs: dict[str, bool | None],
                                                      field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        choose_charge_metric(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metric", "technical", "multiple", "unit"),
    [
        (ChargeMetric.OUTCOME, False, True, BillingUnit.DIRECT),
        (ChargeMetric.OUTCOME, True, False, BillingUnit.DIRECT),
        (ChargeMetric.CONSUMPTION, False, False, BillingUnit.CREDITS),
        (ChargeMetric.CONSUMPTION, True, False, BillingUnit.DIRECT),
        (ChargeMetric.CONSUMPTION, True, True, BillingUnit.DIRECT),
        (ChargeMetric.WORKFLOW, False, True, BillingUnit.CREDITS),
        (ChargeMetric.WORKFLOW, False, False, BillingUnit.DIRECT),
        (ChargeMetric.WORKFLOW, True, True, BillingUnit.DIRECT),
    ],
)
def test_credits_or_direct_metering(metric: ChargeMetric, technical: bool, multiple: bool,
                                    unit: BillingUnit) -> None:
    d = choose_billing_unit(metric, technical_buyer=technical, multiple_task_types=multiple)
    assert d.unit is unit
    assert d.reasons


def test_per_token_for_business_buyers_becomes_credits_with_the_reason() -> None:
    d = choose_billing_unit(ChargeMetric.CONSUMPTION, technical_buyer=False)
    assert "non-technical" in d.reasons[0]
