"""The advisor end to end: answers in, decisions and a valid, lint-clean catalog out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from ratecard.advisor import advise, parse_answers
from ratecard.advisor.questionnaire import parse_questionnaire_text
from ratecard.catalog import parse_catalog_text
from ratecard.cli.common import dumps
from ratecard.errors import InvalidInput
from ratecard.metering.model import MeterUsage
from ratecard.pricing import rate_plan

D = Decimal

SUPPORT = {
    "product_type": "agent", "buyer": "business", "outcome_measurable": True,
    "outcome_attributable": True, "human_equivalent_cost": "15", "cost_per_task": "0.12",
    "expected_volume": 1000, "unit": "resolution", "event": "ticket.closed",
    "outcome_filter": {"outcome": "resolved"},
}

SCENARIOS: dict[str, dict[str, Any]] = {
    "support agent, outcome": SUPPORT,
    "document agent, shared attribution": {
        "product_type": "agent", "outcome_measurable": True, "outcome_attributable": False,
        "human_equivalent_cost": "40", "cost_per_task": "0.9", "expected_volume": 300,
        "unit": "document"},
    "coding copilot, tasks, BYOK": {
        "product_type": "copilot", "buyer": "developer", "outcome_measurable": False,
        "discrete_tasks": True, "human_equivalent_cost": "3", "cost_per_task": "0.04",
        "expected_volume": 400, "byok_requested": True, "unit": "suggestion"},
    "LLM API, consumption, developer": {
        "product_type": "api", "outcome_measurable": False, "discrete_tasks": False,
        "cost_per_task": "0.0004", "expected_volume": 2_000_000, "byok_requested": True},
    "writing service, consumption, business": {
        "product_type": "service", "buyer": "smb", "outcome_measurable": False,
        "discrete_tasks": False, "human_equivalent_cost": "2", "cost_per_task": "0.03",
        "expected_volume": 5000, "multiple_task_types": True},
    "free tier, enterprise motion": {
        **SUPPORT, "free_tier": True, "sales_motion": "enterprise"},
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generated_catalogs_validate_lint_clean_and_rate(name: str) -> None:
    answers = parse_answers(SCENARIOS[name])
    adv = advise(answers)
    assert adv.catalog is not None and adv.catalog_text is not None
    catalog = parse_catalog_text(adv.catalog_text)        # validates
    assert adv.findings == ()                             # lint-clean
    target = adv.archetype.target_margin
    cost = answers.cost_per_task or D(0)
    meter = next(iter(catalog.meters))
    for tier in adv.tiers:
        plan = catalog.plans[tier.code]
        assert plan.archetype == adv.archetype.code
        for q in (D(tier.included), tier.expected_volume.to_integral_value() * 3):
            quote = rate_plan(catalog, tier.code, {meter: MeterUsage(meter, q)})
            if tier.free:
                assert quote.total == 0
                continue
            assert quote.total > 0
            assert (quote.total - q * cost) / quote.total >= target
    # the JSON report serialises
    report = json.loads(dumps(adv.as_dict()))
    assert report["charge_metric"]["metric"] == adv.decision.metric.value
    assert report["catalog"]["plans"]


def test_support_agent_advice_in_detail() -> None:
    adv = advise(parse_answers(SUPPORT))
    assert adv.decision.metric.value == "outcome"
    assert adv.unit.unit.value == "direct"
    assert adv.archetype.code == "agent" and adv.archetype.target_margin == D("0.5")
    assert adv.price.recommended == D("2.74")
    assert adv.byok.verdict == "avoid"                    # business buyers
    assert adv.gap is None
    meter = adv.catalog["meters"]["resolutions"]  # type: ignore[index]
    assert meter["event"] == "ticket.closed" and meter["filter"] == {"outcome": "resolved"}
    assert adv.catalog["costs"] == {"meters": {"resolutions": "0.12"}}  # type: ignore[index]
    assert [t.code for t in adv.tiers] == ["starter", "pro", "enterprise"]
    assert adv.catalog_text is not None and adv.catalog_text.startswith("# Generated")


def test_byok_offer_adds_a_variant_of_the_right_tier() -> None:
    dev = advise(parse_answers(SCENARIOS["LLM API, consumption, developer"]))
    assert dev.byok.verdict == "offer"
    assert "pro_byok" in dev.catalog["plans"]  # type: ignore[index]
    ent = advise(parse_answers({**SCENARIOS["LLM API, consumption, developer"],
                                "buyer": "enterprise"}))
    assert "enterprise_byok" in ent.catalog["plans"]  # type: ignore[index]


def test_business_consumption_is_sold_as_credits() -> None:
    adv = advise(parse_answers(SCENARIOS["writing service, consumption, business"]))
    assert adv.unit.unit.value == "credits"
    meter = adv.catalog["meters"]["ai_credits"]  # type: ignore[index]
    assert meter["weights"]["values"] == {"simple": 1, "medium": 3, "complex": 10}
    assert all("credits" in p for p in adv.catalog["plans"].values())  # type: ignore[index]


def test_unviable_price_reports_the_cost_gap() -> None:
    adv = advise(parse_answers({**SUPPORT, "cost_per_task": "4"}))
    assert not adv.price.viable
    assert adv.gap is not None
    assert adv.gap.reduction_needed == D(1) - D("2.5") / D(4)   # max cost at 5: 2.5
    assert adv.gap.levers


def test_without_expected_volume_there_is_no_catalog() -> None:
    answers = {k: v for k, v in SUPPORT.items() if k != "expected_volume"}
    adv = advise(parse_answers(answers))
    assert adv.catalog is None and adv.tiers == ()
    assert any("expected_volume" in n for n in adv.notes)


def test_notes_flag_mismatches() -> None:
    adv = advise(parse_answers({"product_type": "agent", "outcome_measurable": False,
                                "discrete_tasks": False, "cost_per_task": "0.1"}))
    assert any("agents are best priced on outcomes" in n for n in adv.notes)
    assert any("no human-equivalent cost" in n for n in adv.notes)


# --------------------------------------------------------------------------- questionnaire


def test_flags_override_the_questionnaire_and_aliases_work() -> None:
    a = parse_answers({"Product": "support agent", "human-cost": "15", "byok": "yes",
                       "outcome_measurable": "no", "discrete_tasks": True},
                      {"human_equivalent_cost": "20", "buyer": None})
    assert a.product_type == "agent"
    assert a.human_equivalent_cost == D(20)
    assert a.byok_requested is True and a.outcome_measurable is False
    assert a.buyer == "business" and a.sales_motion == "sales_assisted"
    assert a.audience == "business"


def test_defaults_follow_the_archetype() -> None:
    api = parse_answers({"product_type": "api"})
    assert api.buyer == "developer" and api.sales_motion == "self_serve"
    assert api.audience == "developer"


@pytest.mark.parametrize(("data", "message"), [
    ({}, "product_type is required"),
    ({"product_type": "agent", "colour": "red"}, "unknown question 'colour'"),
    ({"product_type": "agent", "type": "agent"}, "a second time"),
    ({"product_type": "agent", "outcome_measurable": "maybe"}, "not yes/no"),
    ({"product_type": "agent", "cost_per_task": 0.1}, "quote it"),
    ({"product_type": "agent", "cost_per_task": "-1"}, "zero or positive"),
    ({"product_type": "agent", "expected_volume": 0}, "positive"),
    ({"product_type": "agent", "currency": "XYZ"}, "ISO 4217"),
    ({"product_type": "agent", "outcome_filter": "resolved"}, "outcome_filter"),
    ({"product_type": "agent", "task_weights": {"a": "-1"}}, "positive"),
    ({"product_type": "agent", "allocation_multiple": "4.5"}, "whole number"),
    ({"product_type": "agent", "annual_discounts": [1, 2]}, "three values"),
    ({"product_type": "agent", "seats": [1, 5]}, "three whole"),
    ({"product_type": "agent", "platform_fee_share": "0.9"}, "30-50%"),
])
def test_bad_answers_get_a_clear_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        advise(parse_answers(data))


def test_questionnaire_text_yaml_and_json() -> None:
    y = parse_questionnaire_text("product_type: agent\ncost_per_task: 0.5\n")
    assert parse_answers(y).cost_per_task == D("0.5")
    j = parse_questionnaire_text('{"product_type": "api", "cost_per_task": 0.0004}')
    assert parse_answers(j).cost_per_task == D("0.0004")     # JSON numbers read as written
    assert parse_questionnaire_text("") == {}
    with pytest.raises(InvalidInput, match="not valid YAML or JSON"):
        parse_questionnaire_text("{nope")
    with pytest.raises(InvalidInput, match="mapping"):
        parse_questionnaire_text("- a\n- b\n")


def test_one_annual_discount_applies_to_every_tier() -> None:
    a = parse_answers({**SUPPORT, "annual_discounts": "0.2"})
    assert a.annual_discounts == (D("0.2"),) * 3
    adv = advise(a)
    assert {t.annual_discount for t in adv.tiers} == {D("0.2")}
