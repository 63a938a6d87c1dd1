"""One registry from price-model name to its pure function.

Each entry adapts a :class:`~ratecard.catalog.schema.Charge` (its parameters) and
the usage (a quantity, per-event values, a cost) to the model's function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ratecard.catalog.schema import Charge
from ratecard.errors import UsageInvalid
from ratecard.money import ONE, ZERO
from ratecard.pricing.cost_plus import price_cost_plus
from ratecard.pricing.flat import price_flat
from ratecard.pricing.graduated import price_graduated
from ratecard.pricing.package import price_package
from ratecard.pricing.per_unit import price_per_unit
from ratecard.pricing.percentage import price_percentage
from ratecard.pricing.types import Priced
from ratecard.pricing.volume import price_volume


@dataclass(frozen=True)
class ChargeInput:
    quantity: Decimal
    values: Sequence[Decimal] | None = None
    cost: Decimal | None = None


def _need(v: Decimal | None) -> Decimal:
    assert v is not None, "validated by the catalog schema"
    return v


def _flat(c: Charge, u: ChargeInput) -> Priced:
    return price_flat(_need(c.price), once=c.once)


def _per_unit(c: Charge, u: ChargeInput) -> Priced:
    return price_per_unit(u.quantity, unit_price=_need(c.unit_price), per=c.per or ONE,
                          included=c.included)


def _package(c: Charge, u: ChargeInput) -> Priced:
    return price_package(u.quantity, price=_need(c.price), size=_need(c.size),
                         round=c.round or "up", included=c.included)


def _graduated(c: Charge, u: ChargeInput) -> Priced:
    return price_graduated(u.quantity, tiers=c.tiers or [], included=c.included,
                           per=c.per or ONE)


def _volume(c: Charge, u: ChargeInput) -> Priced:
    return price_volume(u.quantity, tiers=c.tiers or [], included=c.included,
                        per=c.per or ONE)


def _percentage(c: Charge, u: ChargeInput) -> Priced:
    if u.values is None:
        raise UsageInvalid(
            f"meter {c.meter!r} is priced per event (percentage): give the list of event "
            "values, or price from events"
        )
    return price_percentage(u.values, rate=_need(c.rate), fixed_fee=c.fixed_fee or ZERO,
                            min_per_event=c.min_per_event, max_per_event=c.max_per_event,
                            free_events=c.free_events or 0)


def _cost_plus(c: Charge, u: ChargeInput) -> Priced:
    if u.cost is None:
        raise UsageInvalid(
            f"meter {c.meter!r} is priced at cost plus a markup, but its cost is unknown: add "
            f"costs.meters.{c.meter} or model prices under costs.models"
        )
    return price_cost_plus(u.cost, markup=_need(c.markup), quantity=u.quantity,
                           include_cost=c.include_cost)


REGISTRY: dict[str, Callable[[Charge, ChargeInput], Priced]] = {
    "flat": _flat,
    "per_unit": _per_unit,
    "package": _package,
    "graduated": _graduated,
    "volume": _volume,
    "percentage": _percentage,
    "cost_plus": _cost_plus,
}


def price(
    charge: Charge,
    quantity: Decimal,
    *,
    values: Sequence[Decimal] | None = None,
    cost: Decimal | None = None,
) -> Priced:
    """Price ``quantity`` (or per-event ``values``, or a ``cost``) with ``charge``'s model."""
    if quantity < 0:
        raise UsageInvalid(f"meter {charge.meter!r}: quantity {quantity} is negative")
    return REGISTRY[charge.model](charge, ChargeInput(quantity, values, cost))
