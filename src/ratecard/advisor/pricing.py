"""Where to set the price, whether to offer BYOK, and which margin levers to pull.

**Price range.** The playbook anchors an AI product's price to what the same work costs
the buyer when a human does it: charge between a tenth and a third of the human
equivalent (a human agent costs $15 a ticket; charge $1.50-5.00). The value anchor is
the ceiling; the cost is the floor: a price below ``cost per task / (1 - target
margin)`` misses the archetype's margin target however well it sells. Without a human
equivalent (an API has none) the range comes from cost alone: the archetype's margin
band, ``cost / (1 - band low)`` to ``cost / (1 - band high)``.

Within the range, the sales motion sets the point: a self-serve buyer compares prices
on a page (lower quarter), a sales-assisted deal argues ROI (middle), an enterprise or
consultative sale sells on value (upper quarter). Points are placed geometrically, since
the range spans a factor of 3.3.

**BYOK.** Bring-your-own-key lets customers use their own model contracts: the vendor
charges for its software layer, the customer pays the model provider. The playbook's
factors (customer type, model preference, margin goal, one bill or two, support
burden, switching cost, data sensitivity) and its "when not to offer" list decide it.

**Margin levers.** When the cost floor does not fit under the value ceiling, the
playbook's margin-improvement stack says what can close the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from ratecard.errors import InvalidInput
from ratecard.money import ONE, ZERO

# Position inside the range, per sales motion (0 = low end, 1 = high end).
SALES_MOTIONS: dict[str, Decimal] = {
    "self_serve": Decimal("0.25"),
    "sales_assisted": Decimal("0.5"),
    "enterprise": Decimal("0.75"),
}
LOW_DIVISOR = Decimal(10)   # a tenth of the human-equivalent cost
HIGH_DIVISOR = Decimal(3)   # a third of it


def sales_motion(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"self_service": "self_serve", "plg": "self_serve", "product_led": "self_serve",
               "sales": "sales_assisted", "assisted": "sales_assisted",
               "high_touch": "enterprise", "consultative": "enterprise"}
    key = aliases.get(key, key)
    if key not in SALES_MOTIONS:
        raise InvalidInput(
            f"sales motion {name!r} is not known; use self_serve, sales_assisted or enterprise"
        )
    return key


def round_sig_up(value: Decimal, digits: int = 3) -> Decimal:
    """``value`` rounded up to ``digits`` significant digits (a presentable price that
    never falls below the value computed)."""
    if value <= 0:
        return ZERO
    quantum = Decimal(1).scaleb(value.adjusted() - digits + 1)
    out = value.quantize(quantum, rounding=ROUND_CEILING)
    return out if quantum < 1 else out.quantize(ONE)


def margin_at(price: Decimal, cost: Decimal) -> Decimal | None:
    """Gross margin of selling one unit costing ``cost`` at ``price`` (None at price 0)."""
    if price <= 0:
        return None
    return (price - cost) / price


def floor_price(cost_per_task: Decimal, target_margin: Decimal) -> Decimal:
    """The lowest unit price that still earns ``target_margin``: ``cost / (1 - margin)``."""
    if not (ZERO <= target_margin < ONE):
        raise InvalidInput(f"target margin {target_margin} must be a fraction in [0, 1)")
    return cost_per_task / (ONE - target_margin)


def _geometric(low: Decimal, high: Decimal, position: Decimal) -> Decimal:
    if low <= 0 or high <= low:
        return low
    return low * (high / low) ** position


@dataclass(frozen=True)
class PriceRange:
    """The price range for one unit of the charge metric and the point recommended."""

    anchor: Literal["human", "cost"]
    low: Decimal
    high: Decimal
    floor: Decimal | None
    recommended: Decimal
    target_margin: Decimal
    human_equivalent_cost: Decimal | None
    cost_per_task: Decimal | None
    position: Decimal
    viable: bool
    floor_binding: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def margin_at_recommended(self) -> Decimal | None:
        if self.cost_per_task is None:
            return None
        return margin_at(self.recommended, self.cost_per_task)

    def as_dict(self) -> dict[str, object]:
        return {
            "anchor": self.anchor,
            "low": self.low,
            "high": self.high,
            "floor": self.floor,
            "recommended": self.recommended,
            "target_margin": self.target_margin,
            "margin_at_recommended": self.margin_at_recommended,
            "human_equivalent_cost": self.human_equivalent_cost,
            "cost_per_task": self.cost_per_task,
            "viable": self.viable,
            "floor_binding": self.floor_binding,
            "notes": list(self.notes),
        }


def price_range(
    *,
    human_equivalent_cost: Decimal | None,
    cost_per_task: Decimal | None,
    target_margin: Decimal,
    margin_high: Decimal | None = None,
    position: Decimal = Decimal("0.5"),
) -> PriceRange:
    """The playbook's price range for one unit of work.

    With a human-equivalent cost ``H``: ``[H/10, H/3]``, the recommended point placed
    at ``position`` (geometric) and never below the floor ``cost / (1 - target)``. A
    floor above ``H/3`` means the product cannot reach its margin at a price that
    still undercuts a human by 3x: the range is reported as not viable and the floor
    is recommended. Without ``H``: the range is the archetype's margin band over the
    cost per task. One of the two inputs is required.
    """
    if human_equivalent_cost is None and cost_per_task is None:
        raise InvalidInput(
            "a price range needs human_equivalent_cost (what the work costs done by a "
            "human) or cost_per_task (what one unit costs you to serve), or both"
        )
    if human_equivalent_cost is not None and human_equivalent_cost <= 0:
        raise InvalidInput("human_equivalent_cost must be positive")
    if cost_per_task is not None and cost_per_task < 0:
        raise InvalidInput("cost_per_task must not be negative")
    if not (ZERO <= position <= ONE):
        raise InvalidInput("position in the price range must be between 0 and 1")
    floor = floor_price(cost_per_task, target_margin) if cost_per_task is not None else None
    notes: list[str] = []
    if human_equivalent_cost is not None:
        low = human_equivalent_cost / LOW_DIVISOR
        high = human_equivalent_cost / HIGH_DIVISOR
        point = _geometric(low, high, position)
        viable = floor is None or floor <= high
        binding = floor is not None and floor > point
        recommended = round_sig_up(max(point, floor) if floor is not None else point)
        if floor is None:
            notes.append("no cost per task given: the margin floor is unknown; measure it "
                         "(ratecard margins) before publishing a price")
        elif not viable:
            notes.append(
                f"the margin floor {round_sig_up(floor)} is above a third of the human "
                f"cost ({round_sig_up(high)}): cut the cost per task (see the margin "
                "levers) or sell on value beyond replacing labour"
            )
        elif binding:
            notes.append("the margin floor is above the motion's point in the range: priced "
                         "at the floor")
        return PriceRange("human", low, high, floor, recommended, target_margin,
                          human_equivalent_cost, cost_per_task, position, viable, binding,
                          tuple(notes))
    assert cost_per_task is not None and floor is not None
    top = margin_high if margin_high is not None and margin_high > target_margin else None
    high = floor_price(cost_per_task, top) if top is not None else floor
    recommended = round_sig_up(_geometric(floor, high, position) if high > floor else floor)
    notes.append("no human-equivalent cost: the range is the archetype's margin band over "
                 "the cost per task (cost-plus); check it against what buyers pay today")
    return PriceRange("cost", floor, high, floor, recommended, target_margin, None,
                      cost_per_task, position, True, False, tuple(notes))


# --------------------------------------------------------------------------- margin levers


@dataclass(frozen=True)
class Lever:
    name: str
    reduction_low: Decimal   # cost reduction on the work it applies to
    reduction_high: Decimal
    effort: str
    how: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "reduction": [self.reduction_low, self.reduction_high],
                "effort": self.effort, "how": self.how}


# The playbook's margin improvement stack, ordered by typical impact.
MARGIN_LEVERS: tuple[Lever, ...] = (
    Lever("model routing", Decimal("0.50"), Decimal("0.98"), "medium",
          "route simple tasks to small models; keep frontier models for complex ones"),
    Lever("prompt caching", Decimal("0.45"), Decimal("0.80"), "low",
          "cache common prompt prefixes (cache reads cost 50-90% less)"),
    Lever("batch processing", Decimal("0.50"), Decimal("0.50"), "low",
          "send non-real-time work through batch APIs at half price"),
    Lever("fine-tuned small models", Decimal("0.60"), Decimal("0.80"), "high",
          "train task-specific small models that match frontier quality on narrow tasks"),
    Lever("prompt optimization", Decimal("0.20"), Decimal("0.40"), "low-medium",
          "shorter prompts, better few-shot examples, structured outputs"),
    Lever("response caching", Decimal("0.30"), Decimal("0.60"), "low",
          "cache identical or near-identical requests; semantic caching for similar ones"),
    Lever("infrastructure optimization", Decimal("0.10"), Decimal("0.30"), "medium-high",
          "spot instances, reserved capacity, multi-region routing for cost"),
)


@dataclass(frozen=True)
class CostGap:
    """How far the cost per task must fall for ``price`` to earn ``target_margin``."""

    cost_per_task: Decimal
    price: Decimal
    target_margin: Decimal
    max_cost: Decimal
    reduction_needed: Decimal
    levers: tuple[Lever, ...]

    def as_dict(self) -> dict[str, object]:
        return {"cost_per_task": self.cost_per_task, "price": self.price,
                "target_margin": self.target_margin, "max_cost": self.max_cost,
                "reduction_needed": self.reduction_needed,
                "levers": [lv.as_dict() for lv in self.levers]}


def cost_gap(cost_per_task: Decimal, price: Decimal, target_margin: Decimal) -> CostGap | None:
    """The cost reduction needed to earn ``target_margin`` at ``price``, and the levers
    that can deliver it alone (their best case covers the gap), in the playbook's order
    of impact; None when the margin already holds."""
    max_cost = price * (ONE - target_margin)
    if cost_per_task <= max_cost or cost_per_task == 0:
        return None
    needed = ONE - max_cost / cost_per_task
    levers = tuple(lv for lv in MARGIN_LEVERS if lv.reduction_high >= needed)
    return CostGap(cost_per_task, price, target_margin, max_cost, needed, levers)


# --------------------------------------------------------------------------- BYOK

BUYERS = ("developer", "business", "enterprise", "smb")
TECHNICAL_BUYERS = ("developer",)
BYOK_MARKUP = Decimal("0.05")  # a routing fee on provider cost, as OpenRouter charges


def buyer(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"developers": "developer", "dev": "developer", "technical": "developer",
               "business_user": "business", "non_technical": "business",
               "enterprise_procurement": "enterprise", "procurement": "enterprise",
               "smb_founder": "smb", "founder": "smb"}
    key = aliases.get(key, key)
    if key not in BUYERS:
        raise InvalidInput(
            f"buyer {name!r} is not known; use developer, business, enterprise or smb"
        )
    return key


@dataclass(frozen=True)
class ByokFactor:
    factor: str
    favors: Literal["byok", "managed", "neutral"]
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"factor": self.factor, "favors": self.favors, "why": self.why}


@dataclass(frozen=True)
class ByokAdvice:
    verdict: Literal["offer", "not_yet", "avoid"]
    summary: str
    factors: tuple[ByokFactor, ...]
    blockers: tuple[str, ...]
    structure: tuple[str, ...]
    markup: Decimal | None

    def as_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict, "summary": self.summary,
                "factors": [f.as_dict() for f in self.factors],
                "blockers": list(self.blockers), "structure": list(self.structure),
                "markup": self.markup}


def recommend_byok(
    *,
    buyer_type: str,
    requested: bool,
    data_sensitive: bool = False,
    fine_tuned: bool = False,
    needs_model_markup: bool = False,
    quality_guarantee: bool = False,
    multi_model_routing: bool = False,
) -> ByokAdvice:
    """Whether to offer bring-your-own-key, from the playbook's BYOK framework.

    Never offer it when one of the playbook's "when not to" cases holds: the value
    depends on fine-tuning or custom training, the market is non-technical (it will
    not manage API keys), the margin model needs a markup on model usage, response
    quality must be guaranteed, or multi-model routing is a core feature. Otherwise
    offer it when buyers ask (enterprises with model contracts, developers): a
    platform fee for the software, nothing on model costs, optionally a small fee on
    provider cost. Without demand, wait: offering BYOK reactively, without a
    strategy, is the playbook's "do not".
    """
    b = buyer(buyer_type)
    factors: list[ByokFactor] = []
    if b in ("developer", "enterprise"):
        factors.append(ByokFactor("customer type", "byok",
                                  "developers and enterprises with model contracts"))
    else:
        factors.append(ByokFactor("customer type", "managed",
                                  "SMB and non-technical buyers will not manage API keys"))
    factors.append(ByokFactor(
        "model preference", "byok" if requested else "managed",
        "buyers ask to bring their own provider" if requested
        else "buyers trust your model selection"))
    factors.append(ByokFactor(
        "margin goal", "managed" if needs_model_markup else "byok",
        "your margin model needs a markup on model usage" if needs_model_markup
        else "a higher software margin with no model COGS"))
    factors.append(ByokFactor(
        "pricing simplicity", "byok" if b in ("developer", "enterprise") else "managed",
        "technical buyers accept two bills" if b in ("developer", "enterprise")
        else "the buyer wants one price for everything"))
    factors.append(ByokFactor("support burden", "byok",
                              "model issues go to the provider"))
    factors.append(ByokFactor("switching cost", "managed",
                              "a bundled model is stickier; with BYOK the customer can swap "
                              "your tool and keep the model"))
    factors.append(ByokFactor(
        "data sensitivity", "byok" if data_sensitive else "neutral",
        "data must stay in the customer's own cloud account" if data_sensitive
        else "the customer trusts your data handling"))

    blockers: list[str] = []
    if fine_tuned:
        blockers.append("the product's value depends on fine-tuning or custom training")
    if b in ("business", "smb"):
        blockers.append("the target market is non-technical: it will not manage API keys")
    if needs_model_markup:
        blockers.append("the margin model requires a markup on model costs")
    if quality_guarantee:
        blockers.append("response quality must be guaranteed (BYOK means variable model "
                        "behaviour)")
    if multi_model_routing:
        blockers.append("multi-model routing is a core feature")

    structure = (
        "software fee: the platform fee per workspace or seat, as in the managed plan",
        "model costs: nothing (the customer pays its provider directly)",
        f"optional: a {BYOK_MARKUP * 100:.0f}% fee on the provider cost the usage would "
        "have had (cost_plus)",
        "premium features and support as add-ons",
    )
    if blockers:
        return ByokAdvice("avoid", "do not offer BYOK: " + "; ".join(blockers),
                          tuple(factors), tuple(blockers), (), None)
    if requested:
        return ByokAdvice(
            "offer",
            "offer BYOK as a variant: charge for the software layer, not the model; "
            "model cost volatility leaves your price",
            tuple(factors), (), structure, BYOK_MARKUP)
    return ByokAdvice(
        "not_yet",
        "no demand yet: stay managed and add BYOK when enterprise buyers ask for it and "
        "margin holds (offering it reactively, without a strategy, is the mistake)",
        tuple(factors), (), (), None)
