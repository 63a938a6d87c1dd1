"""``package``: a price for each started (or completed) package of ``size`` units."""

from __future__ import annotations

from decimal import Decimal

from ratecard.money import round_down, round_up
from ratecard.pricing._common import billable, included_note, n
from ratecard.pricing.types import Priced, Step


def price_package(
    quantity: Decimal,
    *,
    price: Decimal,
    size: Decimal,
    round: str = "up",
    included: Decimal = Decimal(0),
) -> Priced:
    """``packages = round_up(billable / size)`` (or round down with ``round: down``);
    ``amount = packages × price``.
    """
    b = billable(quantity, included)
    ratio = b / size
    packages = round_down(ratio) if round == "down" else round_up(ratio)
    amount = packages * price
    label = (f"{included_note(quantity, included)}{n(packages)} × {n(size)}-unit package "
             f"at {n(price)}")
    return Priced(
        amount=amount, label=label, quantity=quantity, billable=b, unit_price=price,
        breakdown=(Step(f"{n(packages)} packages of {n(size)}", packages, price, amount),),
    )
