"""``ratecard catalog validate|show``: pricing as code, checked and readable.

Other modules add commands to :data:`catalog_app` (``apply``, ``lint``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ratecard.catalog import load_catalog
from ratecard.catalog.schema import Catalog, Charge, Metered, Plan, PriceParams, merge_params
from ratecard.cli.common import JsonOpt, console, console_err, print_json
from ratecard.errors import CatalogInvalid
from ratecard.money import to_str

catalog_app = typer.Typer(help="Validate, show and apply catalogs (pricing as code).",
                          no_args_is_help=True)


@catalog_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="Catalog files or folders.")],
    json: JsonOpt = False,
) -> None:
    """Check catalog files; print every problem with its file, line and path. Exit 1 if any."""
    results = []
    failed = False
    for f in files:
        try:
            cat = load_catalog(f)
            results.append({"file": str(f), "valid": True, "plans": len(cat.plans),
                             "meters": len(cat.meters), "problems": []})
        except CatalogInvalid as e:
            failed = True
            results.append({"file": str(f), "valid": False,
                            "problems": [str(p) for p in e.problems]})
    if json:
        print_json(results)
    else:
        for r in results:
            if r["valid"]:
                console.print(f"✓ {r['file']}: valid ({r['plans']} plans, {r['meters']} meters)")
            else:
                console_err.print(f"✗ {r['file']}: {len(r['problems'])} problem(s)")
                for p in r["problems"]:
                    console_err.print(f"  {p}", markup=False)
    if failed:
        raise typer.Exit(1)


def describe_charge(c: Charge) -> str:
    """A one-line human description of a charge's price."""
    inc = f", {to_str(c.included)} included" if c.included else ""
    if c.prices_by:
        def one(p: PriceParams) -> str:
            return describe_params(c.model, merge_params(c, p).model_dump(exclude_none=True))

        parts = [f"{g}: {one(p)}" for g, p in (c.prices or {}).items()]
        if c.default:
            parts.append(f"other: {one(c.default)}")
        return f"{c.model} by {c.prices_by}{inc}: " + "; ".join(parts)
    return describe_params(c.model, c.model_dump(exclude_none=True)) + inc


def describe_params(model: str, p: dict[str, object]) -> str:
    def s(key: str) -> str:
        v = p.get(key)
        return to_str(v) if v is not None else "?"  # type: ignore[arg-type]

    if model == "flat":
        return f"{s('price')}{' once' if p.get('once') else ' per period'}"
    if model == "per_unit":
        per = p.get("per")
        return f"{s('unit_price')} per {to_str(per) if per else 'unit'}"  # type: ignore[arg-type]
    if model == "package":
        return f"{s('price')} per {s('size')} units (round {p.get('round') or 'up'})"
    if model in ("graduated", "volume"):
        tiers = p.get("tiers") or []
        parts = []
        for t in tiers:  # type: ignore[attr-defined]
            up = t.get("up_to") if isinstance(t, dict) else t.up_to
            price = t.get("unit_price") if isinstance(t, dict) else t.unit_price
            fee = t.get("flat_fee") if isinstance(t, dict) else t.flat_fee
            bound = f"≤{to_str(up)}" if up is not None else "above"
            parts.append(f"{bound}: {to_str(price)}" + (f" +{to_str(fee)}" if fee else ""))
        return f"{model} [" + ", ".join(parts) + "]"
    if model == "percentage":
        extra = f" + {s('fixed_fee')}" if p.get("fixed_fee") else ""
        return f"{s('rate')}%{extra} per event"
    if model == "cost_plus":
        return f"cost + {s('markup')} markup"
    return model


def _entitlement(v: object) -> str:
    if isinstance(v, Metered):
        lims = ", ".join(f"{to_str(lim.limit)}/{lim.window}" for lim in v.limits)
        return f"{v.meter} ≤ {lims}{'' if v.hard else ' (soft)'}"
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def plan_table(catalog: Catalog, code: str, plan: Plan) -> Table:
    cur = plan.currency or catalog.currency
    title = f"{code}" + (f" — {plan.name}" if plan.name else "")
    meta = [plan.interval]
    if plan.archetype:
        meta.append(plan.archetype)
    t = Table(title=f"{title} ({', '.join(meta)}, {cur})", title_justify="left",
              show_header=True, expand=False)
    t.add_column("item")
    t.add_column("price")
    if plan.base_fee:
        t.add_row("base fee", f"{to_str(plan.base_fee)} per {plan.interval} in advance")
    if plan.seats:
        t.add_row("seats", f"{to_str(plan.seats.unit_price)} per seat"
                  + (f", {plan.seats.included} included" if plan.seats.included else ""))
    for c in plan.charges:
        item = c.label + (f" ({c.meter})" if c.meter and c.name else "")
        t.add_row(Text(item), Text(describe_charge(c)))
    if plan.minimum:
        t.add_row("minimum spend", f"{to_str(plan.minimum)} per period")
    if plan.annual_discount:
        t.add_row("annual discount", f"{to_str(plan.annual_discount * 100)}%")
    if plan.credits:
        t.add_row("credits", f"{to_str(plan.credits.grant)} per {plan.credits.per}")
    for k, v in plan.entitlements.items():
        t.add_row(f"entitlement {k}", Text(_entitlement(v)))
    return t


@catalog_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="Catalog file or folder.")],
    json: JsonOpt = False,
) -> None:
    """Print the plans and prices of a catalog as readable tables."""
    catalog = load_catalog(file)
    if json:
        print_json(catalog.model_dump(mode="json", exclude_none=True))
        return
    console.print(f"[bold]{catalog.name or file}[/bold]  currency {catalog.currency}  "
                  f"{len(catalog.meters)} meters, {len(catalog.plans)} plans")
    mt = Table(title="meters", title_justify="left")
    for col in ("meter", "event", "aggregation", "property", "filter", "group by"):
        mt.add_column(col)
    for k, m in catalog.meters.items():
        mt.add_row(k, m.event, m.aggregation, m.property or "",
                   ", ".join(f"{a}={b}" for a, b in m.filter.items()), ", ".join(m.group_by))
    console.print(mt)
    for code, plan in catalog.plans.items():
        console.print(plan_table(catalog, code, plan))


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
