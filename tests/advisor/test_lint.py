"""Every lint rule with a catalog that triggers it and one that does not."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from ratecard.advisor.lint import RULES, Finding, lint_catalog, parse_margins
from ratecard.catalog import Catalog, load_catalog
from ratecard.errors import InvalidInput

Parse = Callable[[str], Catalog]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

METERS = """currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
  tasks: {event: agent.task, aggregation: count}
  tokens: {event: llm.request, aggregation: sum, property: input_tokens, group_by: [model]}
  active_users: {event: user.active, aggregation: unique_count, property: user_id}
  prompts: {event: coding.prompt, aggregation: count}
costs:
  models: {gpt-4o: {input: "2.50", output: "10.00"}}
  meters: {resolutions: "0.12", tasks: "0.05"}
plans:
"""

# Three self-serve-capable tiers that break no rule; each case adds one plan to them.
GOOD = """  starter:
    archetype: agent
    self_serve: true
    base_fee: 99
    charges: [{meter: resolutions, model: per_unit, included: 100, unit_price: "1.29"}]
  pro:
    archetype: agent
    self_serve: true
    base_fee: 499
    charges: [{meter: resolutions, model: per_unit, included: 500, unit_price: "0.99"}]
  enterprise:
    archetype: agent
    self_serve: false
    base_fee: 1999
    charges: [{meter: resolutions, model: per_unit, included: 2500, unit_price: "0.79"}]
"""


def rules_of(findings: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.rule, f.path) for f in findings)


def test_the_good_catalog_is_clean(catalog_from: Parse) -> None:
    assert lint_catalog(catalog_from(METERS + GOOD)) == []


CASES: list[tuple[str, str, str, str | None, str]] = [
    # rule, plan that triggers it, path, (or None), plan that does not
    ("agent-per-seat",
     """  team:
    archetype: agent
    seats: {unit_price: 49}
    charges: [{meter: tasks, model: per_unit, unit_price: "0.5"}]
""", "plans.team.seats",
     """  team:
    archetype: copilot
    seats: {unit_price: 49}
    charges: [{meter: tasks, model: per_unit, unit_price: "0.5"}]
""", "per-seat on a copilot is the copilot's model"),
    ("agent-per-seat",
     """  team:
    archetype: agent
    charges: [{meter: active_users, model: per_unit, unit_price: 20}]
""", "plans.team.charges[0]",
     """  team:
    archetype: agent
    charges: [{meter: tasks, model: per_unit, unit_price: "0.5"}]
""", "per task is workflow pricing"),
    ("flat-fee-unlimited-ai",
     """  unlimited:
    archetype: agent
    base_fee: 299
    entitlements: {sso: true, channels: [chat]}
""", "plans.unlimited",
     """  unlimited:
    archetype: agent
    base_fee: 299
    entitlements:
      tasks: {meter: tasks, limit: 5000, window: month}
""", "a usage cap"),
    ("flat-fee-unlimited-ai",
     """  seats_only:
    archetype: copilot
    seats: {unit_price: 39}
""", "plans.seats_only",
     """  seats_only:
    archetype: copilot
    seats: {unit_price: 39}
    credits: {grant: 1000, burn: {tasks: 1}, on_exhausted: block}
""", "credits"),
    ("free-tier-without-limits",
     """  free:
    archetype: agent
    free: true
    entitlements: {tasks: {meter: tasks, limit: 100, window: month, hard: false}}
""", "plans.free",
     """  free:
    archetype: agent
    free: true
    entitlements: {tasks: {meter: tasks, limit: 100, window: month, hard: true}}
""", "a hard cap"),
    ("free-tier-without-limits",
     """  hobby:
    archetype: agent
""", "plans.hobby",
     """  hobby:
    archetype: agent
    credits: {grant: 50, burn: {tasks: 1}, on_exhausted: block}
""", "blocking credits"),
    ("outcome-without-filter",
     """  outcomes:
    archetype: agent
    charges: [{meter: leads, model: per_unit, unit_price: 5}]
""", "plans.outcomes.charges[0]",
     """  outcomes:
    archetype: agent
    charges: [{meter: resolutions, model: per_unit, unit_price: 5}]
""", "the resolution meter filters on outcome: resolved"),
    ("per-token-business-buyer",
     """  tokens_biz:
    archetype: agent
    audience: business
    charges:
      - {meter: tokens, model: per_unit, per: 1000000, prices_by: model,
         prices: {gpt-4o: {unit_price: 5}}}
""", "plans.tokens_biz.charges[0]",
     """  tokens_biz:
    archetype: agent
    audience: developer
    charges:
      - {meter: tokens, model: per_unit, per: 1000000, prices_by: model,
         prices: {gpt-4o: {unit_price: 5}}}
""", "developers read token bills"),
]


@pytest.mark.parametrize(("rule", "bad", "path", "good", "why_good"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_triggers_and_does_not(catalog_from: Parse, rule: str, bad: str, path: str,
                                    good: str, why_good: str) -> None:
    extra = "  leads: {event: crm.lead, aggregation: count}\n"
    head = METERS.replace("plans:\n", "").rstrip("\n")
    head = head.replace("  prompts:", extra + "  prompts:")
    found = lint_catalog(catalog_from(head + "\nplans:\n" + GOOD + bad))
    hits = [f for f in found if f.rule == rule]
    assert [f.path for f in hits] == [path], found
    f = hits[0]
    assert f.severity == RULES[rule][0]
    assert f.message and f.fix
    clean = lint_catalog(catalog_from(head + "\nplans:\n" + GOOD + good))
    assert [f for f in clean if f.rule == rule] == [], why_good


def test_byok_and_self_hosted_plans_are_not_unlimited_ai(catalog_from: Parse) -> None:
    extra = """  byok:
    archetype: agent
    byok: true
    base_fee: 49
  private:
    archetype: agent
    interval: year
    charges:
      - {model: flat, price: 50000, once: true}
      - {model: flat, price: 10000}
"""
    found = lint_catalog(catalog_from(METERS + GOOD + extra))
    assert [f for f in found if f.rule == "flat-fee-unlimited-ai"] == []


def test_no_ai_meters_means_no_unlimited_ai_finding(catalog_from: Parse) -> None:
    text = """currency: USD
meters:
  logins: {event: sso.login, aggregation: count}
plans:
  basic: {archetype: service, self_serve: true, base_fee: 10}
  plus: {archetype: service, self_serve: true, base_fee: 20}
"""
    assert lint_catalog(catalog_from(text)) == []


def test_no_self_serve_tier(catalog_from: Parse) -> None:
    text = METERS + """  growth:
    archetype: agent
    self_serve: false
    base_fee: 999
    charges: [{meter: resolutions, model: per_unit, unit_price: 1}]
  enterprise:
    archetype: agent
    minimum: 5000
    charges: [{meter: resolutions, model: per_unit, unit_price: 1}]
"""
    found = lint_catalog(catalog_from(text))
    assert rules_of(found) == [("no-self-serve-tier", "plans")]
    assert found[0].severity == "warning"
    # an unmarked monthly plan without commitment counts as self-serve
    ok = text.replace("    self_serve: false\n", "")
    assert lint_catalog(catalog_from(ok)) == []


@pytest.mark.parametrize(("n", "message"), [(1, "single tier"), (5, "5 tiers")])
def test_tier_count(catalog_from: Parse, n: int, message: str) -> None:
    plans = "".join(
        f"""  t{i}:
    archetype: agent
    self_serve: true
    base_fee: {100 * (i + 1)}
    charges: [{{meter: resolutions, model: per_unit, included: 10, unit_price: 1}}]
""" for i in range(n))
    found = lint_catalog(catalog_from(METERS + plans))
    assert rules_of(found) == [("tier-count", "plans")]
    assert message in found[0].message
    assert found[0].severity == "warning"


def test_four_tiers_are_fine_and_byok_variants_do_not_count(catalog_from: Parse) -> None:
    four = GOOD + """  scale:
    archetype: agent
    base_fee: 999
    charges: [{meter: resolutions, model: per_unit, included: 1000, unit_price: "0.89"}]
  pro_byok:
    archetype: agent
    byok: true
    base_fee: 499
"""
    assert lint_catalog(catalog_from(METERS + four)) == []


def test_product_lines_are_counted_per_archetype(catalog_from: Parse) -> None:
    copilot = """  solo:
    archetype: copilot
    self_serve: true
    seats: {unit_price: 19}
    credits: {grant: 100, burn: {tasks: 1}, on_exhausted: block}
"""
    found = lint_catalog(catalog_from(METERS + GOOD + copilot))
    assert rules_of(found) == [("tier-count", "plans")]
    assert "copilot" in found[0].message


def test_margin_below_target(catalog_from: Parse) -> None:
    cat = catalog_from(METERS + GOOD.replace(
        "    self_serve: false\n", "    self_serve: false\n    min_margin: \"0.6\"\n"))
    margins = {"starter": Decimal("0.49"), "pro": Decimal("0.50"),
               "enterprise": Decimal("0.58"), "unknown_plan": Decimal("0.1")}
    found = lint_catalog(cat, margins=margins)
    assert rules_of(found) == [("margin-below-target", "plans.enterprise"),
                               ("margin-below-target", "plans.starter")]
    by_path = {f.path: f for f in found}
    assert "49.0%" in by_path["plans.starter"].message
    assert "agent target (50-65%)" in by_path["plans.starter"].message
    assert "min_margin" in by_path["plans.enterprise"].message
    assert all(f.severity == "error" for f in found)
    # on target: nothing; and without margins the rule cannot fire
    assert lint_catalog(cat, margins={"starter": Decimal("0.7"),
                                      "enterprise": Decimal("0.6")}) == []
    assert lint_catalog(cat) == []


def test_a_plan_without_a_target_is_not_judged_on_margin(catalog_from: Parse) -> None:
    text = METERS + """  a:
    self_serve: true
    charges: [{meter: tasks, model: per_unit, unit_price: 1}]
  b:
    charges: [{meter: tasks, model: per_unit, unit_price: 2}]
"""
    assert lint_catalog(catalog_from(text), margins={"a": Decimal("-0.5")}) == []


def test_parse_margins_shapes_and_errors() -> None:
    assert parse_margins({"pro": "0.55", "team": 1}) == {"pro": Decimal("0.55"),
                                                         "team": Decimal(1)}
    assert parse_margins({"plans": [{"plan": "pro", "margin": "0.4"},
                                    {"plan": "free", "margin": None}]}) == \
        {"pro": Decimal("0.4")}
    assert parse_margins({"pro": 0.62}) == {"pro": Decimal("0.62")}
    with pytest.raises(InvalidInput, match="fraction"):
        parse_margins({"pro": 55})
    with pytest.raises(InvalidInput, match="not a number"):
        parse_margins({"pro": "lots"})
    with pytest.raises(InvalidInput, match="mapping"):
        parse_margins("pro")
    with pytest.raises(InvalidInput, match=r"\[0\]"):
        parse_margins([{"margin": "0.1"}])


def test_findings_render_with_reason_and_fix(catalog_from: Parse) -> None:
    f = lint_catalog(catalog_from(METERS + "  x:\n    archetype: agent\n"
                                  "    seats: {unit_price: 9}\n"))
    seat = next(x for x in f if x.rule == "agent-per-seat")
    text = str(seat)
    assert text.startswith("error: plans.x.seats: [agent-per-seat]") and "Fix:" in text
    assert set(seat.as_dict()) == {"rule", "severity", "path", "message", "fix"}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_the_example_catalogs_have_no_errors(example: str) -> None:
    findings = lint_catalog(load_catalog(EXAMPLES / example))
    assert [f for f in findings if f.severity == "error"] == []
