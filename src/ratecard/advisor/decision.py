"""The charge metric: what unit of value a product bills for.

Everything downstream (meters, tiers, margins, the sales motion) follows from this
choice, so it is made first, with the playbook's decision tree::

    Can the customer measure a specific business outcome of the product?
      yes -> Is that outcome attributable to this product alone (not shared with
             other tools)?
               yes -> OUTCOME   (per resolved ticket, per qualified lead)
               no  -> WORKFLOW  (shared attribution: charge for the work done)
      no  -> Does the customer perform discrete, countable tasks?
               yes -> WORKFLOW  (per task, per run, per document)
               no  -> CONSUMPTION (per token, per API call, per credit)

:func:`choose_charge_metric` walks that tree and returns the path it took, so the
advice explains itself. :func:`choose_billing_unit` then decides between raw metering
and credits, from the playbook's "credits vs. direct metering" table and its
anti-pattern "charging per token to non-technical buyers".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ratecard.errors import InvalidInput


class ChargeMetric(StrEnum):
    OUTCOME = "outcome"
    WORKFLOW = "workflow"
    CONSUMPTION = "consumption"


# What each metric bills for, what it is best for, what to watch out for (the playbook's
# "three charge metrics" table, in short).
METRICS: dict[ChargeMetric, dict[str, str]] = {
    ChargeMetric.OUTCOME: {
        "bills_for": "each achieved business outcome (resolved ticket, qualified lead)",
        "best_when": "the outcome is measurable and attributable: maximum value alignment",
        "watch_out": "you absorb cost variability; define 'success' precisely, and what "
                     "happens when it fails (a handoff to a human is not charged)",
    },
    ChargeMetric.WORKFLOW: {
        "bills_for": "each unit of work (automation run, agent task, document processed)",
        "best_when": "each task saves clear time and its boundaries are easy to define",
        "watch_out": "define task boundaries precisely; scope creep erodes margins",
    },
    ChargeMetric.CONSUMPTION: {
        "bills_for": "raw use (tokens, API calls, compute minutes, credits)",
        "best_when": "a technical buyer wants granular control; platform or API products",
        "watch_out": "unpredictable bills make customers afraid to use the product",
    },
}


@dataclass(frozen=True)
class Step:
    """One question of the tree, the answer given, and where it led."""

    question: str
    answer: bool
    leads_to: str

    def as_dict(self) -> dict[str, object]:
        return {"question": self.question, "answer": "yes" if self.answer else "no",
                "leads_to": self.leads_to}


@dataclass(frozen=True)
class MetricDecision:
    """The charge metric, the path through the tree, and why."""

    metric: ChargeMetric
    path: tuple[Step, ...]
    reason: str

    @property
    def profile(self) -> dict[str, str]:
        return METRICS[self.metric]

    def explain(self) -> list[str]:
        lines = [f"{s.question} {'yes' if s.answer else 'no'} -> {s.leads_to}"
                 for s in self.path]
        lines.append(f"=> {self.metric.value.upper()}: {self.reason}")
        return lines

    def as_dict(self) -> dict[str, object]:
        return {"metric": self.metric.value, "path": [s.as_dict() for s in self.path],
                "reason": self.reason, **self.profile}


Q_MEASURABLE = "Can the customer measure a specific business outcome from the product?"
Q_ATTRIBUTABLE = "Is that outcome attributable to this product alone (not shared with other tools)?"
Q_DISCRETE = "Does the customer perform discrete, countable tasks?"


def _need(value: bool | None, name: str, question: str) -> bool:
    if value is None:
        raise InvalidInput(
            f"the charge-metric decision needs an answer to {question!r}: set {name} to "
            "true or false"
        )
    return value


def choose_charge_metric(
    *,
    outcome_measurable: bool | None,
    outcome_attributable: bool | None = None,
    discrete_tasks: bool | None = None,
) -> MetricDecision:
    """Walk the playbook's charge-metric tree.

    Only the questions on the path taken must be answered: ``outcome_attributable``
    only when an outcome is measurable, ``discrete_tasks`` only when it is not. A
    missing answer on the path raises :class:`InvalidInput` naming the field.
    """
    measurable = _need(outcome_measurable, "outcome_measurable", Q_MEASURABLE)
    if measurable:
        attributable = _need(outcome_attributable, "outcome_attributable", Q_ATTRIBUTABLE)
        if attributable:
            return MetricDecision(
                ChargeMetric.OUTCOME,
                (Step(Q_MEASURABLE, True, "attribution"),
                 Step(Q_ATTRIBUTABLE, True, "outcome")),
                "the outcome is measurable and yours alone: charge per outcome achieved "
                "(per resolved ticket, per qualified lead)",
            )
        return MetricDecision(
            ChargeMetric.WORKFLOW,
            (Step(Q_MEASURABLE, True, "attribution"),
             Step(Q_ATTRIBUTABLE, False, "workflow")),
            "the outcome is shared with other tools, so charging for it invites disputes: "
            "charge for the work your product does (per task or run)",
        )
    discrete = _need(discrete_tasks, "discrete_tasks", Q_DISCRETE)
    if discrete:
        return MetricDecision(
            ChargeMetric.WORKFLOW,
            (Step(Q_MEASURABLE, False, "tasks"), Step(Q_DISCRETE, True, "workflow")),
            "no outcome to measure, but the work comes in countable tasks: charge per task, "
            "per run, per document",
        )
    return MetricDecision(
        ChargeMetric.CONSUMPTION,
        (Step(Q_MEASURABLE, False, "tasks"), Step(Q_DISCRETE, False, "consumption")),
        "value is diffuse and the work is not discrete: charge for consumption (per token, "
        "per API call, per credit)",
    )


class BillingUnit(StrEnum):
    DIRECT = "direct"    # the raw unit appears on the invoice (per resolution, per call)
    CREDITS = "credits"  # usage burns credits from an allocation; credits are priced


@dataclass(frozen=True)
class UnitDecision:
    unit: BillingUnit
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"unit": self.unit.value, "reasons": list(self.reasons)}


def choose_billing_unit(
    metric: ChargeMetric,
    *,
    technical_buyer: bool,
    multiple_task_types: bool = False,
) -> UnitDecision:
    """Direct metering or credits, per the playbook.

    Credits sit between raw consumption and the customer: they fit several task types
    with different costs, let model costs change without repricing, and hide token
    economics. Direct metering fits a single task type, a buyer who expects a
    transparent per-unit cost, and developers who want raw metrics. Outcomes are always
    billed directly (the outcome *is* the unit). Consumption for a non-technical buyer
    always goes through credits: per-token bills are an anti-pattern for them.
    """
    if metric is ChargeMetric.OUTCOME:
        return UnitDecision(BillingUnit.DIRECT, (
            "an outcome is already the unit the buyer understands; bill it directly",))
    if metric is ChargeMetric.CONSUMPTION and not technical_buyer:
        return UnitDecision(BillingUnit.CREDITS, (
            "per-token or per-call bills are unpredictable for a non-technical buyer; "
            "sell credits (1 credit = 1 standard action) instead",))
    if technical_buyer:
        reasons = ["a developer audience wants raw metrics and a transparent unit price"]
        if multiple_task_types:
            reasons.append("several task types would favour credits, but raw metering keeps "
                           "the bill checkable for a technical buyer")
        return UnitDecision(BillingUnit.DIRECT, tuple(reasons))
    if multiple_task_types:
        return UnitDecision(BillingUnit.CREDITS, (
            "several task types with different costs: weight them in credits (simple 1, "
            "medium 3, complex 10) so one price covers them and models can change without "
            "repricing",))
    return UnitDecision(BillingUnit.DIRECT, (
        "a single task type: the buyer expects a transparent price per task",))
