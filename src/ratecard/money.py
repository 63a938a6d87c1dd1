"""Exact money arithmetic.

Every amount in ratecard is a :class:`decimal.Decimal`. ``D()`` is the only way
values enter: it accepts ``str``, ``int`` and ``Decimal`` and refuses ``float``
(a float such as ``0.1`` is not the number its author wrote). Rating keeps full
precision; an invoice line is rounded once, with ``ROUND_HALF_UP``, to the minor
unit of its currency (:func:`quantize`). Money that must be split (proration,
credits across grants, a total across lines) goes through :func:`allocate`, which
conserves every minor unit.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from ratecard.errors import InvalidAmount

# Full precision for rating: 50 significant digits is far beyond any bill.
CONTEXT = decimal.Context(prec=50, rounding=ROUND_HALF_UP, traps=[decimal.InvalidOperation])
decimal.setcontext(CONTEXT)
decimal.DefaultContext.prec = 50

ZERO = Decimal(0)
ONE = Decimal(1)
# Amounts and quantities beyond 1e±30 are input mistakes, and would overflow arithmetic.
MAX_EXPONENT = 30

# ISO 4217 minor units for currencies that differ from the default of 2.
_MINOR_UNITS: dict[str, int] = {
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "XAF": 0, "XOF": 0,
    "PYG": 0, "RWF": 0, "KMF": 0, "GNF": 0, "DJF": 0, "VUV": 0, "XPF": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "IQD": 3, "LYD": 3, "TND": 3,
}
# Units that are not ISO currencies but are priced like one (credits).
_KNOWN = {
    "USD", "EUR", "GBP", "CNY", "JPY", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "INR", "BRL",
    "MXN", "SGD", "HKD", "KRW", "NZD", "ZAR", "PLN", "CZK", "HUF", "TRY", "ILS", "AED", "SAR",
    "TWD", "THB", "IDR", "MYR", "PHP", "VND", "CLP", "COP", "PEN", "ARS", "ISK", "BHD", "KWD",
    "OMR", "JOD", "IQD", "LYD", "TND", "UGX", "XAF", "XOF", "PYG", "RWF", "KMF", "GNF", "DJF",
    "VUV", "XPF", "EGP", "NGN", "KES", "PKR", "BDT", "UAH", "RON", "BGN",
}


def D(value: object) -> Decimal:
    """Parse ``value`` (str, int or Decimal) into a finite Decimal.

    Floats are refused: ``D(0.1)`` raises :class:`InvalidAmount`; write ``D("0.1")``.
    """
    if isinstance(value, bool):
        raise InvalidAmount(f"{value!r} is a boolean, not an amount")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            result = Decimal(text)
        except decimal.InvalidOperation:
            raise InvalidAmount(f"{value!r} is not a number; write digits like \"12.50\"") from None
    elif isinstance(value, float):
        raise InvalidAmount(
            f"{value!r} is a float; money and quantities must be exact: pass a string like "
            f"\"{value!r}\" or an int"
        )
    else:
        raise InvalidAmount(f"{value!r} ({type(value).__name__}) is not an amount")
    if not result.is_finite():
        raise InvalidAmount(f"{value!r} is not a finite number")
    if result and not (-MAX_EXPONENT <= result.adjusted() <= MAX_EXPONENT):
        raise InvalidAmount(
            f"{value!r} is out of range; amounts and quantities lie between "
            f"1e-{MAX_EXPONENT} and 1e{MAX_EXPONENT}"
        )
    return result


def is_known_currency(code: str) -> bool:
    return code in _KNOWN


def minor_units(currency: str) -> int:
    """Digits after the decimal point for ``currency`` (USD 2, JPY 0, KWD 3)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` once to the minor unit of ``currency`` with ROUND_HALF_UP."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def round_up(value: Decimal) -> Decimal:
    return value.to_integral_value(rounding=ROUND_CEILING)


def round_down(value: Decimal) -> Decimal:
    return value.to_integral_value(rounding=ROUND_FLOOR)


def allocate(total: Decimal, weights: Sequence[Decimal | int], currency: str) -> list[Decimal]:
    """Split ``total`` across ``weights`` in minor units, conserving every unit.

    The total is first rounded to the currency; each share is the floor of its
    proportional part, and the units left over go one each to the shares with the
    largest remainders (ties: earlier shares first). ``sum(result) == quantize(total)``
    always holds. Zero weights get zero unless all weights are zero, in which case
    the total is split evenly. Negative totals are split as the negation of the
    positive split so that signs stay consistent.
    """
    if not weights:
        raise ValueError("allocate() needs at least one weight")
    ws = [D(w) for w in weights]
    if any(w < 0 for w in ws):
        raise ValueError("allocate() weights must not be negative")
    q = quantum(currency)
    rounded = quantize(total, currency)
    if rounded < 0:
        return [-x for x in allocate(-rounded, ws, currency)]
    units = int(rounded / q)
    wsum = sum(ws, ZERO)
    if wsum == 0:
        ws = [ONE] * len(ws)
        wsum = Decimal(len(ws))
    exact = [Decimal(units) * w / wsum for w in ws]
    floors = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
    left = units - sum(floors)
    order = sorted(range(len(ws)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [Decimal(n) * q for n in floors]


def fmt(amount: Decimal, currency: str) -> str:
    """Display form (``USD 1,234.50``). Never parse this back into arithmetic."""
    return f"{currency} {quantize(amount, currency):,}"


def to_str(amount: Decimal) -> str:
    """A decimal string without exponent notation (``1E+2`` becomes ``100``)."""
    if amount == amount.to_integral_value():
        return str(amount.quantize(ONE)) if amount.as_tuple().exponent > 0 else format(amount, "f")
    return format(amount.normalize(), "f")
