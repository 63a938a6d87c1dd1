"""Margins and unit economics: the facts they are computed from and the report (pure values).

The report is built from three kinds of facts over one window, each tagged with the
customer and the plan it belongs to:

* :class:`RevenueFact`: money billed (an invoice line), optionally for a meter and a
  model (a dimension-priced line grouped by model);
* :class:`CostFact`: cost of goods: a model's token cost (``kind="model"``) or a meter's
  unit cost (``kind="meter"``). A BYOK customer's model cost is zero and the cost it
  would have had is kept apart in ``byok_amount``;
* :class:`ActivityFact`: the units unit economics divide by: tasks, resolved outcomes,
  active members.

Events whose model has no price are never costed at zero: they are carried as
:class:`UnpricedModel` rows and shown with every report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from ratecard.money import ZERO

Dimension = Literal["customer", "plan", "meter", "model"]
DIMENSIONS: tuple[str, ...] = ("customer", "plan", "meter", "model")
UNATTRIBUTED = "(none)"
"""The group of a fact that has no value for the dimension (a base fee has no model)."""


@dataclass(frozen=True)
class RevenueFact:
    customer: str
    amount: Decimal
    plan: str | None = None
    meter: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class CostFact:
    """Cost of goods. ``amount`` is what you pay; ``byok_amount`` what a BYOK customer's
    usage would have cost you (its provider bills it, not you)."""

    customer: str
    amount: Decimal
    kind: Literal["model", "meter"] = "model"
    plan: str | None = None
    meter: str | None = None
    model: str | None = None
    byok_amount: Decimal = ZERO
    requests: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class ActivityFact:
    customer: str
    plan: str | None = None
    tasks: Decimal = ZERO
    resolutions: Decimal = ZERO
    active_members: Decimal = ZERO


@dataclass(frozen=True)
class PlanTarget:
    """A plan's archetype margin band and its own floor (``min_margin``)."""

    plan: str
    archetype: str | None = None
    band: tuple[Decimal, Decimal] | None = None
    min_margin: Decimal | None = None


@dataclass(frozen=True)
class UnpricedModel:
    """Events of one model that could not be costed, and why."""

    model: str
    events: int
    customers: int = 0
    reason: str = ""
    first_at: datetime | None = None
    last_at: datetime | None = None


@dataclass(frozen=True)
class MarginRow:
    """Revenue, cost and unit economics of one group (or of everything: ``key="total"``).

    Ratios are ``None`` when their denominator is zero (no revenue, no tasks ...), and
    unit metrics (CPT, CPR, CPAM, tokens per task) are ``None`` for a dimension they
    do not apply to (a meter or a model has no members).
    """

    key: str
    revenue: Decimal
    model_cost: Decimal
    meter_cost: Decimal
    byok_model_cost: Decimal
    requests: int
    tokens: int
    tasks: Decimal | None = None
    resolutions: Decimal | None = None
    active_members: Decimal | None = None
    target: PlanTarget | None = None
    customers: int = 0

    @property
    def cost(self) -> Decimal:
        return self.model_cost + self.meter_cost

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_pct(self) -> Decimal | None:
        return None if self.revenue == 0 else self.margin / self.revenue

    @property
    def model_cost_ratio(self) -> Decimal | None:
        return None if self.revenue == 0 else self.model_cost / self.revenue

    @property
    def cpt(self) -> Decimal | None:
        return _per(self.cost, self.tasks)

    @property
    def cpr(self) -> Decimal | None:
        return _per(self.cost, self.resolutions)

    @property
    def cpam(self) -> Decimal | None:
        return _per(self.cost, self.active_members)

    @property
    def tokens_per_task(self) -> Decimal | None:
        return _per(Decimal(self.tokens), self.tasks)

    @property
    def loss_making(self) -> bool:
        return self.cost > self.revenue

    @property
    def target_status(self) -> str | None:
        """``below``, ``within`` or ``above`` the archetype band; ``None`` without one."""
        t = self.target
        if t is None or t.band is None:
            return None
        pct = self.margin_pct
        if pct is None:
            return "no revenue"
        lo, hi = t.band
        return "below" if pct < lo else ("above" if pct > hi else "within")

    @property
    def below_min_margin(self) -> bool | None:
        t = self.target
        if t is None or t.min_margin is None:
            return None
        pct = self.margin_pct
        return pct is None or pct < t.min_margin


def _per(amount: Decimal, units: Decimal | None) -> Decimal | None:
    if units is None or units == 0:
        return None
    return amount / units


@dataclass(frozen=True)
class MarginReport:
    """The margin report of one window grouped by one dimension."""

    start: datetime
    end: datetime
    by: str
    rows: tuple[MarginRow, ...]
    total: MarginRow
    losers: tuple[MarginRow, ...]
    unpriced: tuple[UnpricedModel, ...] = ()
    currency: str = "USD"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def unpriced_events(self) -> int:
        return sum(u.events for u in self.unpriced)
