"""Helpers shared by the price models."""

from __future__ import annotations

from decimal import Decimal

from ratecard.money import ZERO, to_str


def billable(quantity: Decimal, included: Decimal) -> Decimal:
    """``max(0, quantity - included)``: included units are removed first."""
    return max(ZERO, quantity - included)


def n(value: Decimal) -> str:
    """A quantity or price for labels (``1,000``; ``1.29``)."""
    text = to_str(value)
    if "." in text:
        whole, frac = text.split(".")
        return f"{int(whole):,}.{frac}" if whole.lstrip("-").isdigit() else text
    return f"{int(text):,}"


def included_note(quantity: Decimal, included: Decimal) -> str:
    return f"{n(quantity)} used, {n(included)} included; " if included else ""
