"""``volume``: the one tier that contains the quantity prices all of it."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ratecard.catalog.schema import Tier
from ratecard.money import ONE
from ratecard.pricing._common import billable, included_note, n
from ratecard.pricing.graduated import tier_bounds
from ratecard.pricing.types import Priced, Step


def price_volume(
    quantity: Decimal,
    *,
    tiers: Sequence[Tier],
    included: Decimal = Decimal(0),
    per: Decimal = ONE,
) -> Priced:
    """The tier with ``lower < billable <= up_to`` (tier 1 for zero usage) gives
    ``amount = billable / per × unit_price + flat_fee``.
    """
    b = billable(quantity, included)
    bounds = tier_bounds(tiers)
    index = len(tiers) - 1
    for k, (_, hi) in enumerate(bounds):
        if hi is None or b <= hi:
            index = k
            break
    t = tiers[index]
    amount = b / per * t.unit_price + t.flat_fee
    lo, hi = bounds[index]
    span = f"{n(lo)}–{n(hi)}" if hi is not None else f"above {n(lo)}"
    label = f"{included_note(quantity, included)}{n(b)} × {n(t.unit_price)} (tier {index + 1})"
    return Priced(
        amount=amount, label=label, quantity=quantity, billable=b, unit_price=t.unit_price,
        breakdown=(Step(f"tier {index + 1} ({span})", b, t.unit_price, amount, t.flat_fee),),
    )
