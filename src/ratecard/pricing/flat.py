"""``flat``: a fixed price per period, whatever the usage."""

from __future__ import annotations

from decimal import Decimal

from ratecard.money import ONE
from ratecard.pricing._common import n
from ratecard.pricing.types import Priced, Step


def price_flat(price: Decimal, *, once: bool = False) -> Priced:
    """``amount = price``. With ``once`` it is billed on the first invoice only (a license);
    the caller decides whether this period is the first one.
    """
    label = f"{n(price)} {'once' if once else 'per period'}"
    return Priced(
        amount=price, label=label, quantity=ONE, billable=ONE, unit_price=price,
        breakdown=(Step("flat fee", ONE, price, price),),
    )
