"""The catalog linter: the playbook's pricing anti-patterns, found in a catalog.

Each rule names the anti-pattern, why it fails, and what to do instead. Severity
``error`` marks a plan that loses margin, cannot be billed without disputes, or
bills for the wrong unit; ``warning`` marks a go-to-market weakness. ``ratecard
catalog lint`` exits 1 when an error is found.

Rules (``rule`` ids are stable):

- ``agent-per-seat`` (error): an agent plan priced per seat (seats, or a charge on a
  unique count of users). Agents replace human work; per-seat pricing penalises the
  buyer for the agent's success. Use outcome or workflow pricing.
- ``flat-fee-unlimited-ai`` (error): a plan that charges a fixed fee but has no metered
  charge, no usage limit and no credits, in a catalog whose meters cost money to serve.
  Power users scale and margins collapse. Add a cap, credits, or a usage component.
  BYOK plans (the customer pays for its models) and self-hosted licenses (a one-time
  license: the customer runs the compute) are exempt.
- ``free-tier-without-limits`` (error): a free plan with no hard limit, no blocking
  credits and no paid usage. Users never convert and you fund their usage forever.
- ``no-self-serve-tier`` (warning): a product line with no self-serve plan. It misses
  bottom-up adoption and slows sales cycles. Add a self-serve tier.
- ``outcome-without-filter`` (error): a charge on an outcome meter (a resolution, a
  qualified lead, a conversion ...) whose meter has no ``filter`` defining success.
  Disputes follow over what counts as "resolved". Define the outcome in the meter.
- ``per-token-business-buyer`` (warning): per-token prices on a plan for non-technical
  buyers (``audience: business``). They cannot predict or understand the bill. Use
  credits, tasks or outcomes.
- ``margin-below-target`` (error): a plan whose real margin (given as input, from the
  margins report) is below its ``min_margin`` or its archetype's target.
- ``tier-count`` (warning): a product line with more than four tiers (decision
  paralysis) or fewer than two (take it or leave it). Three is the standard.

A *product line* is the set of plans sharing an archetype (plans without one form a
line of their own); BYOK variants are not counted as tiers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from ratecard.advisor.archetypes import ARCHETYPES, target_margin
from ratecard.catalog.schema import Catalog, Charge, Meter, Metered, Plan
from ratecard.errors import InvalidInput
from ratecard.money import D

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One anti-pattern found: the rule, how bad, where, why, and the fix."""

    rule: str
    severity: Severity
    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: [{self.rule}] {self.message} Fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "path": self.path,
                "message": self.message, "fix": self.fix}


RULES: dict[str, tuple[Severity, str]] = {
    "agent-per-seat": ("error", "per-seat pricing on an agent"),
    "flat-fee-unlimited-ai": ("error", "a flat fee with unlimited AI usage"),
    "free-tier-without-limits": ("error", "a free tier without limits"),
    "no-self-serve-tier": ("warning", "no self-serve tier"),
    "outcome-without-filter": ("error", "an outcome charge without a defined outcome filter"),
    "per-token-business-buyer": ("warning", "per-token prices for non-technical buyers"),
    "margin-below-target": ("error", "a real margin below the archetype's target"),
    "tier-count": ("warning", "more than four tiers or fewer than two"),
}

# Words that mark a meter as counting a business outcome.
OUTCOME_WORDS = frozenset({
    "outcome", "outcomes", "resolution", "resolutions", "resolved", "resolve", "lead",
    "leads", "qualified", "conversion", "conversions", "converted", "success",
    "successes", "successful", "succeeded", "deal", "deals", "won", "booking",
    "bookings", "booked", "appointment", "appointments", "match", "matches", "matched",
})
SEAT_WORDS = frozenset({"user", "users", "user_id", "member", "members", "member_id",
                        "seat", "seats", "seat_id", "employee", "employees", "agent_id"})


def _words(*texts: str | None) -> set[str]:
    out: set[str] = set()
    for t in texts:
        if t:
            out.update(w for w in re.split(r"[^a-z0-9]+", t.lower()) if w)
    return out


def is_token_meter(key: str, meter: Meter) -> bool:
    """A meter that counts model tokens (its key or property names tokens)."""
    words = _words(key, meter.property)
    return any(w in ("token", "tokens") or w.endswith("tokens") for w in words) or (
        meter.property is not None and "token" in meter.property.lower())


def is_outcome_meter(key: str, meter: Meter) -> bool:
    """A meter that counts business outcomes (by its key, event, name or unit)."""
    if meter.aggregation != "count":
        return False
    return bool(_words(key, meter.event, meter.name, meter.unit) & OUTCOME_WORDS)


def is_seat_meter(meter: Meter) -> bool:
    """A unique count of people: per-seat pricing in disguise (per active user)."""
    return meter.aggregation == "unique_count" and bool(_words(meter.property) & SEAT_WORDS)


def ai_meters(catalog: Catalog) -> set[str]:
    """Meters whose usage costs money to serve: a unit cost under ``costs.meters``, a
    token meter, or a meter split by model when the catalog prices models."""
    out = set(catalog.costs.meters)
    for key, m in catalog.meters.items():
        if is_token_meter(key, m) or (catalog.costs.models and "model" in m.group_by):
            out.add(key)
    return out


def _charges_money(plan: Plan) -> bool:
    return (plan.base_fee > 0 or (plan.seats is not None and plan.seats.unit_price > 0)
            or any(c.model == "flat" and (c.price or 0) > 0 for c in plan.charges)
            or plan.minimum > 0)


def _usage_charges(plan: Plan) -> list[Charge]:
    return [c for c in plan.charges if c.model != "flat" and c.meter]


def _metered_limits(plan: Plan, *, hard_only: bool) -> list[Metered]:
    return [e for e in plan.entitlements.values()
            if isinstance(e, Metered) and (e.hard or not hard_only)]


def is_free(plan: Plan) -> bool:
    """A free plan: marked ``free: true``, or (unmarked) one that charges nothing at all."""
    if plan.free is not None:
        return plan.free
    return not _charges_money(plan) and not plan.charges and not (
        plan.credits is not None and plan.credits.overage_unit_price)


def is_self_serve(code: str, plan: Plan) -> bool:
    """``self_serve`` when set; otherwise inferred: a free plan is self-serve; a plan
    with a committed minimum, a yearly interval or "enterprise" in its name is not."""
    if plan.self_serve is not None:
        return plan.self_serve
    if is_free(plan):
        return True
    name = f"{code} {plan.name or ''}".lower()
    return not (plan.minimum > 0 or plan.interval == "year" or "enterprise" in name)


def _self_hosted(plan: Plan) -> bool:
    return any(c.model == "flat" and c.once for c in plan.charges)


def _lines(catalog: Catalog) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for code, plan in catalog.plans.items():
        if plan.byok:
            continue
        lines.setdefault(plan.archetype or "", []).append(code)
    return lines


def _line_name(archetype: str) -> str:
    return f"the {archetype} plans" if archetype else "the plans without an archetype"


def _find(rule: str, path: str, message: str, fix: str) -> Finding:
    return Finding(rule, RULES[rule][0], path, message, fix)


def lint_catalog(
    catalog: Catalog, *, margins: Mapping[str, Decimal] | None = None
) -> list[Finding]:
    """Every anti-pattern in ``catalog``; ``margins`` (plan code → real gross margin as a
    fraction, e.g. from the margins report) enables the ``margin-below-target`` rule."""
    findings: list[Finding] = []
    costly = ai_meters(catalog)
    for code, plan in catalog.plans.items():
        findings.extend(_plan_findings(catalog, code, plan, costly))
    if margins:
        findings.extend(_margin_findings(catalog, margins))
    for archetype, codes in _lines(catalog).items():
        findings.extend(_line_findings(catalog, archetype, codes))
    return findings


def _plan_findings(catalog: Catalog, code: str, plan: Plan, costly: set[str]) -> list[Finding]:
    out: list[Finding] = []
    where = f"plans.{code}"
    # agent-per-seat
    if plan.archetype == "agent":
        if plan.seats is not None and plan.seats.unit_price > 0:
            out.append(_find(
                "agent-per-seat", f"{where}.seats",
                "this agent plan is priced per seat: agents replace human work, so per-seat "
                "pricing penalises the buyer for the agent's success (fewer humans, fewer "
                "seats, less revenue).",
                "price per outcome (a resolved ticket) or per workflow run (a task), with a "
                "platform fee for predictability."))
        for i, ch in enumerate(plan.charges):
            meter = catalog.meters.get(ch.meter or "")
            if meter is not None and is_seat_meter(meter):
                out.append(_find(
                    "agent-per-seat", f"{where}.charges[{i}]",
                    f"this agent plan charges per {ch.meter!r} (a unique count of people): "
                    "per-seat pricing in disguise, which shrinks as the agent replaces work.",
                    "charge per outcome or per task instead of per user."))
    # flat-fee-unlimited-ai
    if (costly and _charges_money(plan) and not _usage_charges(plan)
            and not _metered_limits(plan, hard_only=False) and plan.credits is None
            and not plan.byok and not _self_hosted(plan)):
        out.append(_find(
            "flat-fee-unlimited-ai", where,
            "a fixed fee with unlimited AI usage: nothing charges, caps or burns credits for "
            f"the usage that costs money to serve ({', '.join(sorted(costly))}); margins "
            "collapse as power users scale.",
            "add a usage cap (a metered entitlement with a limit), a credit allocation, or a "
            "usage charge with an included allocation and overage (a hybrid model)."))
    # free-tier-without-limits
    if is_free(plan):
        capped = bool(_metered_limits(plan, hard_only=True)) or (
            plan.credits is not None and plan.credits.on_exhausted == "block"
        ) or bool(_usage_charges(plan))
        if not capped:
            soft = _metered_limits(plan, hard_only=False)
            extra = " (its limits are soft: usage beyond them is allowed)" if soft else ""
            out.append(_find(
                "free-tier-without-limits", where,
                f"a free tier without hard usage limits{extra}: users have no reason to "
                "upgrade and you fund their usage forever.",
                "set clear hard limits (a metered entitlement with hard: true, or credits "
                "with on_exhausted: block) that create natural upgrade pressure."))
    # outcome-without-filter
    for i, ch in enumerate(plan.charges):
        meter = catalog.meters.get(ch.meter or "")
        if meter is not None and is_outcome_meter(ch.meter or "", meter) and not meter.filter:
            out.append(_find(
                "outcome-without-filter", f"{where}.charges[{i}]",
                f"an outcome charge on meter {ch.meter!r}, whose meter has no filter defining "
                "success: every event counts, and disputes follow over what counts as "
                "'resolved' or 'qualified'.",
                f"define the outcome in meters.{ch.meter}.filter (e.g. filter: {{outcome: "
                "resolved}}), and what is not charged (a handoff to a human), in the "
                "contract's measurement method."))
    # per-token-business-buyer
    if plan.audience == "business":
        for i, ch in enumerate(plan.charges):
            meter = catalog.meters.get(ch.meter or "")
            if meter is not None and ch.model != "flat" and is_token_meter(ch.meter or "", meter):
                out.append(_find(
                    "per-token-business-buyer", f"{where}.charges[{i}]",
                    f"per-token prices ({ch.meter!r}) on a plan for non-technical buyers: "
                    "they cannot predict or understand the bill.",
                    "sell credits (1 credit = 1 standard action), tasks or outcomes instead, "
                    "and keep tokens as the cost behind them."))
    return out


def _margin_findings(catalog: Catalog, margins: Mapping[str, Decimal]) -> list[Finding]:
    out: list[Finding] = []
    for code, plan in catalog.plans.items():
        if code not in margins:
            continue
        margin = margins[code]
        target = target_margin(plan.archetype, plan.min_margin)
        if target is None or margin >= target:
            continue
        source = ("its min_margin" if plan.min_margin is not None
                  else f"the {plan.archetype} target ({ARCHETYPES[plan.archetype].band})"
                  if plan.archetype in ARCHETYPES else "its target")
        out.append(_find(
            "margin-below-target", f"plans.{code}",
            f"real gross margin {_pct(margin)} is below {source} of {_pct(target)}.",
            "pull the margin levers (model routing, prompt caching, batch processing), raise "
            "the overage price or lower the included allocation, or move heavy users to a "
            "higher tier; simulate the change before publishing it."))
    return out


def _line_findings(catalog: Catalog, archetype: str, codes: list[str]) -> list[Finding]:
    out: list[Finding] = []
    where = "plans"
    n = len(codes)
    if n > 4:
        out.append(_find(
            "tier-count", where,
            f"{_line_name(archetype)} offer {n} tiers ({', '.join(codes)}): more than four "
            "creates decision paralysis.",
            "consolidate to three tiers (Starter, Pro, Enterprise), or split add-ons off the "
            "tier ladder."))
    elif n < 2:
        out.append(_find(
            "tier-count", where,
            f"{_line_name(archetype)} offer a single tier ({', '.join(codes)}): one price is "
            "a take-it-or-leave-it offer.",
            "offer three tiers: Starter (acquisition), Pro (core revenue), Enterprise "
            "(expansion)."))
    if not any(is_self_serve(c, catalog.plans[c]) for c in codes):
        out.append(_find(
            "no-self-serve-tier", where,
            f"none of {_line_name(archetype)} ({', '.join(codes)}) is self-serve: "
            "enterprise-only pricing misses bottom-up adoption and slows sales cycles.",
            "add a self-serve tier (monthly, no commitment, payable by card) for discovery "
            "and small teams, and mark it self_serve: true."))
    return out


def _pct(value: Decimal) -> str:
    return f"{(value * 100).quantize(Decimal('0.1'))}%"


def parse_margins(data: object, *, source: str = "margins") -> dict[str, Decimal]:
    """Plan margins from a mapping ``{plan: margin}``, each a fraction (``"0.55"``; a
    JSON or YAML number is read as written). Also accepts a margins report shaped
    ``{"plans": [{"plan": code, "margin": m}]}``, or a list of such rows.
    """
    rows: object = data
    if isinstance(data, Mapping) and isinstance(data.get("plans"), list):
        rows = data["plans"]
    pairs: list[tuple[object, object]] = []
    if isinstance(rows, Mapping):
        pairs = list(rows.items())
    elif isinstance(rows, list):
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping) or "plan" not in row:
                raise InvalidInput(f"{source}[{i}]: each row needs 'plan' and 'margin'")
            pairs.append((row["plan"], row.get("margin")))
    else:
        raise InvalidInput(f"{source}: give a mapping of plan code to margin "
                           "(e.g. pro: \"0.62\")")
    out: dict[str, Decimal] = {}
    for plan, value in pairs:
        if value is None:
            continue
        try:
            m = D(value) if not isinstance(value, float) else D(repr(value))
        except InvalidInput as e:
            raise InvalidInput(f"{source}.{plan}: {e}") from None
        if m > 1:
            raise InvalidInput(f"{source}.{plan}: {m} is not a fraction; write 0.55 for 55%")
        out[str(plan)] = m
    return out
