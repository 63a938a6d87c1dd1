"""Price files: the LiteLLM price map, ratecard's own price book file, catalog ``costs:``.

* **LiteLLM** (``model_prices_and_context_window.json``): USD per token.
  :func:`import_litellm` reads it with ``parse_float=Decimal``, so ``3e-07`` or
  ``"3e-7"`` become exactly ``0.0000003``, never a binary float. Fields read:
  ``input_cost_per_token``, ``output_cost_per_token``, ``cache_read_input_token_cost``
  (else ``input_cost_per_token_cache_hit``), ``cache_creation_input_token_cost``,
  ``cache_creation_input_token_cost_above_1hr`` (1-hour cache writes),
  ``output_cost_per_reasoning_token``, ``input_cost_per_request``, each with a
  ``_batches`` variant and ``_above_<N>k_tokens`` long-context variants, and
  ``tiered_pricing`` ranges. Priority, flex and other service tiers, audio, image
  and per-second prices are not imported; entries without a per-token input price
  (image, video, search models) are skipped and reported.
* **ratecard price book** (``{"format": "ratecard-pricebook", ...}``): what
  ``ratecard costs import`` stores in a workspace, prices in USD per million tokens
  as decimal strings.
* **catalog costs** (YAML or JSON with ``models:`` in the catalog ``costs:`` form,
  or a whole catalog): prices per ``per`` tokens (default per million).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ratecard.catalog.schema import Costs, ModelCost
from ratecard.clock import iso, parse_time
from ratecard.costs.model import (
    TOKEN_KINDS,
    LongContextTier,
    ModelPrice,
    PriceBook,
    PriceBookInvalid,
    TokenRates,
    dec_str,
)
from ratecard.errors import InvalidAmount, InvalidInput, NotFound, TimeInvalid
from ratecard.money import D

PRICEBOOK_FORMAT = "ratecard-pricebook"
PRICEBOOK_VERSION = 1
LITELLM_SOURCE = "https://github.com/BerriAI/litellm (model_prices_and_context_window.json)"

# LiteLLM field (without suffixes) → ratecard token kind
_LITELLM_KINDS: dict[str, str] = {
    "input_cost_per_token": "input",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "output_cost_per_token": "output",
    "output_cost_per_reasoning_token": "reasoning",
}
_FIELD = "|".join(sorted(map(re.escape, _LITELLM_KINDS), key=len, reverse=True))
_PRICE_KEY = re.compile(
    rf"^(?P<field>{_FIELD})(?:_above_(?P<k>\d+(?:\.\d+)?)k_tokens)?(?P<batch>_batches)?$"
)


@dataclass(frozen=True)
class ImportResult:
    """A price book read from a file, what format it was, and what was left out."""

    book: PriceBook
    format: str
    skipped: tuple[tuple[str, str], ...] = ()
    ignored_fields: Mapping[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _price(value: Any, where: str) -> Decimal:
    if isinstance(value, float):
        raise InvalidAmount(
            f"{where}: {value!r} is a binary float; read the file with "
            "json.load(..., parse_float=Decimal) or pass prices as strings"
        )
    try:
        result = D(value)
    except InvalidAmount as e:
        raise InvalidAmount(f"{where}: {e}") from None
    if result < 0:
        raise InvalidAmount(f"{where}: price {dec_str(result)} is negative; prices must be >= 0")
    return result


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"{path}: no such price file") from None
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read the price file ({e.strerror})") from None
    return _parse_text(text, path)


def _parse_text(text: str, path: Path) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise PriceBookInvalid(f"{path}: not valid YAML ({e})") from None
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as e:
        if path.suffix.lower() == ".json":
            raise PriceBookInvalid(
                f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise PriceBookInvalid(
            f"{path}: neither JSON nor YAML; give a LiteLLM price map, a ratecard price book "
            "or a catalog costs file"
        ) from None


def _problems(where: str, problems: list[str]) -> PriceBookInvalid:
    head = f"{where}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"
    shown = problems[:20]
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return PriceBookInvalid(head + ":\n" + "\n".join(f"  {p}" for p in shown) + more)


# --------------------------------------------------------------------------- LiteLLM


def is_litellm_map(data: Any) -> bool:
    """A mapping of model name → object carrying LiteLLM price or provider fields."""
    if not isinstance(data, Mapping) or not data:
        return False
    if "format" in data or "models" in data or "costs" in data:
        return False
    entries = [v for k, v in data.items() if k != "sample_spec"]
    if not entries or not all(isinstance(v, Mapping) for v in entries):
        return False
    return any("litellm_provider" in v or any(str(k).endswith(("_cost_per_token", "_token_cost"))
                                             for k in v) for v in entries)


def litellm_entry(name: str, entry: Mapping[str, Any], *,
                  valid_from: datetime | None = None, source: str = "litellm",
                  ignored: dict[str, int] | None = None) -> ModelPrice | None:
    """One LiteLLM entry as a :class:`ModelPrice` (``None``: not priced per token)."""
    base: dict[str, Decimal] = {}
    batch: dict[str, Decimal] = {}
    tiers: dict[int, tuple[dict[str, Decimal], dict[str, Decimal]]] = {}
    for key, value in entry.items():
        m = _PRICE_KEY.match(str(key))
        if m is None:
            if ignored is not None and "cost" in str(key) and value is not None:
                ignored[str(key)] = ignored.get(str(key), 0) + 1
            continue
        if value is None:
            continue
        kind = _LITELLM_KINDS[m.group("field")]
        amount = _price(value, f"{name}.{key}")
        if m.group("k") is not None:
            above = Decimal(m.group("k")) * 1000
            if above != above.to_integral_value():
                raise PriceBookInvalid(f"{name}.{key}: threshold is not a whole number of tokens")
            t_std, t_bat = tiers.setdefault(int(above), ({}, {}))
            (t_bat if m.group("batch") else t_std)[kind] = amount
        else:
            (batch if m.group("batch") else base)[kind] = amount
    if "cache_read" not in base and entry.get("input_cost_per_token_cache_hit") is not None:
        base["cache_read"] = _price(entry["input_cost_per_token_cache_hit"],
                                    f"{name}.input_cost_per_token_cache_hit")
    for i, rng in enumerate(entry.get("tiered_pricing") or []):
        where = f"{name}.tiered_pricing[{i}]"
        if not isinstance(rng, Mapping) or not isinstance(rng.get("range"), list) or not rng[
                "range"]:
            # tiers over something other than prompt tokens (results per query, ...)
            if ignored is not None:
                ignored["tiered_pricing (not by tokens)"] = ignored.get(
                    "tiered_pricing (not by tokens)", 0) + 1
            break
        try:
            lo = D(rng["range"][0])
        except InvalidAmount as e:
            raise PriceBookInvalid(f"{where}.range: {e}") from None
        rates = {kind: _price(rng[f], f"{where}.{f}") for f, kind in _LITELLM_KINDS.items()
                 if rng.get(f) is not None}
        if lo == 0:
            for kind, amount in rates.items():
                base.setdefault(kind, amount)
        else:
            t_std, _ = tiers.setdefault(int(lo), ({}, {}))
            for kind, amount in rates.items():
                t_std.setdefault(kind, amount)
    per_request = None
    if entry.get("input_cost_per_request") is not None:
        per_request = _price(entry["input_cost_per_request"], f"{name}.input_cost_per_request")
    if "input" not in base:
        return None
    provider = entry.get("litellm_provider")
    return ModelPrice(
        model=name, rates=TokenRates(**base), batch=TokenRates(**batch),
        long_context=tuple(LongContextTier(above, TokenRates(**s), TokenRates(**b))
                           for above, (s, b) in sorted(tiers.items())),
        per_request=per_request, valid_from=valid_from,
        provider=str(provider) if provider else None, source=source,
    )


def import_litellm(path_or_dict: str | Path | Mapping[str, Any], *,
                   valid_from: datetime | None = None) -> PriceBook:
    """A LiteLLM price map (a file path or an already-parsed mapping) as a :class:`PriceBook`.

    Parse files with ``parse_float=Decimal``; a mapping holding binary floats is
    refused (its prices would not be the numbers written).
    """
    return import_litellm_report(path_or_dict, valid_from=valid_from).book


def import_litellm_report(path_or_dict: str | Path | Mapping[str, Any], *,
                          valid_from: datetime | None = None,
                          where: str | None = None) -> ImportResult:
    """Like :func:`import_litellm`, also listing the entries skipped and fields ignored."""
    if isinstance(path_or_dict, str | Path):
        path = Path(path_or_dict)
        data = _read_json(path)
        where = where or str(path)
    else:
        data, where = path_or_dict, where or "LiteLLM price map"
    label = f"litellm: {Path(where).name}" if where != "LiteLLM price map" else "litellm"
    if not is_litellm_map(data):
        raise PriceBookInvalid(f"{where}: not a LiteLLM price map (an object of model name → "
                               "{input_cost_per_token, output_cost_per_token, ...})")
    prices: list[ModelPrice] = []
    skipped: list[tuple[str, str]] = []
    ignored: dict[str, int] = {}
    problems: list[str] = []
    for name, entry in data.items():
        if name == "sample_spec":
            continue
        try:
            p = litellm_entry(str(name), entry, valid_from=valid_from, source=label,
                              ignored=ignored)
        except (InvalidInput, TimeInvalid) as e:
            problems.append(str(e))
            continue
        if p is None:
            mode = entry.get("mode") or "unknown mode"
            skipped.append((str(name), f"no per-token input price ({mode})"))
        else:
            prices.append(p)
    if problems:
        raise _problems(where, problems)
    book = PriceBook.build(prices, source=f"litellm: {where}")
    return ImportResult(book, "litellm", tuple(skipped), ignored)


# --------------------------------------------------------------------------- catalog costs


def _per_token(value: Decimal | None, per: int) -> Decimal | None:
    return None if value is None else value / Decimal(per)


def _time(text: str | None, where: str) -> datetime | None:
    if text is None:
        return None
    return parse_time(str(text), field=where, default_tz="UTC")


def model_cost_price(model: str, mc: ModelCost, *, source: str = "catalog") -> ModelPrice:
    """A catalog ``costs.models`` entry (prices per ``per`` tokens) as a :class:`ModelPrice`."""
    per = mc.per
    rates = TokenRates(
        input=_per_token(mc.input, per), cache_read=_per_token(mc.cached_input, per),
        cache_write=_per_token(mc.cache_write, per),
        cache_write_1h=_per_token(mc.cache_write_1h, per), output=_per_token(mc.output, per),
        reasoning=_per_token(mc.reasoning, per),
    )
    batch = TokenRates(input=_per_token(mc.batch_input, per),
                       output=_per_token(mc.batch_output, per))
    tiers: tuple[LongContextTier, ...] = ()
    if mc.long_context is not None:
        lc = mc.long_context
        tiers = (LongContextTier(lc.above, TokenRates(
            input=_per_token(lc.input, per), output=_per_token(lc.output, per),
            cache_read=_per_token(lc.cached_input, per),
            cache_write=_per_token(lc.cache_write, per))),)
    where = f"costs.models.{model}"
    return ModelPrice(
        model=model, rates=rates, batch=batch, long_context=tiers,
        per_request=mc.per_request, valid_from=_time(mc.valid_from, f"{where}.valid_from"),
        valid_to=_time(mc.valid_to, f"{where}.valid_to"), provider=mc.provider,
        region=mc.region, source=source,
    )


def costs_prices(costs: Costs, *, source: str = "catalog") -> list[ModelPrice]:
    out: list[ModelPrice] = []
    for model, entry in costs.models.items():
        versions = entry if isinstance(entry, list) else [entry]
        out += [model_cost_price(model, mc, source=source) for mc in versions]
    return out


def merge_catalog_costs(book: PriceBook, costs: Costs) -> PriceBook:
    """``book`` with a catalog's ``costs:`` laid over it.

    A model the catalog prices replaces every version the book holds for that
    model name (all providers, regions and dates); meter unit costs are added or
    replaced per meter.
    """
    ours = costs_prices(costs, source=costs.source or "catalog")
    named = {p.model for p in ours}
    kept = [p for p in book.all_prices() if p.model not in named]
    meters = {**book.meter_costs, **costs.meters}
    source = book.source + (" + catalog costs" if (ours or costs.meters) else "")
    return PriceBook.build([*kept, *ours], meter_costs=meters, source=source)


# --------------------------------------------------------------------------- ratecard file


def _rates_out(r: TokenRates) -> dict[str, str]:
    return {k: dec_str(v.scaleb(6)) for k, v in r.given().items()}


def _rates_in(obj: Mapping[str, Any], where: str) -> TokenRates:
    values = {}
    for k in TOKEN_KINDS:
        if obj.get(k) is not None:
            values[k] = _price(obj[k], f"{where}.{k}").scaleb(-6)
    return TokenRates(**values)


def dump_pricebook(book: PriceBook) -> dict[str, Any]:
    """``book`` as ratecard's price book document (USD per million tokens, strings)."""
    models: dict[str, list[dict[str, Any]]] = {}
    for p in book.all_prices():
        doc: dict[str, Any] = {}
        if p.provider:
            doc["provider"] = p.provider
        if p.region:
            doc["region"] = p.region
        if p.valid_from:
            doc["valid_from"] = iso(p.valid_from)
        if p.valid_to:
            doc["valid_to"] = iso(p.valid_to)
        doc.update(_rates_out(p.rates))
        if not p.batch.empty:
            doc["batch"] = _rates_out(p.batch)
        if p.long_context:
            doc["long_context"] = [
                {"above": t.above, **_rates_out(t.rates),
                 **({"batch": _rates_out(t.batch)} if not t.batch.empty else {})}
                for t in p.long_context
            ]
        if p.per_request is not None:
            doc["per_request"] = dec_str(p.per_request)
        if p.source and p.source != book.source:
            doc["source"] = p.source
        models.setdefault(p.model, []).append(doc)
    return {
        "format": PRICEBOOK_FORMAT, "version": PRICEBOOK_VERSION, "source": book.source,
        "unit": "USD per million tokens (per_request: USD per request)",
        "meters": {m: dec_str(c) for m, c in sorted(book.meter_costs.items())},
        "models": models,
    }


def write_pricebook(book: PriceBook, path: Path) -> None:
    """Write ``book`` as one model per line (readable diffs), atomically."""
    doc = dump_pricebook(book)
    models = doc.pop("models")
    head = json.dumps(doc, ensure_ascii=False)[:-1]
    lines = [f"  {json.dumps(m, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
             for m, v in models.items()]
    text = head + ', "models": {\n' + ",\n".join(lines) + "\n}}\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def load_pricebook(data: Mapping[str, Any], *, where: str = "price book") -> PriceBook:
    """ratecard's price book document (see :func:`dump_pricebook`) as a :class:`PriceBook`."""
    if data.get("format") != PRICEBOOK_FORMAT:
        raise PriceBookInvalid(f"{where}: not a ratecard price book (format is "
                               f"{data.get('format')!r})")
    if data.get("version") != PRICEBOOK_VERSION:
        raise PriceBookInvalid(f"{where}: price book version {data.get('version')!r} is not "
                               f"supported (this ratecard reads version {PRICEBOOK_VERSION})")
    models = data.get("models")
    if not isinstance(models, Mapping):
        raise PriceBookInvalid(f"{where}: 'models' must be an object of model → [prices]")
    prices: list[ModelPrice] = []
    problems: list[str] = []
    source = str(data.get("source") or where)
    for model, versions in models.items():
        if not isinstance(versions, list):
            versions = [versions]
        for i, doc in enumerate(versions):
            at = f"models.{model}[{i}]"
            try:
                prices.append(_version_in(str(model), doc, at, source))
            except (InvalidInput, TimeInvalid) as e:
                problems.append(str(e))
    if problems:
        raise _problems(where, problems)
    meters_doc = data.get("meters") or {}
    meters = {str(m): _price(c, f"meters.{m}") for m, c in meters_doc.items()}
    return PriceBook.build(prices, meter_costs=meters, source=source)


def _version_in(model: str, doc: Any, at: str, default_source: str = "") -> ModelPrice:
    if not isinstance(doc, Mapping):
        raise PriceBookInvalid(f"{at}: expected an object of prices")
    known = {*TOKEN_KINDS, "provider", "region", "valid_from", "valid_to", "batch",
             "long_context", "per_request", "source"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise PriceBookInvalid(f"{at}: unknown field {unknown[0]!r}; use "
                               f"{', '.join(sorted(known))}")
    tiers = []
    for j, t in enumerate(doc.get("long_context") or []):
        tw = f"{at}.long_context[{j}]"
        if not isinstance(t, Mapping) or not isinstance(t.get("above"), int):
            raise PriceBookInvalid(f"{tw}: needs 'above' (a whole number of prompt tokens)")
        tiers.append(LongContextTier(t["above"], _rates_in(t, tw),
                                     _rates_in(t.get("batch") or {}, f"{tw}.batch")))
    return ModelPrice(
        model=model, rates=_rates_in(doc, at), batch=_rates_in(doc.get("batch") or {},
                                                               f"{at}.batch"),
        long_context=tuple(tiers),
        per_request=(_price(doc["per_request"], f"{at}.per_request")
                     if doc.get("per_request") is not None else None),
        valid_from=_time(doc.get("valid_from"), f"{at}.valid_from"),
        valid_to=_time(doc.get("valid_to"), f"{at}.valid_to"),
        provider=doc.get("provider"), region=doc.get("region"),
        source=str(doc.get("source") or default_source),
    )


# --------------------------------------------------------------------------- any file


def _catalog_costs(data: Mapping[str, Any], where: str) -> Costs:
    raw = data.get("costs") if "costs" in data else data
    try:
        return Costs.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"] if p not in ("price", "versions"))
            problems.append(f"costs.{loc}: {err['msg']}")
        raise _problems(where, problems) from None


def read_price_file(path: str | Path, *, valid_from: datetime | None = None) -> ImportResult:
    """Read a price file in any supported format; an unknown format is a clear error."""
    p = Path(path)
    data = _read_json(p)
    if isinstance(data, Mapping) and data.get("format") == PRICEBOOK_FORMAT:
        book = load_pricebook(data, where=str(p))
        if valid_from is not None:
            book = PriceBook.build([replace(v, valid_from=valid_from) for v in book.all_prices()],
                                   meter_costs=book.meter_costs, source=book.source)
        return ImportResult(book, PRICEBOOK_FORMAT)
    if is_litellm_map(data):
        return import_litellm_report(data, valid_from=valid_from, where=str(p))
    if isinstance(data, Mapping) and (isinstance(data.get("models"), Mapping)
                                      or isinstance(data.get("costs"), Mapping)):
        costs = _catalog_costs(data, str(p))
        prices = costs_prices(costs, source=costs.source or str(p))
        if valid_from is not None:
            prices = [v if v.valid_from else replace(v, valid_from=valid_from) for v in prices]
        return ImportResult(
            PriceBook.build(prices, meter_costs=costs.meters, source=f"catalog costs: {p}"),
            "catalog-costs",
        )
    raise PriceBookInvalid(
        f"{p}: unknown price file format; give a LiteLLM price map (model → "
        "{input_cost_per_token, ...}), a ratecard price book ({\"format\": "
        "\"ratecard-pricebook\"}) or a catalog costs file (models: {MODEL: {input, output}})"
    )


def combine(older: PriceBook, newer: PriceBook, at: datetime) -> PriceBook:
    """Prices from ``newer`` take over at ``at``: every version of ``older`` for a model
    ``newer`` prices (any provider or region, as catalog overrides do) ends at ``at``.

    A version of ``older`` starting at or after ``at`` for such a model is dropped.
    """
    named = set(newer.prices)
    kept: list[ModelPrice] = []
    for p in older.all_prices():
        if p.model in named:
            if p.valid_from is not None and p.valid_from >= at:
                continue
            if p.valid_to is None or p.valid_to > at:
                p = replace(p, valid_to=at)
        kept.append(p)
    return PriceBook.build([*kept, *newer.all_prices()],
                           meter_costs={**older.meter_costs, **newer.meter_costs},
                           source=newer.source)


def prices_of(books: Iterable[PriceBook]) -> list[ModelPrice]:
    return [p for b in books for p in b.all_prices()]
