"""Rating a plan: turn one period's usage into priced lines.

This is the one rating path: quotes, invoices and simulations all call
:func:`rate_charge` / :func:`rate_plan`. Lines keep their precise amount and are
rounded once each (:func:`ratecard.money.quantize`); a quote's total is the sum of
its rounded lines.

Line kinds: ``base_fee`` (in advance), ``seats`` (in advance), ``usage`` (a
metered charge, in arrears; one line per group for dimension pricing), ``flat``
(a flat charge, in advance unless the charge says ``timing: arrears``), and
``minimum`` (the minimum-spend true-up when the period's lines sum below it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ratecard.catalog.schema import Catalog, Charge, Meter, Plan, merge_params
from ratecard.errors import CatalogInvalid, Problem, UsageInvalid
from ratecard.metering.model import GroupKey, MeterUsage, UsageSnapshot
from ratecard.money import ONE, ZERO, quantize
from ratecard.pricing.per_unit import price_per_unit
from ratecard.pricing.registry import price
from ratecard.pricing.types import Priced

ADVANCE = "advance"
ARREARS = "arrears"


@dataclass(frozen=True)
class Line:
    """One priced line: precise ``amount`` and its ``rounded`` value in the currency."""

    kind: str
    label: str
    amount: Decimal
    rounded: Decimal
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    meter: str | None = None
    group: Mapping[str, str] | None = None
    stream: str = "usage"
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "meter": self.meter,
            "group": dict(self.group) if self.group else None,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "amount": self.rounded,
            "precise_amount": self.amount,
            "label": self.label,
            "stream": self.stream,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Quote:
    plan: str
    currency: str
    lines: tuple[Line, ...]
    subtotal: Decimal
    total: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "currency": self.currency,
            "lines": [ln.as_dict() for ln in self.lines],
            "subtotal": self.subtotal,
            "total": self.total,
        }


def make_line(kind: str, priced: Priced, currency: str, **kw: Any) -> Line:
    details = dict(kw.pop("details", {}) or {})
    details.setdefault("breakdown", [s.as_dict() for s in priced.breakdown])
    if priced.billable != priced.quantity:
        details.setdefault("billable", priced.billable)
    return Line(kind=kind, label=kw.pop("label", priced.label), amount=priced.amount,
                rounded=quantize(priced.amount, currency), quantity=priced.quantity,
                unit_price=priced.unit_price, details=details, **kw)


def _group_dict(group_by: tuple[str, ...], key: GroupKey) -> dict[str, str]:
    return dict(zip(group_by, key, strict=True))


def regroup(usage: MeterUsage, meter: Meter, prop: str, where: str) -> dict[str, MeterUsage]:
    """Split a meter's usage by one property (for ``prices_by``)."""
    if prop not in usage.group_by:
        if usage.quantity == 0 and not usage.groups:
            return {}
        raise UsageInvalid(
            f"{where}: the usage of meter {usage.meter!r} is not split by {prop!r}; give "
            f"quantities per {prop} value"
        )
    i = usage.group_by.index(prop)
    if len(usage.group_by) > 1 and meter.aggregation not in ("count", "sum"):
        raise UsageInvalid(
            f"{where}: a {meter.aggregation} meter cannot be re-split by {prop!r}; aggregate "
            f"it by {prop} alone"
        )
    out: dict[str, dict[str, Any]] = {}
    for key, qty in usage.groups.items():
        g = out.setdefault(key[i], {"q": ZERO, "c": None})
        g["q"] += qty
        if usage.group_costs is not None and key in usage.group_costs:
            g["c"] = (g["c"] or ZERO) + usage.group_costs[key]
    return {
        value: MeterUsage(meter=usage.meter, quantity=g["q"], group_by=(prop,),
                          groups={(value,): g["q"]}, cost=g["c"])
        for value, g in out.items()
    }


def rate_charge(
    charge: Charge,
    usage: MeterUsage | None,
    *,
    catalog: Catalog,
    currency: str,
    where: str = "charge",
) -> list[Line]:
    """Price one charge over one period's usage of its meter.

    A charge with ``prices_by`` gives one line per group value, each priced with
    that group's parameters (or the ``default``); a group with neither is an error.
    """
    stream = charge.revenue_stream
    if charge.model == "flat":
        priced = price(charge, ONE)
        return [make_line("flat", priced, currency, label=f"{charge.label}: {priced.label}",
                          meter=charge.meter, stream=stream,
                          details={"model": "flat", "once": charge.once})]
    assert charge.meter is not None
    meter = catalog.meters[charge.meter]
    if usage is None:
        usage = MeterUsage(meter=charge.meter, quantity=ZERO,
                           values=() if charge.model == "percentage" else None,
                           cost=ZERO if charge.model == "cost_plus" else None)
    if charge.prices_by is None:
        priced = price(charge, usage.quantity, values=usage.values, cost=usage.cost)
        return [make_line("usage", priced, currency, label=f"{charge.label}: {priced.label}",
                          meter=charge.meter, stream=stream,
                          details={"model": charge.model, "included": charge.included})]
    lines: list[Line] = []
    groups = regroup(usage, meter, charge.prices_by, where)
    for value in sorted(groups):
        group_usage = groups[value]
        override = (charge.prices or {}).get(value) or charge.default
        if override is None:
            raise CatalogInvalid([Problem(
                "<catalog>", f"{where}.prices",
                f"no price for {charge.prices_by} {value!r} and no default: add "
                f"prices.{value} or a default",
            )])
        effective = merge_params(charge, override)
        priced = price(effective, group_usage.quantity, cost=group_usage.cost)
        lines.append(make_line(
            "usage", priced, currency,
            label=f"{charge.label} [{charge.prices_by}={value}]: {priced.label}",
            meter=charge.meter, group={charge.prices_by: value}, stream=stream,
            details={"model": charge.model, "included": effective.included,
                     "priced_by": "default" if value not in (charge.prices or {}) else value},
        ))
    return lines


def charge_timing(charge: Charge) -> str:
    return ADVANCE if charge.in_advance else ARREARS


def rate_plan(
    catalog: Catalog,
    plan_code: str,
    usage: UsageSnapshot,
    *,
    plan: Plan | None = None,
    seats: int | None = None,
    first_period: bool = True,
    include: tuple[str, ...] = (ADVANCE, ARREARS),
    minimum: bool = True,
) -> Quote:
    """Rate one period of ``plan_code``: base fee, seats, every charge, minimum true-up.

    ``usage`` maps meter keys to :class:`MeterUsage` (missing meters are zero usage).
    ``first_period`` decides whether one-time flat charges (``once: true``) apply.
    ``include`` selects in-advance and/or in-arrears lines (invoices bill the base fee
    of the next period in advance with the usage of the period that ended).
    """
    plan = plan or catalog.plan(plan_code)
    currency = plan.currency or catalog.currency
    lines: list[Line] = []
    if ADVANCE in include:
        if plan.base_fee:
            priced = price_per_unit(ONE, unit_price=plan.base_fee)
            lines.append(make_line("base_fee", priced, currency,
                                   label=f"{plan.name or plan_code}: base fee",
                                   stream="subscription", details={}))
        if plan.seats is not None:
            count = max(seats if seats is not None else 0, plan.seats.minimum)
            priced = price_per_unit(Decimal(count), unit_price=plan.seats.unit_price,
                                    included=Decimal(plan.seats.included))
            lines.append(make_line("seats", priced, currency,
                                   label=f"Seats: {priced.label}", stream="subscription",
                                   details={"seats": count, "included": plan.seats.included}))
    for i, charge in enumerate(plan.charges):
        if charge_timing(charge) not in include:
            continue
        if charge.once and not first_period:
            continue
        u = usage.get(charge.meter) if charge.meter else None
        lines.extend(rate_charge(charge, u, catalog=catalog, currency=currency,
                                 where=f"plans.{plan_code}.charges[{i}]"))
    if plan.credits is not None and plan.credits.burn and ARREARS in include:
        lines.append(credits_line(plan, usage, currency))
    subtotal = sum((ln.rounded for ln in lines), ZERO)
    total = subtotal
    if minimum and plan.minimum and ARREARS in include and subtotal < plan.minimum:
        gap = plan.minimum - subtotal
        lines.append(Line(kind="minimum", label=f"Minimum spend {plan.minimum}: true-up",
                          amount=gap, rounded=quantize(gap, currency), quantity=ONE,
                          unit_price=gap, stream="subscription",
                          details={"minimum": plan.minimum, "spend": subtotal}))
        total = subtotal + quantize(gap, currency)
    return Quote(plan=plan_code, currency=currency, lines=tuple(lines), subtotal=subtotal,
                 total=total)


def credits_burned(plan: Plan, usage: UsageSnapshot) -> Decimal:
    """Credits the period's usage burns: Σ over burn meters of quantity × credits per unit."""
    assert plan.credits is not None
    total = ZERO
    for meter, rate in plan.credits.burn.items():
        u = usage.get(meter)
        if u is not None:
            total += u.quantity * rate
    return total


def credits_line(
    plan: Plan, usage: UsageSnapshot, currency: str, *, available: Decimal | None = None
) -> Line:
    """The credits the period burned, what the balance covered and the overage.

    ``available`` is the wallet balance for the period; a quote assumes only this
    period's grant (no rollover, no purchased packs), and says so in the line.
    """
    assert plan.credits is not None
    pc = plan.credits
    burned = credits_burned(plan, usage)
    balance = pc.grant if available is None else available
    covered = min(burned, balance)
    over = burned - covered
    blocked = pc.on_exhausted == "block"
    unit = pc.overage_unit_price or ZERO
    amount = ZERO if blocked else over * unit
    label = f"Credits: {burned:,} burned, {covered:,} covered by the balance"
    if over:
        label += (f", {over:,} beyond it (blocked)" if blocked
                  else f", {over:,} overage × {unit}")
    return Line(kind="credits", label=label, amount=amount, rounded=quantize(amount, currency),
                quantity=over, unit_price=None if blocked else unit, stream="usage",
                details={"burned": burned, "balance": balance, "covered": covered,
                         "overage_credits": over, "on_exhausted": pc.on_exhausted,
                         "assumption": "balance = this period's grant only"
                         if available is None else "balance from the wallet"})


# ----------------------------------------------------------------------- costs for quotes

TOKEN_KINDS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cached_input_tokens": "cached_input",
    "cache_read_tokens": "cached_input",
    "cache_write_tokens": "cache_write",
    "reasoning_tokens": "reasoning",
}


def with_catalog_costs(catalog: Catalog, usage: UsageSnapshot) -> dict[str, MeterUsage]:
    """Fill ``cost`` on meters whose cost the catalog alone can tell.

    A meter listed under ``costs.meters`` costs its quantity × the unit cost; a token
    meter (a sum of ``input_tokens``, ``output_tokens``, ``cache_read_tokens`` ... grouped
    by ``model``) costs each model's price for that token kind. Usage that already carries
    a cost (from the price book over raw events) is kept as it is.
    """
    out = dict(usage)
    for key, u in usage.items():
        if u.cost is not None:
            continue
        meter = catalog.meters.get(key)
        if meter is None:
            continue
        unit = catalog.costs.meters.get(key)
        if unit is not None:
            group_costs = {g: q * unit for g, q in u.groups.items()}
            out[key] = replace(u, cost=u.quantity * unit, group_costs=group_costs)
            continue
        kind = TOKEN_KINDS.get(meter.property or "")
        if kind and "model" in u.group_by:
            i = u.group_by.index("model")
            group_costs = {}
            for g, q in u.groups.items():
                entry = catalog.costs.models.get(g[i])
                if entry is None:
                    group_costs = None
                    break
                mc = entry[-1] if isinstance(entry, list) else entry
                unit_price = getattr(mc, kind, None)
                if unit_price is None and kind == "cached_input":
                    unit_price = mc.input
                if unit_price is None and kind == "reasoning":
                    unit_price = mc.output
                if unit_price is None:
                    group_costs = None
                    break
                group_costs[g] = q * unit_price / Decimal(mc.per)
            if group_costs is not None:
                out[key] = replace(u, cost=sum(group_costs.values(), ZERO),
                                   group_costs=group_costs)
    return out
