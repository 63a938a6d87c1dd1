"""Read a usage file (``USAGE.json``) into a usage snapshot for a quote.

Format: a JSON object mapping a meter key to

* a quantity (``"resolutions": 350``),
* for a grouped meter, ``{group value: quantity}`` keyed by the value of the meter's
  first ``group_by`` property (``"input_tokens": {"gpt-4o": 1200000}``),
* for a meter priced per event (``percentage``), the list of event values
  (``"plugin_sales": [120, "49.90"]``).

Numbers are read exactly (JSON decimals become ``Decimal``, never binary floats).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ratecard.catalog.schema import Catalog
from ratecard.errors import InvalidAmount, UsageInvalid
from ratecard.metering.model import MeterUsage
from ratecard.money import ZERO, D


def _quantity(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise UsageInvalid(f"{where}: {value!r} is not a quantity; give a number")
    try:
        q = Decimal(value) if not isinstance(value, Decimal) else value
    except ArithmeticError:
        raise UsageInvalid(f"{where}: {value!r} is not a number") from None
    if not q.is_finite():
        raise UsageInvalid(f"{where}: {value!r} is not a finite number")
    try:
        D(q)
    except InvalidAmount as e:
        raise UsageInvalid(f"{where}: {e}") from None
    if q < 0:
        raise UsageInvalid(f"{where}: quantity {q} is negative; usage cannot be below zero")
    return q


def parse_usage(text: str, catalog: Catalog, *, name: str = "usage file") -> dict[str, MeterUsage]:
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as e:
        raise UsageInvalid(f"{name}: not valid JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise UsageInvalid(f"{name}: expected a JSON object mapping meter keys to quantities")
    out: dict[str, MeterUsage] = {}
    known = ", ".join(sorted(catalog.meters)) or "none"
    for key, value in data.items():
        where = f"{name}: {key}"
        meter = catalog.meters.get(key)
        if meter is None:
            raise UsageInvalid(f"{where}: no meter {key!r} in the catalog (meters: {known})")
        if isinstance(value, list):
            values = tuple(_quantity(v, f"{where}[{i}]") for i, v in enumerate(value))
            out[key] = MeterUsage(meter=key, quantity=sum(values, ZERO), values=values)
        elif isinstance(value, dict):
            if not meter.group_by:
                raise UsageInvalid(
                    f"{where}: meter {key!r} is not grouped; give one quantity, not an object"
                )
            prop = meter.group_by[0]
            groups = {(str(g),): _quantity(q, f"{where}.{g}") for g, q in value.items()}
            out[key] = MeterUsage(meter=key, quantity=sum(groups.values(), ZERO),
                                  group_by=(prop,), groups=groups)
        else:
            q = _quantity(value, where)
            out[key] = MeterUsage(meter=key, quantity=q)
    return out
