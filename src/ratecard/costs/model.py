"""The cost of goods: model prices, token usage and the cost of one request (pure values).

Prices are kept in USD **per token** as exact :class:`~decimal.Decimal` s (a
catalog's "2.50 per million" becomes ``0.0000025``). ``None`` means "the price
list does not say": the rules in :mod:`ratecard.costs.rules` then apply a
documented default, and every default used shows up in the breakdown.

A :class:`PriceBook` maps a model name to its price versions. A version applies
from ``valid_from`` (inclusive) to ``valid_to`` (exclusive); ``None`` is open.
Versions may be specific to a provider and/or a region; two versions of one
model for the same provider and region must not overlap in time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal

from ratecard.clock import ensure_utc, iso
from ratecard.errors import InvalidAmount, InvalidInput, NotFound
from ratecard.money import ZERO

MILLION = Decimal(1_000_000)

TOKEN_KINDS: tuple[str, ...] = (
    "input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning",
)
"""The disjoint token kinds a request is priced by (``reasoning`` is a part of output)."""


def dec_str(value: Decimal) -> str:
    """An exact decimal string without exponent or trailing zeros (``2.000000`` → ``2``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


NOT_IN_BOOK = "not in the price book (add it to the catalog's costs or import a price file)"
NO_MODEL = "(no model)"


class Unpriced(NotFound):
    """A model (or a token kind of it) has no price at a time: never a silent $0."""

    code = "unpriced_model"

    def __init__(self, model: str, reason: str, at: datetime | None = None) -> None:
        when = f" at {iso(at)}" if at is not None else ""
        super().__init__(f"model {model!r} is unpriced{when}: {reason}")
        self.model = model
        self.reason = reason  # the same text for every event it applies to (reports group by it)


class PriceBookInvalid(InvalidInput):
    code = "pricebook_invalid"


# --------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class TokenRates:
    """USD per token for each token kind; ``None`` when the price list gives none."""

    input: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    output: Decimal | None = None
    reasoning: Decimal | None = None

    def get(self, kind: str) -> Decimal | None:
        value: Decimal | None = getattr(self, kind)
        return value

    def given(self) -> dict[str, Decimal]:
        return {k: v for k in TOKEN_KINDS if (v := self.get(k)) is not None}

    @property
    def empty(self) -> bool:
        return not self.given()


NO_RATES = TokenRates()


@dataclass(frozen=True)
class LongContextTier:
    """Prices for a whole request whose prompt is strictly above ``above`` tokens."""

    above: int
    rates: TokenRates = NO_RATES
    batch: TokenRates = NO_RATES


@dataclass(frozen=True)
class ModelPrice:
    """One price version of one model.

    ``rates`` are the standard prices, ``batch`` the batch-API prices (a missing
    batch price is half the standard one), ``long_context`` the tiers that reprice
    a long request, ``per_request`` a fixed USD amount per request.
    """

    model: str
    rates: TokenRates
    batch: TokenRates = NO_RATES
    long_context: tuple[LongContextTier, ...] = ()
    per_request: Decimal | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    provider: str | None = None
    region: str | None = None
    source: str = ""

    def active_at(self, at: datetime) -> bool:
        if self.valid_from is not None and at < self.valid_from:
            return False
        return not (self.valid_to is not None and at >= self.valid_to)

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.model, self.provider, self.region)

    def overlaps(self, other: ModelPrice) -> bool:
        lo = max(_t(self.valid_from, low=True), _t(other.valid_from, low=True))
        hi = min(_t(self.valid_to, low=False), _t(other.valid_to, low=False))
        return lo < hi

    def validity(self) -> str:
        start = iso(self.valid_from) if self.valid_from else "the beginning"
        end = iso(self.valid_to) if self.valid_to else "open-ended"
        return f"[{start}, {end})"

    def where(self) -> str:
        parts = [self.model]
        if self.provider:
            parts.append(f"provider {self.provider}")
        if self.region:
            parts.append(f"region {self.region}")
        return ", ".join(parts)


_MIN = datetime.min.replace(tzinfo=None)


def _t(value: datetime | None, *, low: bool) -> tuple[int, datetime]:
    """A sortable bound: ``None`` is minus infinity (low) or plus infinity (high)."""
    if value is None:
        return (0, _MIN) if low else (2, _MIN)
    return (1, value.replace(tzinfo=None))


def check_price(p: ModelPrice) -> ModelPrice:
    """Validate one version (non-negative prices, input price given, tiers sorted, times)."""
    where = p.where()
    if not p.model:
        raise PriceBookInvalid("a price has an empty model name")
    if p.rates.input is None:
        raise PriceBookInvalid(f"{where}: no input price; every model needs one")
    groups: list[tuple[str, TokenRates]] = [("", p.rates), ("batch ", p.batch)]
    for t in p.long_context:
        if t.above <= 0:
            raise PriceBookInvalid(f"{where}: long-context threshold {t.above} must be positive")
        groups += [(f"above {t.above} tokens ", t.rates), (f"above {t.above} tokens batch ",
                                                           t.batch)]
    for label, rates in groups:
        for kind, value in rates.given().items():
            if value < 0:
                raise InvalidAmount(
                    f"{where}: {label}{kind} price {value} is negative; prices must be >= 0"
                )
    if p.per_request is not None and p.per_request < 0:
        raise InvalidAmount(f"{where}: per-request price {p.per_request} is negative")
    aboves = [t.above for t in p.long_context]
    if len(set(aboves)) != len(aboves):
        raise PriceBookInvalid(f"{where}: two long-context tiers share a threshold")
    tiers = tuple(sorted(p.long_context, key=lambda t: t.above))
    vf = ensure_utc(p.valid_from) if p.valid_from is not None else None
    vt = ensure_utc(p.valid_to) if p.valid_to is not None else None
    if vf is not None and vt is not None and vt <= vf:
        raise PriceBookInvalid(
            f"{where}: valid_to {iso(vt)} is not after valid_from {iso(vf)}"
        )
    return replace(p, long_context=tiers, valid_from=vf, valid_to=vt)


@dataclass(frozen=True)
class PriceBook:
    """Model prices by model name, plus non-token unit costs per meter (USD per unit)."""

    prices: Mapping[str, tuple[ModelPrice, ...]] = field(default_factory=dict)
    meter_costs: Mapping[str, Decimal] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def build(cls, prices: Iterable[ModelPrice], *, meter_costs: Mapping[str, Decimal] | None =
              None, source: str = "") -> PriceBook:
        """Validate every version and refuse overlapping validity for one model."""
        by_model: dict[str, list[ModelPrice]] = {}
        for p in prices:
            by_model.setdefault(p.model, []).append(check_price(p))
        out: dict[str, tuple[ModelPrice, ...]] = {}
        for model, versions in by_model.items():
            versions.sort(key=lambda v: (v.provider or "", v.region or "",
                                         _t(v.valid_from, low=True)))
            for i, a in enumerate(versions):
                for b in versions[i + 1:]:
                    if a.provider == b.provider and a.region == b.region and a.overlaps(b):
                        raise PriceBookInvalid(
                            f"{a.where()}: validity {a.validity()} overlaps {b.validity()}; "
                            "end the first version (valid_to) where the next one starts"
                        )
            out[model] = tuple(versions)
        costs = dict(meter_costs or {})
        for meter, c in costs.items():
            if c < 0:
                raise InvalidAmount(f"meter {meter!r}: unit cost {c} is negative")
        return cls(prices=out, meter_costs=costs, source=source)

    def __contains__(self, model: object) -> bool:
        return model in self.prices

    def __len__(self) -> int:
        return len(self.prices)

    def models(self) -> list[str]:
        return sorted(self.prices)

    def versions(self, model: str) -> tuple[ModelPrice, ...]:
        return self.prices.get(model, ())

    def all_prices(self) -> list[ModelPrice]:
        return [p for m in self.models() for p in self.prices[m]]

    def lookup(self, model: str, at: datetime, provider: str | None = None,
               region: str | None = None) -> ModelPrice:
        """The version of ``model`` in force at ``at`` for ``provider``/``region``.

        Matching: a version for another provider (region) never applies to a
        request that names its provider (region). Among the versions that apply,
        the most specific wins: one naming the request's provider beats a generic
        one; for a request that names no provider, a generic version beats a
        provider-specific one. Two equally specific versions are ambiguous, and an
        ambiguous or missing price raises :class:`Unpriced`.
        """
        at = ensure_utc(at)
        versions = self.prices.get(model)
        if not versions:
            raise Unpriced(model, NOT_IN_BOOK)
        best: list[tuple[int, ModelPrice]] = []
        for v in versions:
            if not v.active_at(at):
                continue
            s = _score(v.provider, provider)
            r = _score(v.region, region)
            if s < 0 or r < 0:
                continue
            best.append((s * 3 + r, v))
        if not best:
            spans = "; ".join(f"{v.where()} {v.validity()}" for v in versions)
            want = "".join(f", {k} {v}" for k, v in (("provider", provider), ("region", region))
                           if v)
            raise Unpriced(model, f"no price in force{want} (prices: {spans})", at)
        top = max(s for s, _ in best)
        winners = [v for s, v in best if s == top]
        if len(winners) > 1:
            names = "; ".join(v.where() for v in winners)
            raise Unpriced(model, f"{len(winners)} prices apply ({names}); "
                                  "name the provider or region on the event", at)
        return winners[0]


def _score(entry: str | None, wanted: str | None) -> int:
    """Specificity of a version's provider (or region) for a request; -1: does not apply."""
    if wanted is None:
        return 1 if entry is None else 0
    if entry is None:
        return 1
    return 2 if entry == wanted else -1


# --------------------------------------------------------------------------- usage


@dataclass(frozen=True)
class TokenUsage:
    """One request's tokens in ratecard's canonical, disjoint buckets.

    ``input`` is the uncached prompt tokens that were neither read from nor written
    to a cache; ``cache_read`` the prompt tokens read from a cache; ``cache_write``
    the prompt tokens written to a (5-minute) cache; ``cache_write_1h`` the prompt
    tokens written to a 1-hour cache; ``output`` every completion token, reasoning
    included; ``reasoning`` the part of ``output`` spent reasoning (billed once, as
    part of output). ``batch`` marks a batch-API request.
    """

    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    output: int = 0
    reasoning: int = 0
    batch: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "batch":
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidInput(f"usage {f.name}: {v!r} is not a whole number of tokens")
            if v < 0:
                raise InvalidInput(f"usage {f.name}: {v} is negative; token counts are >= 0")
        if self.reasoning > self.output:
            raise InvalidInput(
                f"usage: reasoning tokens ({self.reasoning}) exceed output tokens "
                f"({self.output}); reasoning is a part of output"
            )

    @property
    def prompt(self) -> int:
        """Every prompt token, cached or not: what long-context thresholds compare."""
        return self.input + self.cache_read + self.cache_write + self.cache_write_1h

    @property
    def total(self) -> int:
        return self.prompt + self.output

    def tokens(self, kind: str) -> int:
        """Tokens billed at ``kind``'s price (``output`` here excludes reasoning)."""
        if kind == "output":
            return self.output - self.reasoning
        value: int = getattr(self, kind)
        return value

    def as_dict(self) -> dict[str, int | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --------------------------------------------------------------------------- breakdown


@dataclass(frozen=True)
class CostLine:
    """One priced part of a request: ``tokens × unit_price = amount``.

    ``unit_price`` is USD per token; ``basis`` says where the price came from (the
    price list's field, or the default that produced it).
    """

    kind: str
    tokens: int
    unit_price: Decimal
    amount: Decimal
    basis: str

    @property
    def per_million(self) -> Decimal:
        return self.unit_price * MILLION


@dataclass(frozen=True)
class CostBreakdown:
    """The cost of one request and how it was computed."""

    model: str
    at: datetime
    usage: TokenUsage
    price: ModelPrice
    lines: tuple[CostLine, ...]
    total: Decimal
    long_context_above: int | None = None
    defaults: tuple[str, ...] = ()

    @property
    def batch(self) -> bool:
        return self.usage.batch

    def line(self, kind: str) -> CostLine | None:
        return next((ln for ln in self.lines if ln.kind == kind), None)

    def amount(self, kind: str) -> Decimal:
        ln = self.line(kind)
        return ln.amount if ln is not None else ZERO
