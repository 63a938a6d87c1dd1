"""What-ifs on cost (pure): routing, caching, batching and falling model prices.

What-ifs change costs, not prices: revenue per plan is held at what the current plans
bill for the period, and the model cost of the period's token mix is recomputed under
the levers of the playbook's margin-improvement stack:

- **routing**: a share of one model's tokens and requests moves to another model
  (``gpt-4o -> gpt-4o-mini`` for 60% of its requests);
- **prompt caching**: a share of each model's prompt tokens (uncached input plus cache
  reads) is read from the cache, priced at the cache-read price;
- **batching**: a share of all tokens goes through batch APIs, at the batch price (half
  the standard price when the book gives none);
- **falling prices**: the playbook's "AI compute costs are falling roughly 10x every 3
  years": model prices at ``h`` months are ``decline ** (-h / 36)`` of today's (0.46 at
  12 months, 0.22 at 24, 0.10 at 36 for the default 10).

Margin per plan is reported now (the observed mix at today's list prices), with the
levers, and projected with the levers at 12, 24 and 36 months. Costs that are not model
tokens (a meter's unit cost: a resolution, a GPU second) are kept as they are. The
token mix is aggregated per plan and model, so every request is priced at its model's
standard (not long-context) rates: a what-if is a planning figure, the margins report
the invoice-grade one.

:func:`projection_table` recomputes the playbook's cost projection (a B2B product
processing 50M tokens a month per enterprise customer at $2K MRR: unoptimized frontier
model, caching + batching, routing + caching, custom models + the full stack) with the
real price book.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ratecard.costs.model import Unpriced
from ratecard.errors import InvalidInput
from ratecard.money import ONE, ZERO

KINDS = ("input", "cache_read", "cache_write", "output")
HORIZONS = (0, 12, 24, 36)
DECLINE = Decimal(10)            # 10x cheaper every 3 years

# model, batch -> USD per token of each kind (raises ratecard.costs.model.Unpriced)
Rates = Callable[[str, bool], Mapping[str, Decimal]]


@dataclass(frozen=True)
class Mix:
    """The tokens (per kind) and requests of one plan on one model over the period."""

    plan: str
    model: str
    tokens: Mapping[str, Decimal]
    requests: Decimal = ZERO

    def scaled(self, share: Decimal, model: str | None = None) -> Mix:
        return Mix(self.plan, model or self.model,
                   {k: v * share for k, v in self.tokens.items()}, self.requests * share)


@dataclass(frozen=True)
class Route:
    """Move ``share`` of ``source``'s traffic to ``target``."""

    source: str
    target: str
    share: Decimal

    def __post_init__(self) -> None:
        if not (ZERO <= self.share <= ONE):
            raise InvalidInput(f"route {self.source}->{self.target}: the share {self.share} "
                               "is a fraction between 0 and 1")
        if self.source == self.target:
            raise InvalidInput(f"route {self.source}->{self.target}: pick another model")


@dataclass(frozen=True)
class Levers:
    routes: tuple[Route, ...] = ()
    cache_hit: Decimal | None = None        # share of prompt tokens read from the cache
    batch_share: Decimal = ZERO             # share of tokens sent through batch APIs
    decline: Decimal = DECLINE              # price falls this many times every 3 years

    def __post_init__(self) -> None:
        for name in ("cache_hit", "batch_share"):
            v = getattr(self, name)
            if v is not None and not (ZERO <= v <= ONE):
                raise InvalidInput(f"{name.replace('_', ' ')} {v} is a fraction between 0 "
                                   "and 1")
        if self.decline < ONE:
            raise InvalidInput("decline is how many times cheaper models get every 3 years "
                               "(10 by default; 1 for no decline)")

    def factor(self, months: int) -> Decimal:
        """Model prices after ``months``, as a share of today's."""
        return self.decline ** (Decimal(-months) / Decimal(36))

    def describe(self) -> list[str]:
        out = [f"route {r.share * 100:.4g}% of {r.source} to {r.target}" for r in self.routes]
        if self.cache_hit is not None:
            out.append(f"cache hit rate {self.cache_hit * 100:.4g}% of prompt tokens")
        if self.batch_share:
            out.append(f"{self.batch_share * 100:.4g}% of tokens through batch APIs")
        out.append(f"model prices fall {self.decline:.4g}x every 3 years")
        return out


def route(mixes: Iterable[Mix], routes: Sequence[Route]) -> list[Mix]:
    """The mixes with each route applied in turn (a share of a model's traffic moves)."""
    out = list(mixes)
    for r in routes:
        nxt: list[Mix] = []
        for m in out:
            if m.model == r.source and r.share:
                nxt.append(m.scaled(ONE - r.share))
                nxt.append(m.scaled(r.share, r.target))
            else:
                nxt.append(m)
        out = nxt
    return out


def cached(mix: Mix, hit: Decimal | None) -> Mix:
    """The mix with ``hit`` of its prompt tokens (uncached input + cache reads) read from
    the cache; cache writes are kept."""
    if hit is None:
        return mix
    prompt = mix.tokens.get("input", ZERO) + mix.tokens.get("cache_read", ZERO)
    tokens = dict(mix.tokens)
    tokens["cache_read"] = prompt * hit
    tokens["input"] = prompt - tokens["cache_read"]
    return Mix(mix.plan, mix.model, tokens, mix.requests)


def mix_cost(mix: Mix, rates: Rates, batch_share: Decimal = ZERO) -> Decimal:
    """The model cost of a mix: tokens × the standard price, and the batch share × the
    batch price."""
    std = rates(mix.model, False)
    total = ZERO
    if batch_share < ONE:
        total += (ONE - batch_share) * sum((mix.tokens.get(k, ZERO) * std[k] for k in KINDS
                                            if mix.tokens.get(k)), ZERO)
    if batch_share > 0:
        bat = rates(mix.model, True)
        total += batch_share * sum((mix.tokens.get(k, ZERO) * bat[k] for k in KINDS
                                    if mix.tokens.get(k)), ZERO)
    return total


@dataclass(frozen=True)
class PlanProjection:
    plan: str
    revenue: Decimal
    other_cost: Decimal                 # costs that are not model tokens
    model_cost_now: Decimal             # the observed mix at today's prices
    model_cost: Mapping[int, Decimal]   # with the levers, per horizon (months)

    def cost(self, months: int | None) -> Decimal:
        model = self.model_cost_now if months is None else self.model_cost[months]
        return model + self.other_cost

    def margin(self, months: int | None) -> Decimal | None:
        if self.revenue == 0:
            return None
        return (self.revenue - self.cost(months)) / self.revenue

    def as_dict(self) -> dict[str, Any]:
        def r(v: Decimal | None) -> Decimal | None:
            return None if v is None else v.quantize(Decimal("0.0001"))

        return {
            "plan": self.plan, "revenue": self.revenue, "other_cost": self.other_cost,
            "now": {"model_cost": self.model_cost_now, "margin": r(self.margin(None))},
            "with_levers": [{"months": h, "model_cost": self.model_cost[h],
                             "margin": r(self.margin(h))} for h in sorted(self.model_cost)],
        }


@dataclass(frozen=True)
class WhatIf:
    levers: Levers
    plans: tuple[PlanProjection, ...]
    unpriced: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"levers": self.levers.describe(), "plans": [p.as_dict() for p in self.plans],
                "unpriced_models": list(self.unpriced), "notes": list(self.notes)}


def project(
    revenue: Mapping[str, Decimal],
    mixes: Sequence[Mix],
    rates: Rates,
    levers: Levers,
    *,
    other_cost: Mapping[str, Decimal] | None = None,
    horizons: Sequence[int] = HORIZONS,
) -> WhatIf:
    """Margin per plan now and, with the levers, at each horizon (months)."""
    other_cost = other_cost or {}
    unpriced: set[str] = set()

    def costs(ms: Iterable[Mix], batch: Decimal) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for m in ms:
            try:
                c = mix_cost(m, rates, batch)
            except Unpriced:
                unpriced.add(m.model)
                continue
            out[m.plan] = out.get(m.plan, ZERO) + c
        return out

    now = costs(mixes, ZERO)
    moved = [cached(m, levers.cache_hit) for m in route(mixes, levers.routes)]
    after = costs(moved, levers.batch_share)
    plans = sorted(set(revenue) | set(now) | set(other_cost))
    out = []
    for p in plans:
        base = after.get(p, ZERO)
        out.append(PlanProjection(
            plan=p, revenue=revenue.get(p, ZERO), other_cost=other_cost.get(p, ZERO),
            model_cost_now=now.get(p, ZERO),
            model_cost={h: base * levers.factor(h) for h in horizons},
        ))
    notes = []
    if unpriced:
        notes.append("models without a price are left out of the cost (never $0): "
                     + ", ".join(sorted(unpriced)))
    return WhatIf(levers, tuple(out), tuple(sorted(unpriced)), tuple(notes))


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Scenario:
    name: str
    level: str
    cost: Decimal
    margin: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.name, "optimization": self.level,
                "monthly_cost": self.cost.quantize(Decimal("0.01")),
                "gross_margin": self.margin.quantize(Decimal("0.0001"))}


def projection_table(
    rates: Rates,
    *,
    frontier: str,
    small: str,
    tokens: Decimal = Decimal(50_000_000),
    mrr: Decimal = Decimal(2000),
    output_share: Decimal = Decimal("0.25"),
    cache_hit: Decimal = Decimal("0.5"),
    batch_share: Decimal = Decimal("0.5"),
    routed: Decimal = Decimal("0.75"),
    custom_routed: Decimal = Decimal("0.9"),
) -> list[Scenario]:
    """The playbook's cost projection with real prices: ``tokens`` a month (a quarter of
    them output by default) for a customer paying ``mrr``, under four optimization levels:

    1. unoptimized: everything on the ``frontier`` model;
    2. foundation: prompt caching (``cache_hit`` of prompt tokens) and batching
       (``batch_share``);
    3. intermediate: plus routing ``routed`` of the traffic to the ``small`` model (the
       playbook: 70-80% of tasks route to the cheapest tier);
    4. advanced: ``custom_routed`` on the small model (custom small models take over
       most tasks), with caching and batching.
    """
    prompt = tokens * (ONE - output_share)
    base = Mix("customer", frontier, {"input": prompt, "output": tokens * output_share})

    def cost(levers: Levers) -> Decimal:
        ms = [cached(m, levers.cache_hit) for m in route([base], levers.routes)]
        return sum((mix_cost(m, rates, levers.batch_share) for m in ms), ZERO)

    plans = [
        ("Unoptimized (frontier model only)", "none", Levers()),
        ("Basic optimization (caching + batching)", "foundation",
         Levers(cache_hit=cache_hit, batch_share=batch_share)),
        ("Full routing + caching", "intermediate",
         Levers(routes=(Route(frontier, small, routed),), cache_hit=cache_hit,
                batch_share=batch_share)),
        ("Custom models + full stack", "advanced",
         Levers(routes=(Route(frontier, small, custom_routed),), cache_hit=cache_hit,
                batch_share=batch_share)),
    ]
    out = []
    for name, level, lv in plans:
        c = cost(lv)
        out.append(Scenario(name, level, c, (mrr - c) / mrr))
    return out
