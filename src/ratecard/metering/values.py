"""How a property value of an event is read by meters (pure, shared by every backend).

Two readings exist, and the usage store implements exactly the same ones in SQL:

* :func:`number` for ``sum``, ``max`` and ``latest`` meters. A JSON number or a
  string written as a JSON number (``"12.5"``) is read exactly as a Decimal. The
  value must fit the store's exact decimal type: at most :data:`SCALE` digits
  after the point once trailing zeros are dropped, and less than ``10**29`` in
  magnitude. Booleans, objects, lists and other strings are *not numbers*; an
  absent property or ``null`` is *missing* (the event is skipped by the meter).
* :func:`key_text` for ``group_by``, ``filter`` and ``unique_count``: the text of a
  scalar (a string as it is, ``true``/``false``, an integer's digits, a decimal in
  plain notation without trailing zeros). ``1`` and ``"1"`` are the same key.

JSON cannot carry numbers beyond about 15 significant digits through a binary
parser, so events are parsed with ``parse_float=Decimal`` and such numbers are
stored as decimal strings (:func:`storable`); meters read them unchanged.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

SCALE = 9
"""Digits after the decimal point that quantities keep exactly (the store's DECIMAL(38, 9))."""
INT_DIGITS = 29
"""Digits before the point: quantities stay below ``10**29``."""
SAFE_DIGITS = 15
"""Significant digits a JSON number may have and still pass any JSON parser exactly."""

NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
"""The JSON number grammar; a numeric string must match it in full."""

MISSING = None


class NotANumber(ValueError):
    """A present value that a numeric meter cannot read."""


def exact(d: Decimal) -> bool:
    """Whether ``d`` fits the store's exact decimal type (no rounding, below ``10**29``).

    Pure digit arithmetic, so it agrees with the store's SQL for any exponent.
    """
    if not d.is_finite():
        return False
    _, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    ds = "".join(map(str, digits)).lstrip("0")
    if not ds:
        return True  # zero, whatever its exponent
    stripped = ds.rstrip("0")
    exponent += len(ds) - len(stripped)
    return exponent >= -SCALE and len(stripped) + exponent <= INT_DIGITS


def number(value: Any) -> Decimal | None:
    """The numeric reading of a property value: ``None`` when missing.

    Raises :class:`NotANumber` (with a reason) when the value is present but not
    an exact number.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise NotANumber(f"{_show(value)} is a boolean, not a number")
    if isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        # a float that reached us anyway: read the shortest text that names it
        d = Decimal(repr(value))
    elif isinstance(value, str):
        if not NUMBER_RE.fullmatch(value):
            raise NotANumber(f"{_show(value)} is not a number; send digits like 12 or \"12.5\"")
        try:
            d = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid numbers
            raise NotANumber(f"{_show(value)} is not a number") from None
    else:
        raise NotANumber(f"{_show(value)} is a {type(value).__name__}, not a number")
    if not exact(d):
        raise NotANumber(
            f"{_show(value)} does not fit an exact quantity (at most {SCALE} decimals, "
            f"below 10^{INT_DIGITS})"
        )
    return d


def is_number(value: Any) -> bool:
    try:
        return number(value) is not None
    except NotANumber:
        return False


def plain(d: Decimal) -> str:
    """A decimal in plain notation without trailing zeros (``1.50`` → ``1.5``, ``1E+3`` → 1000).

    Exact for any number of digits (no context rounding).
    """
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    ds = "".join(map(str, digits)).lstrip("0")
    if not ds:
        return "0"
    stripped = ds.rstrip("0")
    exponent += len(ds) - len(stripped)
    if exponent >= 0:
        text = stripped + "0" * exponent
    else:
        point = len(stripped) + exponent
        text = (stripped[:point] + "." + stripped[point:] if point > 0
                else "0." + "0" * (-point) + stripped)
    return ("-" if sign else "") + text


def key_text(value: Any) -> str | None:
    """The text a group, filter or distinct count compares; ``None`` when missing."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        return plain(value)
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def filter_matches(flt: dict[str, Any], props: Any) -> bool:
    """Whether properties pass a meter filter (each key equals the value or one of the list)."""
    for prop, wanted in flt.items():
        have = key_text(props.get(prop))
        if have is None:
            return False
        options = wanted if isinstance(wanted, list) else [wanted]
        if have not in {key_text(o) for o in options}:
            return False
    return True


def significant_digits(d: Decimal) -> int:
    digits = "".join(map(str, d.as_tuple().digits)).strip("0")
    return max(1, len(digits))


def storable(value: Any) -> Any:
    """A property value as the store keeps it.

    A number is kept as a JSON number only when every JSON reader gets it back
    exactly (at most 15 significant digits, below ``10**15``, at most 9 decimals);
    any other number is kept as its decimal text, which meters read unchanged.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, int):
        return value if abs(value) < _SAFE_LIMIT else str(value)
    if isinstance(value, Decimal):
        if (value.is_finite() and exact(value) and abs(value) < _SAFE_LIMIT
                and significant_digits(value) <= SAFE_DIGITS):
            return value
        text = plain(value) if value.is_finite() else str(value)
        return text if len(text) <= 64 else str(value)
    return value


_SAFE_LIMIT = 10**SAFE_DIGITS


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, Decimal) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
