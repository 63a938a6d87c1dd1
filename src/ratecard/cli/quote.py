"""``ratecard quote``: price one period of one plan from a usage or events file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.catalog import Catalog, load_catalog
from ratecard.cli.common import JsonOpt, console, print_json
from ratecard.errors import UsageInvalid
from ratecard.metering.model import Event
from ratecard.money import to_str
from ratecard.pricing import rate_plan, with_catalog_costs
from ratecard.pricing.plan import Quote
from ratecard.pricing.usage_file import parse_usage


def quote_json(q: Quote) -> dict[str, object]:
    lines = []
    for ln in q.lines:
        lines.append({
            "kind": ln.kind,
            "meter": ln.meter,
            "group": dict(ln.group) if ln.group else None,
            "quantity": to_str(ln.quantity) if ln.quantity is not None else None,
            "amount": format(ln.rounded, "f"),
            "label": ln.label,
            "details": {k: v for k, v in ln.details.items()},
        })
    return {"plan": q.plan, "currency": q.currency, "lines": lines,
            "subtotal": format(q.subtotal, "f"), "total": format(q.total, "f")}


def print_quote(q: Quote) -> None:
    t = Table(title=f"Quote: plan {q.plan} ({q.currency})", title_justify="left")
    t.add_column("line")
    t.add_column("quantity", justify="right")
    t.add_column("amount", justify="right")
    for ln in q.lines:
        qty = to_str(ln.quantity) if ln.quantity is not None else ""
        t.add_row(escape(ln.label), qty, format(ln.rounded, ","))
    t.add_section()
    t.add_row("subtotal", "", format(q.subtotal, ","))
    t.add_row("[bold]total[/bold]", "", f"[bold]{q.total:,}[/bold]")
    console.print(t)


def quote(
    catalog: Annotated[Path, typer.Argument(help="Catalog file or folder.")],
    plan: Annotated[str, typer.Option("--plan", help="Plan code to price.")],
    usage: Annotated[Path | None, typer.Option("--usage", help="USAGE.json: meter → quantity "
                                               "(or {group: quantity}).")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="EVENTS.jsonl: one usage "
                                                "event per line.")] = None,
    seats: Annotated[int | None, typer.Option("--seats", help="Seats, for plans priced per "
                                              "seat.")] = None,
    json: JsonOpt = False,
) -> None:
    """Price one period of one plan: base fee, seats, every charge, minimum true-up."""
    if (usage is None) == (events is None):
        raise UsageInvalid("give exactly one of --usage USAGE.json or --events EVENTS.jsonl")
    cat = load_catalog(catalog)
    cat.plan(plan)
    if usage is not None:
        snapshot = parse_usage(_read(usage), cat, name=str(usage))
    else:
        assert events is not None
        from ratecard.metering.meters import usage_snapshot

        evs = read_events_jsonl(events, cat)
        snapshot = usage_snapshot(cat, evs)
    q = rate_plan(cat, plan, with_catalog_costs(cat, snapshot), seats=seats)
    if json:
        print_json(quote_json(q))
    else:
        print_quote(q)


def read_events_jsonl(path: Path, catalog: Catalog) -> list[Event]:
    """Every event of a JSONL file; the first bad line stops the quote with its number.

    A quote prices history, so no event is too old or too new here; the catalog's
    property checks still apply (a string where a sum meter needs a number).
    """
    import json as _json
    from datetime import timedelta

    from ratecard.errors import RatecardError
    from ratecard.metering.events import EventRules, parse_event

    anytime = EventRules(late=timedelta(days=365 * 100), future=timedelta(days=365 * 100))

    out: list[Event] = []
    for lineno, raw in enumerate(_read(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = _json.loads(raw, parse_float=Decimal)
        except _json.JSONDecodeError as e:
            raise UsageInvalid(f"{path}: line {lineno} is not JSON ({e.msg})") from None
        try:
            out.append(parse_event(obj, line=lineno, rules=anytime, checks=catalog))
        except RatecardError as e:
            raise UsageInvalid(f"{path}: line {lineno}: {e}") from None
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageInvalid(f"{path}: cannot read: {e.strerror or e}") from None


def register(app: typer.Typer) -> None:
    app.command("quote")(quote)
