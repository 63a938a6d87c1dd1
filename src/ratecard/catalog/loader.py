"""Load catalog YAML into a validated :class:`Catalog`, reporting every problem at once.

Each problem names the file, the line, the path inside the file
(``plans.pro.charges[1].tiers[2].up_to``) and what to do. Besides the schema,
cross references are checked: a charge or entitlement on an unknown meter, a
``prices_by`` property the meter does not group by, a cost for an unknown meter.
A folder is read as every ``*.yaml``/``*.yml`` file in it, merged by top-level
section; a key defined in two files is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ratecard.catalog.schema import Catalog, Metered
from ratecard.errors import CatalogInvalid, Problem
from ratecard.money import is_known_currency

_TAGS = {"metered", "boolean", "list", "number", "text", "price", "versions"}
_SECTIONS = ("meters", "plans")


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys and remembers each path's line."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"key {key!r} appears twice (first on line {seen[key] + 1}); keep one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[(*path, key)] = k.start_mark.line + 1
            _lines(v, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)


def format_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    cleaned = []
    for part in loc:
        if isinstance(part, str) and (part in _TAGS or part.startswith("function-")):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling against the catalog format"
    if kind == "missing":
        return "is required; add it"
    if kind == "literal_error":
        return msg.replace("Input should be", "must be")
    if kind.startswith("union_tag"):
        return msg
    return msg


def read_yaml(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse one YAML file; a syntax error becomes a Problem naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogInvalid([Problem(str(path), "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogInvalid([Problem(str(path), "", f"cannot read: {e}")]) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML once into data and a map from each path to its line number."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise CatalogInvalid(
            [Problem(name, where, f"not valid YAML: {problem}; fix the syntax there")]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    return data, lines


def catalog_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise CatalogInvalid([Problem(str(path), "", "folder holds no .yaml files")])
        return files
    return [path]


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file or folder; raise CatalogInvalid listing every problem."""
    root = Path(path)
    files = catalog_files(root)
    merged: dict[str, Any] = {}
    origin: dict[tuple[Any, ...], tuple[str, int]] = {}
    problems: list[Problem] = []
    for f in files:
        data, lines = read_yaml(f)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(Problem(str(f), "", "the catalog must be a mapping of sections "
                                                "(currency, meters, costs, plans, credits)"))
            continue
        for loc, line in lines.items():
            origin.setdefault(loc, (str(f), line))
        for key, value in data.items():
            if key in _SECTIONS and isinstance(value, dict):
                section = merged.setdefault(key, {})
                for name, item in value.items():
                    if name in section:
                        problems.append(Problem(str(f), f"{key}.{name}",
                                                "defined in two catalog files; keep one"))
                    section[name] = item
                    origin[(key, name)] = (str(f), lines.get((key, name), 0))
            elif key in merged and merged[key] != value:
                problems.append(Problem(str(f), str(key),
                                        "set differently in two catalog files; keep one"))
            else:
                merged[key] = value
    if problems:
        raise CatalogInvalid(problems)
    return validate_catalog(merged, default_file=str(root), origin=origin)


def parse_catalog_text(text: str, name: str = "<catalog>") -> Catalog:
    """Validate catalog YAML given as text (the API's catalog apply)."""
    data, lines = parse_yaml(text, name)
    origin = {loc: (name, line) for loc, line in lines.items()}
    if not isinstance(data, dict):
        raise CatalogInvalid([Problem(name, "", "the catalog must be a mapping of sections")])
    return validate_catalog(data, default_file=name, origin=origin)


def validate_catalog(
    data: dict[str, Any],
    *,
    default_file: str = "<catalog>",
    origin: dict[tuple[Any, ...], tuple[str, int]] | None = None,
) -> Catalog:
    origin = origin or {}

    def where(loc: tuple[Any, ...]) -> tuple[str, str]:
        for n in range(len(loc), -1, -1):
            hit = origin.get(loc[:n])
            if hit:
                file, line = hit
                return file, f"line {line}: {format_path(loc)}" if loc else f"line {line}"
        return default_file, format_path(loc)

    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = _clean_loc(tuple(err["loc"]))
            file, path = where(loc)
            problems.append(Problem(file, path, _message(dict(err))))
        raise CatalogInvalid(_dedupe(problems)) from None
    problems = cross_check(catalog, where)
    if problems:
        raise CatalogInvalid(problems)
    return catalog


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for p in problems:
        key = (p.file, p.path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def cross_check(catalog: Catalog, where: Any) -> list[Problem]:
    """References between sections: meters named by charges, entitlements, costs, credits."""
    problems: list[Problem] = []
    meters = catalog.meters
    known = ", ".join(sorted(meters)) or "none defined"

    def add(loc: tuple[Any, ...], msg: str) -> None:
        file, path = where(loc)
        problems.append(Problem(file, path, msg))

    if not is_known_currency(catalog.currency):
        add(("currency",), f"{catalog.currency!r} is not an ISO 4217 currency code (USD, EUR, "
                           "CNY, JPY ...)")
    for m, _ in catalog.costs.meters.items():
        if m not in meters:
            add(("costs", "meters", m), f"no meter {m!r}; meters: {known}")
    for code, plan in catalog.plans.items():
        if plan.currency and not is_known_currency(plan.currency):
            add(("plans", code, "currency"), f"{plan.currency!r} is not an ISO 4217 code")
        for i, ch in enumerate(plan.charges):
            loc = ("plans", code, "charges", i)
            if ch.meter is None:
                continue
            meter = meters.get(ch.meter)
            if meter is None:
                add((*loc, "meter"), f"no meter {ch.meter!r}; define it under meters: "
                                     f"(meters: {known})")
                continue
            if ch.prices_by and ch.prices_by not in meter.group_by:
                add((*loc, "prices_by"),
                    f"meter {ch.meter!r} does not group by {ch.prices_by!r}; add it to the "
                    f"meter's group_by (now {meter.group_by or 'empty'})")
            if ch.model == "percentage" and meter.aggregation != "sum":
                add((*loc, "meter"), "a percentage charge needs a sum meter over the event "
                                     "value (the sale or payment amount)")
        for name, ent in plan.entitlements.items():
            if isinstance(ent, Metered) and ent.meter not in meters:
                add(("plans", code, "entitlements", name, "meter"),
                    f"no meter {ent.meter!r}; meters: {known}")
        if plan.credits:
            for m in plan.credits.burn:
                if m not in meters:
                    add(("plans", code, "credits", "burn", m), f"no meter {m!r}; meters: {known}")
    return problems
