"""The advisor's inputs: the playbook's discovery questions as one validated record.

A questionnaire is a YAML or JSON mapping (or CLI flags, which override it)::

    product_type: agent            # copilot | agent | service | api (or an alias)
    buyer: business                # developer | business | enterprise | smb
    outcome_measurable: true       # can the customer measure a business outcome?
    outcome_attributable: true     # ... attributable to this product alone?
    discrete_tasks: true           # are there discrete, countable tasks?
    human_equivalent_cost: "15"    # what one unit of the work costs done by a human
    cost_per_task: "0.12"          # what one unit costs you to serve (or from a workspace)
    expected_volume: 1000          # units a typical (Pro) customer uses per month
    sales_motion: sales_assisted   # self_serve | sales_assisted | enterprise
    byok_requested: false          # do buyers ask to bring their own model keys?

Optional: ``currency``, ``name``, ``unit`` (the noun billed: ``resolution``), ``event``
(the usage event type), ``outcome_filter`` (the properties that define success),
``multiple_task_types``, ``task_weights``, the BYOK blockers (``data_sensitive``,
``fine_tuned``, ``needs_model_markup``, ``quality_guarantee``, ``multi_model_routing``),
and the tier knobs (``free_tier``, ``platform_fee_share``, ``allocation_multiple``,
``overage_multiple``, ``annual_discounts``, ``volume_discount``, ``seats``).

Amounts are strings or integers; a YAML float is accepted only when exact (as in
catalogs), a JSON number is read as written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

import yaml

from ratecard.advisor.archetypes import archetype as find_archetype
from ratecard.advisor.pricing import buyer as parse_buyer
from ratecard.advisor.pricing import sales_motion as parse_motion
from ratecard.errors import InvalidAmount, InvalidInput
from ratecard.money import D, is_known_currency


@dataclass(frozen=True)
class Answers:
    """Validated answers. ``None`` means "not answered"."""

    product_type: str
    buyer: str
    outcome_measurable: bool | None = None
    outcome_attributable: bool | None = None
    discrete_tasks: bool | None = None
    human_equivalent_cost: Decimal | None = None
    cost_per_task: Decimal | None = None
    expected_volume: Decimal | None = None
    sales_motion: str = "sales_assisted"
    byok_requested: bool = False
    currency: str = "USD"
    name: str | None = None
    unit: str | None = None
    event: str | None = None
    outcome_filter: Mapping[str, str] | None = None
    multiple_task_types: bool = False
    task_weights: Mapping[str, Decimal] | None = None
    data_sensitive: bool = False
    fine_tuned: bool = False
    needs_model_markup: bool = False
    quality_guarantee: bool = False
    multi_model_routing: bool = False
    free_tier: bool = False
    platform_fee_share: Decimal | None = None
    allocation_multiple: int | None = None
    overage_multiple: Decimal | None = None
    annual_discounts: tuple[Decimal, Decimal, Decimal] | None = None
    volume_discount: Decimal | None = None
    seats: tuple[int, int, int] | None = None
    cost_source: str | None = field(default=None, compare=False)

    @property
    def technical_buyer(self) -> bool:
        return self.buyer == "developer"

    @property
    def audience(self) -> str:
        """The catalog ``audience`` for this buyer (only developers are technical)."""
        return "developer" if self.technical_buyer else "business"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, Mapping):
                v = dict(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


KNOWN = tuple(f.name for f in fields(Answers) if f.name != "cost_source")
BOOLS = {"outcome_measurable", "outcome_attributable", "discrete_tasks", "byok_requested",
         "multiple_task_types", "data_sensitive", "fine_tuned", "needs_model_markup",
         "quality_guarantee", "multi_model_routing", "free_tier"}
AMOUNTS = {"human_equivalent_cost", "cost_per_task", "expected_volume", "platform_fee_share",
           "overage_multiple", "volume_discount"}
# Other spellings a questionnaire may use.
ALIASES = {
    "product": "product_type", "type": "product_type", "archetype": "product_type",
    "audience": "buyer", "buyer_persona": "buyer",
    "human_cost": "human_equivalent_cost", "human_equivalent": "human_equivalent_cost",
    "cost": "cost_per_task", "unit_cost": "cost_per_task",
    "volume": "expected_volume", "motion": "sales_motion",
    "byok": "byok_requested", "buyers_ask_byok": "byok_requested",
    "outcome_attribution": "outcome_attributable", "tasks_discrete": "discrete_tasks",
}


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "y", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "n", "0"):
        return False
    raise InvalidInput(f"{name}: {value!r} is not yes/no; write true or false")


def _amount(value: Any, name: str) -> Decimal:
    if isinstance(value, float):
        exact = Decimal(value)
        if Decimal(repr(value)) != exact:
            raise InvalidInput(f"{name}: {value!r} is not exact as a binary float; quote it "
                               f"as a string: \"{value!r}\"")
        return exact
    try:
        return D(value)
    except InvalidAmount as e:
        raise InvalidInput(f"{name}: {e}") from None


def _positive(value: Decimal, name: str, *, allow_zero: bool = False) -> Decimal:
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInput(f"{name} must be {'zero or ' if allow_zero else ''}positive "
                           f"(got {value})")
    return value


def normalise_keys(data: Mapping[str, Any], *, source: str = "questionnaire") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        k = str(key).strip().lower().replace("-", "_").replace(" ", "_")
        k = ALIASES.get(k, k)
        if k not in KNOWN:
            raise InvalidInput(
                f"{source}: unknown question {key!r}; known: {', '.join(KNOWN)}"
            )
        if k in out:
            raise InvalidInput(f"{source}: {key!r} answers {k!r} a second time; keep one")
        out[k] = value
    return out


def parse_answers(
    data: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    source: str = "questionnaire",
) -> Answers:
    """Validate questionnaire answers; ``overrides`` (CLI flags, already keyed by the
    canonical names, ``None`` meaning "not given") win over ``data``."""
    raw = normalise_keys(data, source=source)
    for k, v in (overrides or {}).items():
        if v is not None:
            raw[k] = v
    if "product_type" not in raw or raw["product_type"] in (None, ""):
        raise InvalidInput(
            f"{source}: product_type is required (copilot, agent, service or api)")
    arch = find_archetype(str(raw["product_type"]))
    values: dict[str, Any] = {"product_type": arch.code}
    values["buyer"] = parse_buyer(str(raw.get("buyer") or (
        "developer" if arch.code == "api" else "business")))
    default_motion = "self_serve" if arch.code in ("api", "copilot") else "sales_assisted"
    values["sales_motion"] = parse_motion(str(raw.get("sales_motion") or default_motion))
    for k in BOOLS:
        if raw.get(k) is not None:
            values[k] = _bool(raw[k], f"{source}.{k}")
    for k in AMOUNTS:
        if raw.get(k) is not None:
            values[k] = _amount(raw[k], f"{source}.{k}")
    for k in ("human_equivalent_cost", "expected_volume"):
        if k in values:
            _positive(values[k], f"{source}.{k}")
    if "cost_per_task" in values:
        _positive(values["cost_per_task"], f"{source}.cost_per_task", allow_zero=True)
    if raw.get("currency"):
        cur = str(raw["currency"]).upper()
        if not is_known_currency(cur):
            raise InvalidInput(f"{source}.currency: {cur!r} is not an ISO 4217 code")
        values["currency"] = cur
    for k in ("name", "unit", "event"):
        if raw.get(k):
            values[k] = str(raw[k]).strip()
    if raw.get("outcome_filter") is not None:
        of = raw["outcome_filter"]
        if not isinstance(of, Mapping) or not of:
            raise InvalidInput(f"{source}.outcome_filter: give the event properties that "
                               "define success, e.g. {outcome: resolved}")
        values["outcome_filter"] = {str(a): str(b) if not isinstance(b, bool) else b
                                    for a, b in of.items()}
    if raw.get("task_weights") is not None:
        tw = raw["task_weights"]
        if not isinstance(tw, Mapping) or not tw:
            raise InvalidInput(f"{source}.task_weights: give credits per task kind, e.g. "
                               "{simple: 1, medium: 3, complex: 10}")
        values["task_weights"] = {str(a): _positive(_amount(b, f"{source}.task_weights.{a}"),
                                                    f"{source}.task_weights.{a}")
                                  for a, b in tw.items()}
        values["multiple_task_types"] = True
    if raw.get("allocation_multiple") is not None:
        am = raw["allocation_multiple"]
        if isinstance(am, bool) or not isinstance(am, int | str) or not str(am).isdigit():
            raise InvalidInput(f"{source}.allocation_multiple: a whole number 3, 4 or 5")
        values["allocation_multiple"] = int(am)
    if raw.get("annual_discounts") is not None:
        ad = raw["annual_discounts"]
        if not isinstance(ad, list | tuple):
            ad = [ad, ad, ad]
        if len(ad) != 3:
            raise InvalidInput(f"{source}.annual_discounts: three values (Starter, Pro, "
                               "Enterprise), or one for all")
        values["annual_discounts"] = tuple(_amount(x, f"{source}.annual_discounts")
                                           for x in ad)
    if raw.get("seats") is not None:
        st = raw["seats"]
        if (not isinstance(st, list | tuple) or len(st) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in st)):
            raise InvalidInput(f"{source}.seats: three whole seat counts, e.g. [1, 5, 50]")
        values["seats"] = tuple(st)
    return Answers(**values)


def parse_questionnaire_text(text: str, *, source: str = "questionnaire") -> dict[str, Any]:
    """The mapping in a YAML or JSON questionnaire (JSON is valid YAML, but is read as
    JSON first so its errors are JSON's)."""
    stripped = text.lstrip()
    try:
        data = (json.loads(text, parse_float=Decimal) if stripped.startswith("{")
                else yaml.safe_load(text))
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise InvalidInput(f"{source}: not valid YAML or JSON: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{source}: a questionnaire is a mapping of question: answer")
    return dict(data)
