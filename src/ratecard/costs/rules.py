"""The cost of one request, the way providers bill it (pure functions).

``cost = Σ over token kinds of tokens × price + per-request price``, with:

* **Long context.** When the whole prompt (uncached + cache reads + cache writes)
  is strictly above a tier's threshold, the whole request is priced with that
  tier (the highest threshold exceeded). A kind the tier does not price keeps the
  model's base price for that kind.
* **Defaults**, each written into the breakdown when used: no cache-read price →
  the input price; no cache-write price → the input price; no 1-hour cache-write
  price → the (5-minute) cache-write price; no reasoning price → the output price
  (reasoning tokens are a part of output and are billed once); no batch price →
  half the standard price of that kind.
* A model with no price, or output tokens on a model with no output price, is
  :class:`~ratecard.costs.model.Unpriced`: never $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ratecard.clock import ensure_utc
from ratecard.costs.model import (
    TOKEN_KINDS,
    CostBreakdown,
    CostLine,
    LongContextTier,
    ModelPrice,
    PriceBook,
    TokenRates,
    TokenUsage,
    Unpriced,
)
from ratecard.money import ZERO

TWO = Decimal(2)

# A kind without a price of its own takes the price of another kind (same mode, same tier).
FALLBACK: dict[str, str] = {
    "cache_read": "input",
    "cache_write": "input",
    "cache_write_1h": "cache_write",
    "reasoning": "output",
}
_FALLBACK_WHY: dict[str, str] = {
    "cache_read": "no cache-read price: the input price",
    "cache_write": "no cache-write price: the input price",
    "cache_write_1h": "no 1-hour cache-write price: the cache-write price",
    "reasoning": "no reasoning price: the output price (reasoning is billed once, as output)",
}


@dataclass(frozen=True)
class Rate:
    """A resolved price for one token kind: USD per token, and where it came from."""

    price: Decimal
    basis: str
    default: str | None = None  # the default rule that produced it, if any


def tier_for(price: ModelPrice, prompt_tokens: int) -> LongContextTier | None:
    """The long-context tier of the highest threshold strictly below ``prompt_tokens``."""
    chosen: LongContextTier | None = None
    for t in price.long_context:  # sorted by threshold
        if prompt_tokens > t.above:
            chosen = t
    return chosen


def _explicit(price: ModelPrice, tier: LongContextTier | None) -> tuple[TokenRates, TokenRates,
                                                                          dict[str, str]]:
    """Standard and batch prices that the price list gives, the tier laid over the base.

    A batch price from the base applies only to kinds the tier leaves at the base
    price; a kind the tier reprices without a batch price gets half the tier price.
    """
    std: dict[str, Decimal | None] = {}
    bat: dict[str, Decimal | None] = {}
    where: dict[str, str] = {}
    for k in TOKEN_KINDS:
        base_std, base_bat = price.rates.get(k), price.batch.get(k)
        if tier is not None and (tier.rates.get(k) is not None or tier.batch.get(k) is not None):
            std[k], bat[k] = tier.rates.get(k), tier.batch.get(k)
            if std[k] is None:
                std[k] = base_std
            where[k] = f"above {tier.above} tokens"
        else:
            std[k], bat[k] = base_std, base_bat
            where[k] = "" if tier is None else f"base price (no price above {tier.above} tokens)"
    return TokenRates(**std), TokenRates(**bat), where


def resolve_rates(price: ModelPrice, prompt_tokens: int, batch: bool) -> dict[str, Rate]:
    """Every token kind's price for a request of ``prompt_tokens`` (batch or not).

    Raises :class:`Unpriced` when the output price is needed but missing: callers
    that only need input-side prices use :func:`resolve_rate`.
    """
    return {k: resolve_rate(price, prompt_tokens, batch, k) for k in TOKEN_KINDS}


def resolve_rate(price: ModelPrice, prompt_tokens: int, batch: bool, kind: str) -> Rate:
    tier = tier_for(price, prompt_tokens)
    std, bat, where = _explicit(price, tier)
    return _resolve(price.model, std, bat, where, batch, kind)


def _resolve(model: str, std: TokenRates, bat: TokenRates, where: dict[str, str], batch: bool,
             kind: str) -> Rate:
    loc = f" {where[kind]}" if where[kind] else ""
    if batch:
        explicit = bat.get(kind)
        if explicit is not None:
            return Rate(explicit, f"batch {kind} price{loc}")
        standard = std.get(kind)
        if standard is not None:
            return Rate(standard / TWO, f"half the {kind} price{loc}",
                        default=f"{kind}: no batch price: half the standard price")
    else:
        standard = std.get(kind)
        if standard is not None:
            return Rate(standard, f"{kind} price{loc}")
    if kind in FALLBACK:
        src = _resolve(model, std, bat, where, batch, FALLBACK[kind])
        rule = f"{kind}: {_FALLBACK_WHY[kind]}"
        return Rate(src.price, f"{src.basis} (default for {kind})", default=rule)
    raise Unpriced(model, f"no {'batch or standard ' if batch else ''}{kind} price")


def cost_with_price(price: ModelPrice, usage: TokenUsage, at: datetime) -> CostBreakdown:
    """The cost of ``usage`` under one price version."""
    tier = tier_for(price, usage.prompt)
    lines: list[CostLine] = []
    defaults: list[str] = []
    total = ZERO
    for kind in TOKEN_KINDS:
        tokens = usage.tokens(kind)
        if tokens == 0:
            continue
        rate = resolve_rate(price, usage.prompt, usage.batch, kind)
        amount = rate.price * tokens
        lines.append(CostLine(kind, tokens, rate.price, amount, rate.basis))
        if rate.default:
            defaults.append(rate.default)
        total += amount
    if price.per_request is not None:
        lines.append(CostLine("request", 1, price.per_request, price.per_request,
                              "per-request price"))
        total += price.per_request
    return CostBreakdown(
        model=price.model, at=ensure_utc(at), usage=usage, price=price, lines=tuple(lines),
        total=total, long_context_above=tier.above if tier else None,
        defaults=tuple(dict.fromkeys(defaults)),
    )


def cost_of_request(book: PriceBook, model: str, usage: TokenUsage, at: datetime, *,
                    provider: str | None = None, region: str | None = None) -> CostBreakdown:
    """The cost of one request of ``model`` at ``at`` with the prices then in force.

    Raises :class:`Unpriced` when no price applies (never returns $0 for an
    unknown model).
    """
    price = book.lookup(model, at, provider=provider, region=region)
    return cost_with_price(price, usage, at)


def meter_cost(book: PriceBook, meter: str, quantity: Decimal) -> Decimal | None:
    """The non-token cost of ``quantity`` units of ``meter`` (``None`` when it has none)."""
    unit = book.meter_costs.get(meter)
    return None if unit is None else unit * quantity
