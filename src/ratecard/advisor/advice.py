"""The advisor: from questionnaire answers to a pricing recommendation and a catalog.

:func:`advise` runs the playbook's decisions in order, each a pure function of the
answers: the charge metric (decision tree), direct metering or credits, the archetype
and its target margin, the price range (human-equivalent anchor, margin floor), the
cost gap and margin levers when the floor does not fit, BYOK, and (given an expected
volume) the three-tier hybrid catalog, validated by the catalog loader and checked by
the linter before it is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ratecard.advisor.archetypes import Archetype
from ratecard.advisor.archetypes import archetype as find_archetype
from ratecard.advisor.decision import (
    BillingUnit,
    ChargeMetric,
    MetricDecision,
    UnitDecision,
    choose_billing_unit,
    choose_charge_metric,
)
from ratecard.advisor.lint import Finding, lint_catalog
from ratecard.advisor.pricing import (
    SALES_MOTIONS,
    ByokAdvice,
    CostGap,
    PriceRange,
    cost_gap,
    price_range,
    recommend_byok,
)
from ratecard.advisor.questionnaire import Answers
from ratecard.advisor.tiers import (
    MeterSpec,
    Tier,
    TierDesign,
    build_catalog,
    catalog_yaml,
    design_tiers,
)
from ratecard.catalog.loader import parse_catalog_text
from ratecard.errors import CatalogInvalid, InvalidInput

DEFAULT_WEIGHTS = {"simple": Decimal(1), "medium": Decimal(3), "complex": Decimal(10)}

# The playbook's pricing-model → GTM map, for the model the advice lands on.
GTM: dict[str, dict[str, str]] = {
    "hybrid": {"motion": "sales-assisted to enterprise",
               "reps": "AE for enterprise, product-led growth for SMB",
               "comp": "quota on committed ARR plus usage overage",
               "success": "tiered, from tech-touch to dedicated"},
    "byok": {"motion": "developer-led, community-driven",
             "reps": "developer advocates plus enterprise AE",
             "comp": "quota on platform ARR",
             "success": "community plus enterprise CSM"},
}


@dataclass(frozen=True)
class Advice:
    answers: Answers
    archetype: Archetype
    decision: MetricDecision
    unit: UnitDecision
    price: PriceRange
    gap: CostGap | None
    byok: ByokAdvice
    meter: MeterSpec | None
    tiers: tuple[Tier, ...]
    catalog: dict[str, Any] | None
    catalog_text: str | None
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "answers": self.answers.as_dict(),
            "charge_metric": self.decision.as_dict(),
            "billing_unit": self.unit.as_dict(),
            "archetype": self.archetype.as_dict(),
            "price": self.price.as_dict(),
            "cost_gap": self.gap.as_dict() if self.gap else None,
            "byok": self.byok.as_dict(),
            "gtm": GTM["byok" if self.byok.verdict == "offer" else "hybrid"],
            "tiers": [t.as_dict() for t in self.tiers],
            "catalog": self.catalog,
            "lint": [f.as_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    if not s:
        raise InvalidInput(f"unit {text!r} gives no usable meter name; use letters")
    return s


def meter_spec(answers: Answers, metric: ChargeMetric, unit: BillingUnit) -> MeterSpec:
    """The meter the variable component bills on, named from the answers."""
    if unit is BillingUnit.CREDITS:
        weights = answers.task_weights or (DEFAULT_WEIGHTS if answers.multiple_task_types
                                           else None)
        return MeterSpec(key="ai_credits", event=answers.event or "ai.action",
                         unit=answers.unit or "credit", weights=weights)
    if metric is ChargeMetric.OUTCOME:
        name = answers.unit or "outcome"
        slug = _slug(name)
        return MeterSpec(key=slug if slug.endswith("s") else slug + "s",
                         event=answers.event or f"{slug}.recorded", unit=name,
                         filter=dict(answers.outcome_filter or {"result": "success"}))
    if metric is ChargeMetric.WORKFLOW:
        name = answers.unit or "task"
        slug = _slug(name)
        return MeterSpec(key=slug if slug.endswith("s") else slug + "s",
                         event=answers.event or f"{slug}.completed", unit=name,
                         filter=dict(answers.outcome_filter or {}),
                         weights=answers.task_weights)
    name = answers.unit or "api call"
    slug = _slug(name)
    return MeterSpec(key=slug if slug.endswith("s") else slug + "s",
                     event=answers.event or "api.request", unit=name)


def tier_design(answers: Answers) -> TierDesign:
    kw: dict[str, Any] = {"free_tier": answers.free_tier}
    if answers.platform_fee_share is not None:
        kw["fee_share"] = answers.platform_fee_share
    if answers.allocation_multiple is not None:
        kw["allocation_multiple"] = answers.allocation_multiple
    if answers.overage_multiple is not None:
        kw["overage_multiple"] = answers.overage_multiple
    if answers.annual_discounts is not None:
        kw["annual_discounts"] = answers.annual_discounts
    if answers.volume_discount is not None:
        kw["volume_discount"] = answers.volume_discount
    if answers.seats is not None:
        kw["seats"] = answers.seats
    return TierDesign(**kw)


def advise(answers: Answers) -> Advice:
    """Every decision for ``answers``; the catalog only when ``expected_volume`` is known."""
    arch = find_archetype(answers.product_type)
    design = tier_design(answers)   # validates the knobs even when no catalog is made
    decision = choose_charge_metric(
        outcome_measurable=answers.outcome_measurable,
        outcome_attributable=answers.outcome_attributable,
        discrete_tasks=answers.discrete_tasks,
    )
    unit = choose_billing_unit(decision.metric, technical_buyer=answers.technical_buyer,
                               multiple_task_types=answers.multiple_task_types)
    price = price_range(
        human_equivalent_cost=answers.human_equivalent_cost,
        cost_per_task=answers.cost_per_task,
        target_margin=arch.target_margin,
        margin_high=arch.margin_high,
        position=SALES_MOTIONS[answers.sales_motion],
    )
    gap = None
    if answers.cost_per_task is not None and not price.viable:
        gap = cost_gap(answers.cost_per_task, price.high, arch.target_margin)
    byok = recommend_byok(
        buyer_type=answers.buyer, requested=answers.byok_requested,
        data_sensitive=answers.data_sensitive, fine_tuned=answers.fine_tuned,
        needs_model_markup=answers.needs_model_markup,
        quality_guarantee=answers.quality_guarantee,
        multi_model_routing=answers.multi_model_routing,
    )
    notes = list(_notes(answers, arch, decision))
    if answers.cost_source:
        notes.append(f"cost per task from {answers.cost_source}")
    if answers.expected_volume is None:
        notes.append("give expected_volume (units a typical Pro customer uses per month) to "
                     "generate the three-tier catalog")
        return Advice(answers, arch, decision, unit, price, gap, byok, None, (), None, None,
                      (), tuple(notes))
    meter = meter_spec(answers, decision.metric, unit.unit)
    tiers = design_tiers(archetype=arch, unit_price=price.recommended,
                         expected_volume=answers.expected_volume,
                         cost_per_unit=answers.cost_per_task,
                         target_margin=arch.target_margin, design=design)
    byok_tier = None
    if byok.verdict == "offer":
        byok_tier = tiers[2].code if answers.buyer == "enterprise" else tiers[1].code
    catalog = build_catalog(
        tiers, archetype=arch, metric=decision.metric, billing_unit=unit.unit, meter=meter,
        currency=answers.currency, audience=answers.audience,
        cost_per_unit=answers.cost_per_task, byok_tier=byok_tier, name=answers.name,
    )
    text = catalog_yaml(catalog, header=_header(arch, decision))
    try:
        parsed = parse_catalog_text(text, name="<generated catalog>")
    except CatalogInvalid as e:  # a bug in the generator, not the user's input
        raise AssertionError(f"the generated catalog does not validate: {e}") from e
    findings = tuple(lint_catalog(parsed))
    if any(t.floor_raised for t in tiers):
        raised = ", ".join(t.name for t in tiers if t.floor_raised)
        notes.append(f"platform fee raised to the margin floor on {raised}: the included "
                     "allocation alone must earn the target margin")
    return Advice(answers, arch, decision, unit, price, gap, byok, meter, tiers, catalog,
                  text, findings, tuple(notes))


def _notes(answers: Answers, arch: Archetype, decision: MetricDecision) -> list[str]:
    notes: list[str] = []
    metric = decision.metric
    if arch.code == "agent" and metric is ChargeMetric.CONSUMPTION:
        notes.append("agents are best priced on outcomes or workflows; consumption leaves "
                     "the buyer with unpredictable bills: look for a countable task")
    if arch.code == "copilot" and metric is ChargeMetric.OUTCOME:
        notes.append("copilots usually price per seat (plus credits): the human owns the "
                     "outcome, so attribution to the copilot will be argued")
    if metric is ChargeMetric.OUTCOME and answers.outcome_filter is None:
        notes.append("define success precisely: the generated meter counts events with "
                     "result=success; replace it with your outcome_filter")
    if answers.sales_motion == "enterprise":
        notes.append("the catalog keeps a self-serve tier even for an enterprise motion: "
                     "enterprise-only pricing misses bottom-up adoption")
    if answers.human_equivalent_cost is None:
        notes.append("no human-equivalent cost: the price is set from cost and margin only")
    return notes


def _header(arch: Archetype, decision: MetricDecision) -> str:
    return (
        f"Generated by ratecard advise: {arch.code} archetype, {decision.metric.value} "
        f"charge metric, target margin {int(arch.target_margin * 100)}%.\n"
        "Platform fee ~30-50% of expected revenue, allocation x3-5 per tier, overage "
        "1.2-2x the included unit cost.\n"
        "Review the meter's event and filter, then simulate before publishing."
    )
