"""The pricing advisor: the playbook's frameworks as functions over real inputs.

- :mod:`~ratecard.advisor.decision`: the charge-metric decision tree, credits vs. direct.
- :mod:`~ratecard.advisor.archetypes`: copilot / agent / service / api and target margins.
- :mod:`~ratecard.advisor.pricing`: price range, margin floor, margin levers, BYOK.
- :mod:`~ratecard.advisor.tiers`: the three-tier hybrid catalog generator.
- :mod:`~ratecard.advisor.lint`: the anti-pattern linter for catalogs.
- :mod:`~ratecard.advisor.advice`: all of it from one questionnaire.

Everything here is pure: no storage, no I/O beyond parsing text given to it.
"""

from ratecard.advisor.advice import Advice, advise
from ratecard.advisor.archetypes import ARCHETYPES, Archetype, archetype, target_margin
from ratecard.advisor.decision import (
    BillingUnit,
    ChargeMetric,
    MetricDecision,
    choose_billing_unit,
    choose_charge_metric,
)
from ratecard.advisor.lint import RULES, Finding, lint_catalog, parse_margins
from ratecard.advisor.pricing import PriceRange, cost_gap, price_range, recommend_byok
from ratecard.advisor.questionnaire import Answers, parse_answers
from ratecard.advisor.tiers import TierDesign, build_catalog, catalog_yaml, design_tiers

__all__ = [
    "ARCHETYPES",
    "RULES",
    "Advice",
    "Answers",
    "Archetype",
    "BillingUnit",
    "ChargeMetric",
    "Finding",
    "MetricDecision",
    "PriceRange",
    "TierDesign",
    "advise",
    "archetype",
    "build_catalog",
    "catalog_yaml",
    "choose_billing_unit",
    "choose_charge_metric",
    "cost_gap",
    "design_tiers",
    "lint_catalog",
    "parse_answers",
    "parse_margins",
    "price_range",
    "recommend_byok",
    "target_margin",
]
