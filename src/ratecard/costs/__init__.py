"""AI cost of goods: the model price book, usage normalisation, the cost of a request.

Pure parts: :mod:`~ratecard.costs.model` (prices, usage, breakdowns),
:mod:`~ratecard.costs.rules` (how a request is priced), :mod:`~ratecard.costs.usage`
(provider usage shapes → canonical buckets), :mod:`~ratecard.costs.pricefile`
(LiteLLM price map, ratecard price book, catalog ``costs:``).
"""

from ratecard.costs.model import (
    TOKEN_KINDS,
    CostBreakdown,
    CostLine,
    LongContextTier,
    ModelPrice,
    PriceBook,
    PriceBookInvalid,
    TokenRates,
    TokenUsage,
    Unpriced,
)
from ratecard.costs.pricefile import import_litellm, merge_catalog_costs, read_price_file
from ratecard.costs.rules import cost_of_request, cost_with_price, resolve_rates
from ratecard.costs.usage import normalise_usage, usage_from_properties, usage_shape

__all__ = [
    "TOKEN_KINDS",
    "CostBreakdown",
    "CostLine",
    "LongContextTier",
    "ModelPrice",
    "PriceBook",
    "PriceBookInvalid",
    "TokenRates",
    "TokenUsage",
    "Unpriced",
    "cost_of_request",
    "cost_with_price",
    "import_litellm",
    "merge_catalog_costs",
    "normalise_usage",
    "read_price_file",
    "resolve_rates",
    "usage_from_properties",
    "usage_shape",
]
