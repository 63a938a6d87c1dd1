"""``graduated``: each tier prices the units that fall in it."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ratecard.catalog.schema import Tier
from ratecard.money import ONE, ZERO
from ratecard.pricing._common import billable, included_note, n
from ratecard.pricing.types import Priced, Step


def tier_bounds(tiers: Sequence[Tier]) -> list[tuple[Decimal, Decimal | None]]:
    """``(lower, upper]`` of each tier; ``upper`` is None for the last tier."""
    out: list[tuple[Decimal, Decimal | None]] = []
    lower = ZERO
    for t in tiers:
        out.append((lower, t.up_to))
        if t.up_to is not None:
            lower = t.up_to
    return out


def price_graduated(
    quantity: Decimal,
    *,
    tiers: Sequence[Tier],
    included: Decimal = Decimal(0),
    per: Decimal = ONE,
) -> Priced:
    """Tier k covers ``(up_to[k-1], up_to[k]]`` (``up_to`` inclusive).

    ``amount = Σ over tiers reached of (units in tier / per × unit_price + flat_fee)``. A
    tier is reached when ``billable`` is above its lower bound; tier 1 is always reached,
    so zero usage pays tier 1's flat fee. ``per`` (default 1) prices tokens per million
    while ``up_to`` stays in units.
    """
    b = billable(quantity, included)
    steps: list[Step] = []
    total = ZERO
    for k, ((lo, hi), t) in enumerate(zip(tier_bounds(tiers), tiers, strict=True)):
        if k > 0 and b <= lo:
            break
        top = b if hi is None else min(b, hi)
        units = max(ZERO, top - lo)
        amount = units / per * t.unit_price + t.flat_fee
        total += amount
        span = f"{n(lo)}–{n(hi)}" if hi is not None else f"above {n(lo)}"
        steps.append(Step(f"tier {k + 1} ({span})", units, t.unit_price, amount, t.flat_fee))
    label = f"{included_note(quantity, included)}{n(b)} across {len(steps)} tier(s)"
    return Priced(amount=total, label=label, quantity=quantity, billable=b,
                  unit_price=None, breakdown=tuple(steps))
