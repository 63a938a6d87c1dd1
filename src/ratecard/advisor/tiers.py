"""A three-tier hybrid catalog from the advice: platform fee + included usage + overage.

The playbook's hybrid design, step by step, as arithmetic:

1. **Platform fee** = 30-50% (``fee_share``, default 40%) of the revenue a tier's typical
   customer is expected to bring: ``F = s × V × p`` for expected volume ``V`` at unit
   price ``p``.
2. **Variable component** on the charge metric's meter, with an included allocation and
   an overage price of 1.2-2× (``overage_multiple``, default 1.5) the unit cost. The
   "unit cost" is the customer's cost of one included unit, ``F / I``: the playbook's
   own example prices its Starter overage at $1.29 against $199 / 200 = $0.995 (1.3×)
   and its Pro overage at $0.89 against $599 / 1,000 = $0.60 (1.5×). The allocation
   follows from asking that the typical customer pays ``V × p`` in all:
   ``F + r·F/I·(V - I) = V·p``  gives  ``I = V · r·s / (r·s + 1 - s)``.
3. **Tier breaks:** Starter, Pro, Enterprise; each tier's allocation is 3-5×
   (``allocation_multiple``, an integer, default 4) the one below, and its expected
   volume likewise. The recommended unit price is Pro's; it is a ``volume_discount``
   (default 20%) higher on Starter and lower on Enterprise, which also gets graduated
   volume tiers on its overage.
4. **Commitment incentives:** annual prepay discounts of 15-25% (default 15% / 20% / 25%).

The margin floor: a customer who uses exactly the included allocation is the least
profitable (all fee, full cost of ``I`` units), so every tier's ``F / I`` is raised to at
least ``cost / (1 - target margin)``; overage (``r × F/I``, r ≥ 1.2) is then above the
floor too, and the tier earns its archetype's target margin at any usage. Prices are
rounded *up* to three significant digits, so rounding never breaks the floor.

Feature gates follow the playbook's tier table (support, SSO, audit logs, SLA); the
Starter tier gets a hard monthly cap at the Pro allocation (upgrade pressure), a free
Starter a hard cap at its own allocation. A copilot charges the platform fee per seat
(Individual 1 seat, Team 5, Enterprise 50 by default, as minimums); every other
archetype charges it per workspace. A copilot's ``expected_volume`` is per seat and
its allocations are sized at each tier's minimum seats. Consumption sold to a
non-technical buyer goes through credits. When BYOK is recommended, a BYOK variant of
one tier is added: the same platform fee, no model cost, and a 5% fee on the provider
cost the usage would have had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import yaml

from ratecard.advisor.archetypes import Archetype
from ratecard.advisor.decision import BillingUnit, ChargeMetric
from ratecard.advisor.pricing import BYOK_MARKUP, margin_at, round_sig_up
from ratecard.errors import InvalidInput
from ratecard.money import ONE, ZERO, to_str

FEE_SHARE_RANGE = (Decimal("0.30"), Decimal("0.50"))
ALLOCATION_RANGE = (3, 5)
OVERAGE_RANGE = (Decimal("1.2"), Decimal("2"))
ANNUAL_DISCOUNT_RANGE = (Decimal("0.15"), Decimal("0.25"))


@dataclass(frozen=True)
class TierDesign:
    """The knobs of the hybrid design, each bounded by the playbook's range."""

    fee_share: Decimal = Decimal("0.40")
    allocation_multiple: int = 4
    overage_multiple: Decimal = Decimal("1.5")
    annual_discounts: tuple[Decimal, Decimal, Decimal] = (
        Decimal("0.15"), Decimal("0.20"), Decimal("0.25"))
    volume_discount: Decimal = Decimal("0.20")
    free_tier: bool = False
    seats: tuple[int, int, int] = (1, 5, 50)

    def __post_init__(self) -> None:
        lo, hi = FEE_SHARE_RANGE
        if not (lo <= self.fee_share <= hi):
            raise InvalidInput(f"platform_fee_share {self.fee_share} is outside the playbook's "
                               "30-50% of expected revenue; use 0.30 to 0.50")
        if not (ALLOCATION_RANGE[0] <= self.allocation_multiple <= ALLOCATION_RANGE[1]):
            raise InvalidInput(f"allocation_multiple {self.allocation_multiple} is outside the "
                               "playbook's 3-5x per tier; use 3, 4 or 5")
        lo, hi = OVERAGE_RANGE
        if not (lo <= self.overage_multiple <= hi):
            raise InvalidInput(f"overage_multiple {self.overage_multiple} is outside the "
                               "playbook's 1.2-2x the unit cost; use 1.2 to 2")
        if len(self.annual_discounts) != 3:
            raise InvalidInput("annual_discounts needs three values (Starter, Pro, Enterprise)")
        lo, hi = ANNUAL_DISCOUNT_RANGE
        for d in self.annual_discounts:
            if not (lo <= d <= hi):
                raise InvalidInput(f"annual discount {d} is outside the playbook's 15-25%; use "
                                   "0.15 to 0.25")
        if not (ZERO <= self.volume_discount < Decimal("0.5")):
            raise InvalidInput("volume_discount is a fraction below 0.5 (0.2 for 20% per tier)")
        if len(self.seats) != 3 or any(s < 1 for s in self.seats):
            raise InvalidInput("seats needs three positive seat counts (e.g. 1, 5, 50)")

    @property
    def allocation_share(self) -> Decimal:
        """``I / V``: the share of expected volume included in the fee."""
        rs = self.overage_multiple * self.fee_share
        return rs / (rs + ONE - self.fee_share)


@dataclass(frozen=True)
class MeterSpec:
    """The meter the variable component is billed on."""

    key: str
    event: str
    unit: str
    filter: Mapping[str, str] = field(default_factory=dict)
    weights: Mapping[str, Decimal] | None = None
    weight_property: str = "complexity"


@dataclass(frozen=True)
class Tier:
    """One generated tier: its numbers, and what they mean at expected usage."""

    code: str
    name: str
    expected_volume: Decimal
    unit_price: Decimal            # the tier's effective price per unit at expected volume
    platform_fee: Decimal          # per month, per workspace (or seats × seat_price)
    included: int
    overage_price: Decimal
    overage_steps: tuple[tuple[int | None, Decimal], ...]  # Enterprise volume tiers
    annual_discount: Decimal
    self_serve: bool
    free: bool
    seats: int | None
    seat_price: Decimal | None
    hard_cap: int | None
    floor_raised: bool
    cost_per_unit: Decimal | None

    @property
    def included_unit_price(self) -> Decimal | None:
        return self.platform_fee / self.included if self.included and self.platform_fee else None

    def revenue_at(self, quantity: Decimal) -> Decimal:
        """Monthly revenue of this tier for ``quantity`` units (at the minimum seats)."""
        over = max(ZERO, quantity - self.included)
        if self.free:
            return ZERO
        amount = self.platform_fee
        left = over
        lower = 0
        for up_to, price in self.overage_steps:
            if left <= 0:
                break
            width = Decimal(up_to - lower) if up_to is not None else left
            take = min(left, width)
            amount += take * price
            left -= take
            lower = up_to or lower
        return amount

    def margin_at(self, quantity: Decimal) -> Decimal | None:
        if self.cost_per_unit is None:
            return None
        revenue = self.revenue_at(quantity)
        return margin_at(revenue, quantity * self.cost_per_unit)

    def fee_share_at(self, quantity: Decimal) -> Decimal | None:
        """The platform fee's share of the revenue at ``quantity`` units."""
        revenue = self.revenue_at(quantity)
        return self.platform_fee / revenue if revenue > 0 else None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "expected_volume": self.expected_volume,
            "unit_price": round_sig_up(self.unit_price, 4),
            "platform_fee": self.platform_fee,
            "included": self.included,
            "included_unit_price": self.included_unit_price,
            "overage_price": self.overage_price,
            "overage_steps": [{"up_to": u, "unit_price": p} for u, p in self.overage_steps],
            "annual_discount": self.annual_discount,
            "self_serve": self.self_serve,
            "free": self.free,
            "seats": self.seats,
            "seat_price": self.seat_price,
            "hard_cap": self.hard_cap,
            "floor_raised": self.floor_raised,
            "revenue_at_expected": self.revenue_at(self.expected_volume),
            "fee_share_at_expected": _ratio(self.fee_share_at(self.expected_volume)),
            "margin_at_expected": _ratio(self.margin_at(self.expected_volume)),
            "margin_at_included": _ratio(self.margin_at(Decimal(self.included))),
        }
        return d


def _ratio(value: Decimal | None) -> Decimal | None:
    return value.quantize(Decimal("0.0001")) if value is not None else None


def _nice_int(value: Decimal, digits: int = 2) -> int:
    """``value`` rounded to ``digits`` significant digits, as an int (at least 1)."""
    if value <= 1:
        return 1
    quantum = Decimal(1).scaleb(max(0, value.adjusted() - digits + 1))
    return max(1, int(value.quantize(quantum, rounding=ROUND_HALF_UP)))


def _price(value: Decimal) -> Decimal:
    """A presentable price, never below ``value``: 3 significant digits, rounded up."""
    return round_sig_up(value, 3)


def _names(archetype: Archetype, free: bool) -> tuple[tuple[str, str], ...]:
    if archetype.code == "copilot":
        first = ("free", "Free") if free else ("individual", "Individual")
        return (first, ("team", "Team"), ("enterprise", "Enterprise"))
    first = ("free", "Free") if free else ("starter", "Starter")
    return (first, ("pro", "Pro"), ("enterprise", "Enterprise"))


def design_tiers(
    *,
    archetype: Archetype,
    unit_price: Decimal,
    expected_volume: Decimal,
    cost_per_unit: Decimal | None,
    target_margin: Decimal,
    design: TierDesign = TierDesign(),
) -> tuple[Tier, ...]:
    """The numbers of the three tiers (see the module docstring for the arithmetic).

    ``unit_price`` is the recommended price per unit for the Pro tier (the core revenue
    driver); Starter's is ``unit_price / (1 - volume_discount)``, Enterprise's
    ``unit_price × (1 - volume_discount)``. ``expected_volume`` is what a typical Pro
    customer uses per month; Starter expects a ``k``-th of it, Enterprise ``k`` times it.
    For a copilot (priced per seat) ``expected_volume`` is per Team seat, the
    allocations are per seat times each tier's minimum seats (the catalog has no
    per-seat allocation, so a plan's allocation is sized at its minimum seats; more
    seats pay more and only raise the margin).
    """
    if expected_volume <= 0:
        raise InvalidInput("expected_volume (units a typical Pro customer uses per month) "
                           "must be positive")
    if unit_price <= 0:
        raise InvalidInput("the unit price must be positive")
    k = design.allocation_multiple
    s = design.fee_share
    r = design.overage_multiple
    d = design.volume_discount
    floor = cost_per_unit / (ONE - target_margin) if cost_per_unit is not None else ZERO
    # per seat for a copilot (sized at each tier's minimum seats), per customer otherwise
    seat_counts = design.seats if archetype.seats_fit else (1, 1, 1)
    pro_included = _nice_int(design.allocation_share * expected_volume)
    pro_included = max(k, (pro_included + k // 2) // k * k)     # a multiple of k
    unit_included = (pro_included // k, pro_included, pro_included * k)
    included = tuple(unit_included[t] * seat_counts[t] for t in range(3))
    volumes = tuple(expected_volume * Decimal(k) ** (t - 1) * seat_counts[t] for t in range(3))
    names = _names(archetype, design.free_tier)
    tiers: list[Tier] = []
    lo = _price(floor) if floor > 0 else ZERO
    for t in range(3):
        code, name = names[t]
        p_t = unit_price * (ONE - d) ** (t - 1)
        inc = included[t]
        fee = s * volumes[t] * p_t
        raised = False
        if fee < inc * floor:
            fee = inc * floor
            raised = True
        free = design.free_tier and t == 0
        seats = seat_counts[t] if archetype.seats_fit else None
        seat_price = None
        steps: tuple[tuple[int | None, Decimal], ...] = ()
        over = ZERO
        if free:
            fee = ZERO
        else:
            if seats is not None:
                seat_price = _price(fee / seats)
                fee = seat_price * seats
            else:
                fee = _price(fee)
            over = _price(r * fee / inc)
            if t == 2:
                # volume discounts on Enterprise overage, never below the margin floor;
                # bounds count billable units (beyond the allocation)
                step2 = min(over, max(_price(over * (ONE - d)), lo))
                step3 = min(step2, max(_price(over * (ONE - d) ** 2), lo))
                steps = ((inc, over), (inc * k, step2), (None, step3))
            else:
                steps = ((None, over),)
        if free:
            cap: int | None = inc
        elif t == 0:
            cap = unit_included[1] * seat_counts[0]   # the next tier's allocation
        else:
            cap = None
        tiers.append(Tier(
            code=code, name=name, expected_volume=volumes[t], unit_price=p_t,
            platform_fee=fee, included=inc, overage_price=over, overage_steps=steps,
            annual_discount=design.annual_discounts[t], self_serve=t < 2, free=free,
            seats=seats, seat_price=seat_price, hard_cap=cap, floor_raised=raised,
            cost_per_unit=cost_per_unit,
        ))
    return tuple(tiers)


FEATURES: tuple[dict[str, Any], ...] = (
    {"support": "community", "sso": False, "audit_logs": False, "sla": "best_effort"},
    {"support": "priority", "sso": True, "audit_logs": False, "sla": "99.5%"},
    {"support": "dedicated_csm", "sso": True, "audit_logs": True, "sla": "99.9%"},
)


def _per(price: Decimal) -> tuple[Decimal, int]:
    """Quote tiny unit prices per thousand or per million units (``per``)."""
    for per in (1, 1000, 1_000_000):
        if price * per >= Decimal("0.01"):
            return price * per, per
    return price * 1_000_000, 1_000_000


def _num(value: Decimal | int) -> str | int:
    """Whole amounts as YAML integers, others as exact decimal strings."""
    if isinstance(value, int):
        return value
    if value == value.to_integral_value():
        return int(value)
    return to_str(value)


def build_catalog(
    tiers: Sequence[Tier],
    *,
    archetype: Archetype,
    metric: ChargeMetric,
    billing_unit: BillingUnit,
    meter: MeterSpec,
    currency: str,
    audience: str,
    cost_per_unit: Decimal | None,
    byok_tier: str | None = None,
    name: str | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """The tiers as a catalog mapping (amounts as strings), ready for YAML."""
    m: dict[str, Any] = {"event": meter.event, "aggregation": "count"}
    if meter.filter:
        m["filter"] = dict(meter.filter)
    if meter.weights:
        m["weights"] = {"property": meter.weight_property,
                        "values": {k: _num(v) for k, v in meter.weights.items()}}
    m["unit"] = meter.unit
    m["description"] = f"{metric.value} metric: one {meter.unit} per event" + (
        "; counts only events matching the filter (the definition of success)"
        if meter.filter else "")
    catalog: dict[str, Any] = {
        "name": name or f"Generated {archetype.code} catalog ({metric.value} pricing)",
        "currency": currency,
        "meters": {meter.key: m},
    }
    if cost_per_unit is not None:
        catalog["costs"] = {"meters": {meter.key: _num(cost_per_unit)}}
    plans: dict[str, Any] = {}
    for t, tier in enumerate(tiers):
        plans[prefix + tier.code] = _plan(tier, t, archetype, billing_unit, meter, audience)
    if byok_tier is not None:
        base = next((tr for tr in tiers if tr.code == byok_tier), None)
        if base is None:
            raise InvalidInput(f"no tier {byok_tier!r} to base the BYOK variant on")
        plans[f"{prefix}{base.code}_byok"] = _byok_plan(
            base, tiers.index(base), archetype, meter, audience, cost_per_unit)
    catalog["plans"] = plans
    return catalog


def _plan(tier: Tier, t: int, archetype: Archetype, unit: BillingUnit, meter: MeterSpec,
          audience: str) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": tier.name,
        "archetype": archetype.code,
        "audience": audience,
        "self_serve": tier.self_serve,
        "interval": "month",
    }
    if tier.free:
        plan["free"] = True
    elif tier.seats is not None and tier.seat_price is not None:
        plan["seats"] = {"unit_price": _num(tier.seat_price), "minimum": tier.seats}
    else:
        plan["base_fee"] = _num(tier.platform_fee)
    if not tier.free:
        if unit is BillingUnit.CREDITS:
            plan["credits"] = {
                "grant": tier.included, "per": "month",
                "burn": {meter.key: 1},
                "on_exhausted": "overage",
                "overage_unit_price": _num(tier.overage_price),
            }
        elif len(tier.overage_steps) > 1:
            plan["charges"] = [{
                "name": meter.unit.capitalize() + "s",
                "meter": meter.key,
                "model": "graduated",
                "included": tier.included,
                "tiers": [{"up_to": u, "unit_price": _num(p)} for u, p in tier.overage_steps],
            }]
        else:
            price, per = _per(tier.overage_price)
            charge: dict[str, Any] = {
                "name": meter.unit.capitalize() + "s",
                "meter": meter.key, "model": "per_unit", "included": tier.included,
                "unit_price": _num(price),
            }
            if per != 1:
                charge["per"] = per
            plan["charges"] = [charge]
        plan["annual_discount"] = _num(tier.annual_discount)
    ents: dict[str, Any] = dict(FEATURES[t])
    if tier.hard_cap is not None:
        ents[meter.key] = {"meter": meter.key, "limit": tier.hard_cap, "window": "month",
                           "hard": True}
    plan["entitlements"] = ents
    return plan


def _byok_plan(tier: Tier, t: int, archetype: Archetype, meter: MeterSpec, audience: str,
               cost_per_unit: Decimal | None) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": f"{tier.name} (bring your own key)",
        "description": "software fee only; the customer pays its model provider directly",
        "archetype": archetype.code,
        "audience": audience,
        "self_serve": tier.self_serve,
        "byok": True,
        "interval": "month",
    }
    if tier.seats is not None and tier.seat_price is not None:
        plan["seats"] = {"unit_price": _num(tier.seat_price), "minimum": tier.seats}
    else:
        plan["base_fee"] = _num(tier.platform_fee)
    if cost_per_unit is not None and cost_per_unit > 0:
        price, per = _per(round_sig_up(cost_per_unit * BYOK_MARKUP, 3))
        charge: dict[str, Any] = {
            "name": f"Routing fee ({BYOK_MARKUP * 100:.0f}% of provider cost)",
            "meter": meter.key, "model": "per_unit", "unit_price": _num(price)}
        if per != 1:
            charge["per"] = per
        plan["charges"] = [charge]
    plan["annual_discount"] = _num(tier.annual_discount)
    plan["entitlements"] = dict(FEATURES[t])
    return plan


def catalog_yaml(catalog: Mapping[str, Any], header: str = "") -> str:
    """The catalog as YAML text (block style, keys in the order given)."""
    text = yaml.safe_dump(dict(catalog), sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=100)
    if header:
        text = "".join(f"# {ln}\n" if ln else "#\n" for ln in header.splitlines()) + text
    return text
