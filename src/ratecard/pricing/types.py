"""What a price model returns: the amount at full precision, a breakdown and a label."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Step:
    """One step of a breakdown (a tier, a package count, a block of events)."""

    description: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal
    flat_fee: Decimal = Decimal(0)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "description": self.description,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "amount": self.amount,
        }
        if self.flat_fee:
            d["flat_fee"] = self.flat_fee
        return d


@dataclass(frozen=True)
class Priced:
    """The result of one price model over one quantity (or one set of events).

    ``amount`` is full precision (rounding happens once, per invoice line);
    ``quantity`` is the usage given, ``billable`` what remained after ``included``.
    """

    amount: Decimal
    label: str
    quantity: Decimal
    billable: Decimal
    unit_price: Decimal | None = None
    breakdown: tuple[Step, ...] = field(default_factory=tuple)
