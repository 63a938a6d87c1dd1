"""``per_unit``: a price for every ``per`` units beyond the included ones."""

from __future__ import annotations

from decimal import Decimal

from ratecard.money import ONE
from ratecard.pricing._common import billable, included_note, n
from ratecard.pricing.types import Priced, Step


def price_per_unit(
    quantity: Decimal, *, unit_price: Decimal, per: Decimal = ONE, included: Decimal = Decimal(0)
) -> Priced:
    """``billable = max(0, quantity - included)``; ``amount = billable / per × unit_price``.

    ``per`` is 1 by default; 1,000,000 prices tokens per million.
    """
    b = billable(quantity, included)
    amount = b / per * unit_price
    per_text = "" if per == ONE else f" per {n(per)}"
    label = f"{included_note(quantity, included)}{n(b)} × {n(unit_price)}{per_text}"
    return Priced(
        amount=amount, label=label, quantity=quantity, billable=b, unit_price=unit_price,
        breakdown=(Step(f"{n(b)} units{per_text}", b, unit_price, amount),),
    )
