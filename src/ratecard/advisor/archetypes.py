"""Product archetypes and their target gross margins.

The playbook sorts AI products by how much a human stays in the loop, and each kind
gets its own pricing model, margin target and sales motion:

- **copilot** (augments a human doing the job): per seat, or per seat plus credits;
  gross margin 70-80%; self-serve to sales-assisted; expands with more seats and more
  usage per seat.
- **agent** (completes a defined task on its own): outcome or workflow pricing, never
  per seat (fewer humans is the whole point); gross margin 50-65%; sales-assisted to
  enterprise; expands with more task types and volume.
- **service** (a service delivered with AI at its core): retainer, project or
  per-deliverable fees; gross margin 60-75%; sales-assisted to high-touch.
- **api** (a platform or API sold to builders): the playbook has no archetype row for
  it; it prices by consumption for technical buyers. We give it the band the playbook
  sets for a growth-stage AI company that optimises its costs, 50-65% ("get to 60%+").

A plan's *target* is the low end of its band: the margin below which the linter
complains and the floor the advisor prices against. A plan's own ``min_margin`` in the
catalog overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ratecard.errors import InvalidInput


@dataclass(frozen=True)
class Archetype:
    """One product archetype: what it does, how it is priced, and its margin band."""

    code: str
    title: str
    does: str
    pricing_models: tuple[str, ...]
    margin_low: Decimal
    margin_high: Decimal
    buyer: str
    sales_motion: str
    expansion_lever: str
    value_story: str
    seats_fit: bool
    note: str = ""

    @property
    def target_margin(self) -> Decimal:
        """The lowest acceptable gross margin (the low end of the band)."""
        return self.margin_low

    @property
    def band(self) -> str:
        lo = int(self.margin_low * 100)
        hi = int(self.margin_high * 100)
        return f"{lo}-{hi}%"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "title": self.title,
            "does": self.does,
            "pricing_models": list(self.pricing_models),
            "target_margin": self.target_margin,
            "margin_band": [self.margin_low, self.margin_high],
            "buyer": self.buyer,
            "sales_motion": self.sales_motion,
            "expansion_lever": self.expansion_lever,
            "value_story": self.value_story,
            "note": self.note,
        }


ARCHETYPES: dict[str, Archetype] = {
    "copilot": Archetype(
        code="copilot",
        title="Copilot (augments a human)",
        does="assists a human doing their job; the human stays in the loop",
        pricing_models=("per seat", "per seat + credits"),
        margin_low=Decimal("0.70"),
        margin_high=Decimal("0.80"),
        buyer="department head, IT procurement",
        sales_motion="self-serve to sales-assisted",
        expansion_lever="more seats, more usage per seat",
        value_story="your team does more with less effort",
        seats_fit=True,
    ),
    "agent": Archetype(
        code="agent",
        title="Agent (replaces a human task)",
        does="completes a defined task on its own",
        pricing_models=("outcome", "workflow"),
        margin_low=Decimal("0.50"),
        margin_high=Decimal("0.65"),
        buyer="operations leader, CFO",
        sales_motion="sales-assisted to enterprise",
        expansion_lever="more task types, more volume",
        value_story="this work gets done without a human",
        seats_fit=False,
    ),
    "service": Archetype(
        code="service",
        title="AI-enabled service",
        does="delivers a service with AI at its core",
        pricing_models=("monthly retainer", "per project", "per deliverable",
                        "retainer + overage"),
        margin_low=Decimal("0.60"),
        margin_high=Decimal("0.75"),
        buyer="founder, agency owner, department head",
        sales_motion="sales-assisted to high-touch",
        expansion_lever="more deliverables, more workflows",
        value_story="expert-level output at a fraction of the cost",
        seats_fit=False,
    ),
    "api": Archetype(
        code="api",
        title="API / platform",
        does="sells model capability to builders who integrate it",
        pricing_models=("consumption", "base + consumption", "BYOK + platform fee"),
        margin_low=Decimal("0.50"),
        margin_high=Decimal("0.65"),
        buyer="developer",
        sales_motion="product-led, self-serve",
        expansion_lever="more calls, more models, committed spend",
        value_story="capability you build on without running models yourself",
        seats_fit=False,
        note="no archetype row in the playbook; uses its growth-stage band (50-65%)",
    ),
}

# Friendlier names a questionnaire may use for the product type.
_ALIASES: dict[str, str] = {
    "assistant": "copilot",
    "coding_assistant": "copilot",
    "copilot": "copilot",
    "agent": "agent",
    "support_agent": "agent",
    "ai_agent": "agent",
    "service": "service",
    "ai_service": "service",
    "ai-enabled service": "service",
    "ai_enabled_service": "service",
    "api": "api",
    "llm_api": "api",
    "platform": "api",
    "api_platform": "api",
}


def archetype(code: str) -> Archetype:
    """The archetype for a product type (``copilot``, ``agent``, ``service``, ``api`` or an
    alias such as ``support_agent`` or ``platform``)."""
    key = code.strip().lower().replace("-", "_").replace(" ", "_")
    real = _ALIASES.get(key)
    if real is None:
        raise InvalidInput(
            f"product type {code!r} is not known; use copilot (augments a human), agent "
            "(completes tasks on its own), service (AI-enabled service) or api (platform)"
        )
    return ARCHETYPES[real]


def target_margin(archetype_code: str | None, min_margin: Decimal | None = None) -> Decimal | None:
    """The margin a plan must reach: its own ``min_margin`` if set, else its archetype's."""
    if min_margin is not None:
        return min_margin
    if archetype_code is None:
        return None
    found = ARCHETYPES.get(archetype_code)
    return found.target_margin if found else None
