"""The catalog schema: pricing as code.

A catalog is one YAML file (or a folder of them) of meters, costs, plans and
credit packs. This module holds the pydantic models; :mod:`ratecard.catalog.loader`
reads files, merges folders and turns pydantic's errors into :class:`Problem` s
that name the file, the path inside it and the fix.

Amounts are parsed with :func:`ratecard.money.D` semantics: strings and integers
are exact; a YAML float is accepted only when it round-trips exactly (``0.5`` yes,
``0.1`` no: write ``"0.1"``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from ratecard.clock import parse_duration
from ratecard.errors import InvalidAmount, TimeInvalid
from ratecard.money import D


def _exact_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        # YAML gave a float: keep it only if its shortest repr is the exact binary value.
        exact = Decimal(value)
        if Decimal(repr(value)) != exact:
            raise ValueError(
                f"{value!r} is not exact as a binary float; quote it as a string: \"{value!r}\""
            )
        return exact
    try:
        return D(value)
    except InvalidAmount as e:
        raise ValueError(str(e)) from None


Amount = Annotated[Decimal, BeforeValidator(_exact_decimal)]


def _non_negative(v: Decimal | None, what: str = "value") -> Decimal | None:
    if v is not None and v < 0:
        raise ValueError(f"{what} must not be negative (got {v})")
    return v


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- meters

Aggregation = Literal["count", "sum", "max", "latest", "unique_count"]
Scalar = str | int | bool


class Weights(Strict):
    """Each event counts the weight of its ``property`` value (an unknown value is an error)."""

    property: str
    values: dict[str, Amount]

    @field_validator("values")
    @classmethod
    def _positive(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        if not v:
            raise ValueError("weights.values is empty; list each property value and its weight")
        for k, w in v.items():
            if w < 0:
                raise ValueError(f"weight for {k!r} must not be negative")
        return v


class Meter(Strict):
    """How usage events become a quantity.

    ``count`` counts events (or sums their ``weights``); ``sum``, ``max`` and
    ``latest`` read a numeric ``property`` (``sum`` multiplies by the weight when
    ``weights`` is set); ``unique_count`` counts distinct values of ``property``.
    ``filter`` keeps events whose property equals a value or is in a list;
    ``group_by`` splits the quantity by property values.
    """

    event: str
    aggregation: Aggregation
    property: str | None = None
    filter: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    group_by: list[str] = Field(default_factory=list)
    weights: Weights | None = None
    name: str | None = None
    unit: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Meter:
        if self.aggregation != "count" and not self.property:
            raise ValueError(
                f"aggregation {self.aggregation!r} needs a 'property' naming the event field "
                "to read"
            )
        if self.aggregation == "count" and self.property:
            raise ValueError("aggregation 'count' takes no 'property'; remove it or use sum")
        if self.weights and self.aggregation not in ("count", "sum"):
            raise ValueError("weights apply to count or sum meters only")
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by lists a property twice")
        return self


# --------------------------------------------------------------------------- costs


class LongContext(Strict):
    """Prices that apply to the whole request once the prompt is strictly above ``above``."""

    above: int
    input: Amount | None = None
    output: Amount | None = None
    cached_input: Amount | None = None
    cache_write: Amount | None = None


class ModelCost(Strict):
    """What one model costs you, per ``per`` tokens (default per million)."""

    input: Amount
    output: Amount
    cached_input: Amount | None = Field(default=None, alias="cached_input")
    cache_write: Amount | None = None
    cache_write_1h: Amount | None = None
    reasoning: Amount | None = None
    batch_input: Amount | None = None
    batch_output: Amount | None = None
    per_request: Amount | None = None
    per: int = 1_000_000
    long_context: LongContext | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    provider: str | None = None
    region: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelCost:
        for name in ("input", "output", "cached_input", "cache_write", "cache_write_1h",
                     "reasoning", "batch_input", "batch_output", "per_request"):
            _non_negative(getattr(self, name), name)
        if self.per <= 0:
            raise ValueError("per must be a positive number of tokens (1000000 for per million)")
        return self


def _cost_kind(v: Any) -> str:
    return "versions" if isinstance(v, list) else "price"


ModelCostEntry = Annotated[
    Annotated[ModelCost, Tag("price")] | Annotated[list[ModelCost], Tag("versions")],
    Discriminator(_cost_kind),
]


class Costs(Strict):
    models: dict[str, ModelCostEntry] = Field(default_factory=dict)
    meters: dict[str, Amount] = Field(default_factory=dict)
    source: str | None = None

    @field_validator("meters")
    @classmethod
    def _nonneg(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for k, c in v.items():
            if c < 0:
                raise ValueError(f"the cost of meter {k!r} must not be negative")
        return v


# --------------------------------------------------------------------------- charges

PriceModel = Literal[
    "flat", "per_unit", "package", "graduated", "volume", "percentage", "cost_plus"
]
PRICE_MODELS: tuple[str, ...] = (
    "flat", "per_unit", "package", "graduated", "volume", "percentage", "cost_plus"
)
Stream = Literal["subscription", "usage", "license", "marketplace", "services"]


class Tier(Strict):
    up_to: Amount | None = None
    unit_price: Amount = Decimal(0)
    flat_fee: Amount = Decimal(0)


# Parameters each price model accepts (besides the common ones).
MODEL_PARAMS: dict[str, set[str]] = {
    "flat": {"price", "once"},
    "per_unit": {"unit_price", "per"},
    "package": {"price", "size", "round"},
    "graduated": {"tiers", "per"},
    "volume": {"tiers", "per"},
    "percentage": {"rate", "fixed_fee", "min_per_event", "max_per_event", "free_events"},
    "cost_plus": {"markup", "include_cost"},
}
REQUIRED_PARAMS: dict[str, set[str]] = {
    "flat": {"price"},
    "per_unit": {"unit_price"},
    "package": {"price", "size"},
    "graduated": {"tiers"},
    "volume": {"tiers"},
    "percentage": {"rate"},
    "cost_plus": {"markup"},
}
COMMON = {"meter", "model", "included", "name", "description", "prices_by", "prices",
          "default", "stream", "timing"}


class PriceParams(Strict):
    """The parameters of a price model, as a charge or one group's override gives them."""

    unit_price: Amount | None = None
    per: Amount | None = None
    price: Amount | None = None
    size: Amount | None = None
    round: Literal["up", "down"] | None = None
    tiers: list[Tier] | None = None
    rate: Amount | None = None
    fixed_fee: Amount | None = None
    min_per_event: Amount | None = None
    max_per_event: Amount | None = None
    free_events: int | None = None
    markup: Amount | None = None
    included: Amount | None = None


class Charge(Strict):
    """One priced line of a plan: a meter and a price model with its parameters."""

    model: PriceModel
    meter: str | None = None
    name: str | None = None
    description: str | None = None
    included: Amount = Decimal(0)
    stream: Stream | None = None
    timing: Literal["advance", "arrears"] | None = None
    # price model parameters
    unit_price: Amount | None = None
    per: Amount | None = None
    price: Amount | None = None
    size: Amount | None = None
    round: Literal["up", "down"] | None = None
    tiers: list[Tier] | None = None
    rate: Amount | None = None
    fixed_fee: Amount | None = None
    min_per_event: Amount | None = None
    max_per_event: Amount | None = None
    free_events: int | None = None
    markup: Amount | None = None
    include_cost: bool = True
    once: bool = False
    # dimension pricing
    prices_by: str | None = None
    prices: dict[str, PriceParams] | None = None
    default: PriceParams | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" in data and data["model"] not in PRICE_MODELS:
            raise ValueError(
                f"unknown price model {data['model']!r}; use one of {', '.join(PRICE_MODELS)}"
            )
        if isinstance(data, dict) and "model" in data:
            allowed = COMMON | MODEL_PARAMS[data["model"]]
            for key in data:
                if key not in allowed and key in Charge.model_fields:
                    raise ValueError(
                        f"{key!r} does not apply to price model {data['model']!r}; it takes "
                        f"{', '.join(sorted(MODEL_PARAMS[data['model']]))}"
                    )
        return data

    @model_validator(mode="after")
    def _check(self) -> Charge:
        if self.model != "flat" and not self.meter:
            raise ValueError(f"a {self.model} charge needs a 'meter'")
        if self.included < 0:
            raise ValueError("included must not be negative")
        if self.included and self.model in ("flat", "percentage", "cost_plus"):
            hint = "use free_events" if self.model == "percentage" else "remove it"
            raise ValueError(f"'included' does not apply to a {self.model} charge; {hint}")
        if self.prices_by is None:
            if self.prices is not None or self.default is not None:
                raise ValueError("'prices' and 'default' need 'prices_by' (the group property)")
            missing = [p for p in REQUIRED_PARAMS[self.model] if getattr(self, p) is None]
            if missing:
                raise ValueError(
                    f"price model {self.model!r} needs {', '.join(sorted(missing))}"
                )
            check_params(self.model, self)
        else:
            if self.model in ("flat", "percentage"):
                raise ValueError(f"prices_by does not apply to a {self.model} charge")
            if not self.prices and not self.default:
                raise ValueError("prices_by needs 'prices' per group value (and/or a 'default')")
            for group, params in (self.prices or {}).items():
                merged = merge_params(self, params)
                _check_group(self.model, merged, f"prices.{group}")
            if self.default is not None:
                _check_group(self.model, merge_params(self, self.default), "default")
        return self

    @property
    def label(self) -> str:
        return self.name or (self.meter or "flat fee")

    @property
    def revenue_stream(self) -> str:
        if self.stream:
            return self.stream
        if self.model == "flat":
            return "license" if self.once else "subscription"
        if self.model == "percentage":
            return "marketplace"
        return "usage"

    @property
    def in_advance(self) -> bool:
        if self.timing:
            return self.timing == "advance"
        return self.model == "flat"


def merge_params(charge: Charge, override: PriceParams) -> Charge:
    """The charge with one group's parameters laid over it (a plain copy, no re-validation)."""
    updates = {k: v for k, v in override.model_dump(exclude_none=True).items()}
    if "tiers" in updates and override.tiers is not None:
        updates["tiers"] = override.tiers
    return charge.model_copy(update=updates)


def _check_group(model: str, merged: Charge, where: str) -> None:
    missing = [p for p in REQUIRED_PARAMS[model] if getattr(merged, p) is None]
    if missing:
        raise ValueError(f"{where}: price model {model!r} needs {', '.join(sorted(missing))}")
    try:
        check_params(model, merged)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def check_params(model: str, c: Charge) -> None:
    """Model-specific rules that pydantic types cannot express."""
    for name in ("unit_price", "price", "rate", "fixed_fee", "min_per_event", "max_per_event",
                 "markup"):
        _non_negative(getattr(c, name), name)
    if c.per is not None and c.per <= 0:
        raise ValueError("per must be positive (1000000 to price per million)")
    if c.size is not None and c.size <= 0:
        raise ValueError("size must be positive (the units in one package)")
    if c.free_events is not None and c.free_events < 0:
        raise ValueError("free_events must not be negative")
    if (c.min_per_event is not None and c.max_per_event is not None
            and c.min_per_event > c.max_per_event):
        raise ValueError("min_per_event is above max_per_event")
    if model in ("graduated", "volume"):
        tiers = c.tiers or []
        if not tiers:
            raise ValueError("tiers is empty; give at least one tier with up_to: null")
        prev: Decimal | None = None
        for i, t in enumerate(tiers):
            last = i == len(tiers) - 1
            _non_negative(t.unit_price, f"tiers[{i}].unit_price")
            _non_negative(t.flat_fee, f"tiers[{i}].flat_fee")
            if last and t.up_to is not None:
                raise ValueError(
                    f"tiers[{i}] is the last tier and must be unbounded: set up_to: null"
                )
            if not last and t.up_to is None:
                raise ValueError(f"tiers[{i}]: only the last tier may have up_to: null")
            if t.up_to is not None:
                if t.up_to <= 0:
                    raise ValueError(f"tiers[{i}].up_to must be positive")
                if prev is not None and t.up_to <= prev:
                    raise ValueError(
                        f"tiers[{i}].up_to ({t.up_to}) must be greater than the tier before "
                        f"({prev}); up_to values must increase"
                    )
                prev = t.up_to


# --------------------------------------------------------------------------- entitlements

WINDOW_CALENDAR = ("day", "week", "month")


class Limit(Strict):
    limit: Amount
    window: str = "month"

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if v in WINDOW_CALENDAR:
            return v
        try:
            parse_duration(v)
        except TimeInvalid as e:
            raise ValueError(
                f"window {v!r}: use a calendar window (day, week, month) or a rolling one "
                f"like 5h or 7d ({e})"
            ) from None
        return v

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError("limit must not be negative")
        return v


class Metered(Strict):
    """A metered entitlement: every window's limit must allow the usage."""

    meter: str
    limits: list[Limit] = Field(default_factory=list)
    limit: Amount | None = None
    window: str | None = None
    hard: bool = True
    overage_unit_price: Amount | None = None

    @model_validator(mode="after")
    def _check(self) -> Metered:
        if self.limit is not None:
            if self.limits:
                raise ValueError("give either 'limit' (with 'window') or 'limits', not both")
            object.__setattr__(
                self, "limits", [Limit(limit=self.limit, window=self.window or "month")]
            )
        if not self.limits:
            raise ValueError("a metered entitlement needs 'limits' (or 'limit' and 'window')")
        return self


def _entitlement_kind(v: Any) -> str:
    if isinstance(v, dict | Metered):
        return "metered"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, list):
        return "list"
    if isinstance(v, int):
        return "number"
    return "text"


EntitlementValue = Annotated[
    Annotated[Metered, Tag("metered")]
    | Annotated[bool, Tag("boolean")]
    | Annotated[list[str | int], Tag("list")]
    | Annotated[int, Tag("number")]
    | Annotated[str, Tag("text")],
    Discriminator(_entitlement_kind),
]


# --------------------------------------------------------------------------- credits


class Rollover(Strict):
    min: Amount = Decimal(0)
    max: Amount | None = None


class PlanCredits(Strict):
    """Credits a plan grants every period and the meters that burn them."""

    grant: Amount
    per: Literal["month", "quarter", "year"] = "month"
    rollover: Rollover | None = None
    expires_after: str | None = None
    burn: dict[str, Amount] = Field(default_factory=dict)
    on_exhausted: Literal["overage", "block"] = "overage"
    overage_unit_price: Amount | None = None
    priority: int = 10

    @model_validator(mode="after")
    def _check(self) -> PlanCredits:
        if self.grant < 0:
            raise ValueError("grant must not be negative")
        if self.on_exhausted == "overage" and self.burn and self.overage_unit_price is None:
            raise ValueError(
                "on_exhausted: overage needs overage_unit_price (money per credit), "
                "or set on_exhausted: block"
            )
        if self.expires_after is not None:
            parse_duration(self.expires_after)
        return self


class CreditPack(Strict):
    """A prepaid pack: pay ``price``, receive ``credits`` (+ ``bonus``)."""

    price: Amount
    credits: Amount
    bonus: Amount = Decimal(0)
    expires_after: str | None = None
    bonus_expires_after: str | None = None
    name: str | None = None


class CatalogCredits(Strict):
    unit: str = "credit"
    packs: dict[str, CreditPack] = Field(default_factory=dict)


# --------------------------------------------------------------------------- plans

Archetype = Literal["copilot", "agent", "service", "api"]


class Seats(Strict):
    unit_price: Amount
    included: int = 0
    minimum: int = 0


class Plan(Strict):
    name: str | None = None
    description: str | None = None
    archetype: Archetype | None = None
    audience: Literal["developer", "business"] | None = None
    interval: Literal["month", "quarter", "year"] = "month"
    usage_interval: Literal["month", "quarter", "year"] | None = None
    currency: str | None = None
    base_fee: Amount = Decimal(0)
    seats: Seats | None = None
    charges: list[Charge] = Field(default_factory=list)
    minimum: Amount = Decimal(0)
    entitlements: dict[str, EntitlementValue] = Field(default_factory=dict)
    annual_discount: Amount | None = None
    quarterly_discount: Amount | None = None
    credits: PlanCredits | None = None
    min_margin: Amount | None = None
    byok: bool = False
    trial_days: int = 0
    self_serve: bool | None = None
    free: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> Plan:
        if self.base_fee < 0:
            raise ValueError("base_fee must not be negative")
        if self.minimum < 0:
            raise ValueError("minimum must not be negative")
        for name in ("annual_discount", "quarterly_discount", "min_margin"):
            v = getattr(self, name)
            if v is not None and not (0 <= v < 1):
                raise ValueError(f"{name} is a fraction between 0 and 1 (0.15 for 15%)")
        if self.trial_days < 0:
            raise ValueError("trial_days must not be negative")
        return self

    @property
    def display_name(self) -> str:
        return self.name or ""


class Catalog(Strict):
    currency: str = "USD"
    name: str | None = None
    meters: dict[str, Meter] = Field(default_factory=dict)
    costs: Costs = Field(default_factory=Costs)
    plans: dict[str, Plan] = Field(default_factory=dict)
    credits: CatalogCredits = Field(default_factory=CatalogCredits)

    def plan(self, code: str) -> Plan:
        from ratecard.errors import NotFound

        try:
            return self.plans[code]
        except KeyError:
            known = ", ".join(sorted(self.plans)) or "none"
            raise NotFound(f"no plan {code!r} in the catalog; plans: {known}") from None

    def plan_currency(self, code: str) -> str:
        return self.plan(code).currency or self.currency
