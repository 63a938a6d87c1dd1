"""Pure rating: one module per price model, one registry, plan rating.

Price models (each a pure function with its formula in its docstring):
``flat``, ``per_unit``, ``package``, ``graduated``, ``volume``, ``percentage``,
``cost_plus``; dimension pricing (``prices_by``) in :func:`rate_charge`.
"""

from ratecard.pricing.plan import (
    ADVANCE,
    ARREARS,
    Line,
    Quote,
    make_line,
    rate_charge,
    rate_plan,
    with_catalog_costs,
)
from ratecard.pricing.registry import REGISTRY, price
from ratecard.pricing.types import Priced, Step

__all__ = [
    "ADVANCE",
    "ARREARS",
    "REGISTRY",
    "Line",
    "Priced",
    "Quote",
    "Step",
    "make_line",
    "price",
    "rate_charge",
    "rate_plan",
    "with_catalog_costs",
]
