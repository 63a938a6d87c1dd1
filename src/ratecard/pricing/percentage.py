"""``percentage``: a share of each event's value (a sale, a payment), plus a fixed fee."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ratecard.money import ZERO
from ratecard.pricing._common import n
from ratecard.pricing.types import Priced, Step

HUNDRED = Decimal(100)


def price_percentage(
    values: Sequence[Decimal],
    *,
    rate: Decimal,
    fixed_fee: Decimal = ZERO,
    min_per_event: Decimal | None = None,
    max_per_event: Decimal | None = None,
    free_events: int = 0,
) -> Priced:
    """Per event ``fee = rate / 100 × value + fixed_fee`` (``rate: 2.9`` is 2.9%),
    clamped to ``[min_per_event, max_per_event]`` when set; the first ``free_events``
    events (in time order) are free. ``amount = Σ fees``.
    """
    total = ZERO
    charged = 0
    clamped_low = clamped_high = 0
    value_sum = ZERO
    for i, v in enumerate(values):
        value_sum += v
        if i < free_events:
            continue
        fee = rate / HUNDRED * v + fixed_fee
        if min_per_event is not None and fee < min_per_event:
            fee = min_per_event
            clamped_low += 1
        if max_per_event is not None and fee > max_per_event:
            fee = max_per_event
            clamped_high += 1
        total += fee
        charged += 1
    count = Decimal(len(values))
    free = min(free_events, len(values))
    steps = [Step(f"{charged} events at {n(rate)}% + {n(fixed_fee)}", Decimal(charged),
                  None, total)]
    if free:
        steps.insert(0, Step(f"{free} free events", Decimal(free), ZERO, ZERO))
    notes = []
    if clamped_low:
        notes.append(f"{clamped_low} raised to the minimum")
    if clamped_high:
        notes.append(f"{clamped_high} capped at the maximum")
    label = f"{n(rate)}% of {n(value_sum)} over {len(values)} events"
    if notes:
        label += " (" + ", ".join(notes) + ")"
    return Priced(amount=total, label=label, quantity=value_sum, billable=count - free,
                  unit_price=None, breakdown=tuple(steps))
