"""``cost_plus``: the cost of the usage with a markup (resale, or a BYOK fee)."""

from __future__ import annotations

from decimal import Decimal

from ratecard.money import ONE
from ratecard.pricing._common import n
from ratecard.pricing.types import Priced, Step


def price_cost_plus(
    cost: Decimal,
    *,
    markup: Decimal,
    quantity: Decimal | None = None,
    include_cost: bool = True,
) -> Priced:
    """``amount = cost × (1 + markup)`` (``markup: 0.2`` adds 20%): resale at a margin.

    With ``include_cost: false`` only the fee is charged, ``amount = cost × markup``:
    the BYOK case, where the customer pays its provider the cost itself and ``cost`` is
    what the usage would have cost at the price book's prices.
    """
    fee = cost * markup
    amount = cost + fee if include_cost else fee
    q = quantity if quantity is not None else cost
    pct = n(markup * 100)
    label = f"cost {n(cost)} + {pct}%" if include_cost else f"{pct}% of provider cost {n(cost)}"
    steps = [Step(f"markup {pct}%", ONE, fee, fee)]
    if include_cost:
        steps.insert(0, Step("cost of usage", ONE, cost, cost))
    return Priced(amount=amount, label=label, quantity=q, billable=q, unit_price=None,
                  breakdown=tuple(steps))
