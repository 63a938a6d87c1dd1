"""Helpers shared by the price models."""

from __future__ import annotations

from decimal import Decimal

from ratecard.money import ZERO, to_str


def billable(quantity: Decimal, included: Decimal) -> Decimal:
    """``max(0, quantity - included)``: included units are removed first."""
    return max(ZERO, quantity - included)


def n(value: Decimal) -> str:
    """A quantity or price for labels, as written (``1,000``; ``0.70``; ``1,450.5``)."""
    text = format(value, "f") if value.as_tuple().exponent <= 0 else to_str(value)  # type: ignore[operator]
    whole, _, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    body = f"{int(whole.lstrip('-')):,}"
    return f"{sign}{body}.{frac}" if frac else f"{sign}{body}"


def included_note(quantity: Decimal, included: Decimal) -> str:
    return f"{n(quantity)} used, {n(included)} included; " if included else ""
