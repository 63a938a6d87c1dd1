"""``cost_plus``: the cost of the usage with a markup (resale, or a BYOK fee)."""

from __future__ import annotations

from decimal import Decimal

from ratecard.money import ONE
from ratecard.pricing._common import n
from ratecard.pricing.types import Priced, Step


def price_cost_plus(cost: Decimal, *, markup: Decimal, quantity: Decimal | None = None) -> Priced:
    """``amount = cost × (1 + markup)`` (``markup: 0.2`` adds 20%).

    ``cost`` is what the usage costs (from ``costs:`` or the price book); a BYOK
    customer's cost is what the usage would have cost, so the fee still applies.
    """
    amount = cost * (ONE + markup)
    q = quantity if quantity is not None else cost
    label = f"cost {n(cost)} + {n(markup * 100)}%"
    return Priced(amount=amount, label=label, quantity=q, billable=q, unit_price=None,
                  breakdown=(Step("cost of usage", ONE, cost, cost),
                             Step(f"markup {n(markup * 100)}%", ONE, cost * markup,
                                  cost * markup)))
