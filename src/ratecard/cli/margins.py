"""``ratecard margins``: revenue, cost of goods, gross margin and unit economics."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.analytics.model import MarginReport, MarginRow
from ratecard.analytics.rules import check_dimension, ratio
from ratecard.catalog import load_catalog
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import Window, iso, parse_time
from ratecard.costs.model import dec_str
from ratecard.money import quantize
from ratecard.workspace import Workspace


def _d(v: Decimal | None) -> str | None:
    return None if v is None else dec_str(v)


def _r(v: Decimal | None) -> str | None:
    r = ratio(v)
    return None if r is None else dec_str(r)


def row_json(row: MarginRow, by: str) -> dict[str, Any]:
    t = row.target
    return {
        by: row.key,
        "revenue": _d(row.revenue), "cost": _d(row.cost), "model_cost": _d(row.model_cost),
        "meter_cost": _d(row.meter_cost), "byok_model_cost": _d(row.byok_model_cost),
        "gross_margin": _d(row.margin), "margin": _r(row.margin_pct),
        "model_cost_ratio": _r(row.model_cost_ratio),
        "requests": row.requests, "tokens": row.tokens, "customers": row.customers,
        "tasks": _d(row.tasks), "resolutions": _d(row.resolutions),
        "active_members": _d(row.active_members),
        "cpt": _d(row.cpt), "cpr": _d(row.cpr), "cpam": _d(row.cpam),
        "tokens_per_task": _d(row.tokens_per_task),
        "loss_making": row.loss_making,
        "archetype": t.archetype if t else None,
        "target_band": [_d(t.band[0]), _d(t.band[1])] if t and t.band else None,
        "target_status": row.target_status,
        "min_margin": _d(t.min_margin) if t else None,
        "below_min_margin": row.below_min_margin,
    }


def report_json(r: MarginReport) -> dict[str, Any]:
    out: dict[str, Any] = {
        "from": iso(r.start), "to": iso(r.end), "by": r.by, "currency": r.currency,
        "rows": [row_json(x, r.by) for x in r.rows],
        "total": row_json(r.total, "total"),
        "losing_customers": [row_json(x, "customer") for x in r.losers],
        "unpriced": [{"model": u.model, "events": u.events, "customers": u.customers,
                      "reason": u.reason,
                      "first": iso(u.first_at) if u.first_at else None,
                      "last": iso(u.last_at) if u.last_at else None} for u in r.unpriced],
        "unpriced_events": r.unpriced_events,
        "notes": list(r.notes),
    }
    if r.by == "plan":
        out["plans"] = out["rows"]  # the shape `ratecard catalog lint --margins` reads
    return out


def _money(v: Decimal | None, currency: str) -> str:
    return "" if v is None else f"{quantize(v, currency):,}"


def _pct(v: Decimal | None) -> str:
    r = ratio(v)
    return "" if r is None else f"{r * 100:.1f}%"


def _unit(v: Decimal | None) -> str:
    return "" if v is None else dec_str(v.quantize(Decimal("0.0001")))


def print_report(r: MarginReport) -> None:
    cur = r.currency
    t = Table(title=f"Margins by {r.by}, {iso(r.start)} to {iso(r.end)} ({cur})",
              title_justify="left")
    t.add_column(r.by)
    for col in ("revenue", "cost", "margin", "margin %", "model cost %"):
        t.add_column(col, justify="right")
    units = r.by in ("customer", "plan")
    if units:
        for col in ("CPT", "CPR", "CPAM"):
            t.add_column(col, justify="right")
    if r.by == "plan":
        t.add_column("target")
    for row in [*r.rows, r.total]:
        cells = [escape(row.key) + (" [red](loss)[/red]" if row.loss_making else ""),
                 _money(row.revenue, cur), _money(row.cost, cur), _money(row.margin, cur),
                 _pct(row.margin_pct), _pct(row.model_cost_ratio)]
        if units:
            cells += [_unit(row.cpt), _unit(row.cpr), _unit(row.cpam)]
        if r.by == "plan":
            tg = row.target
            text = ""
            if tg is not None and tg.band is not None:
                text = (f"{tg.archetype} {int(tg.band[0] * 100)}-{int(tg.band[1] * 100)}%: "
                        f"{row.target_status}")
            if row.below_min_margin:
                text += f" (below min_margin {_pct(tg.min_margin if tg else None)})"
            cells.append(text)
        if row is r.total:
            t.add_section()
        t.add_row(*cells)
    console.print(t)
    if r.losers:
        console.print("[bold]Customers costing more than they pay[/bold]")
        for x in r.losers:
            console.print(f"  {escape(x.key)}: revenue {_money(x.revenue, cur)}, cost "
                          f"{_money(x.cost, cur)}, loss {_money(-x.margin, cur)}")
    if r.unpriced:
        console.print(f"[bold]Unpriced[/bold]: {r.unpriced_events} request(s) not costed")
        for u in r.unpriced:
            console.print(f"  {escape(u.model)}: {u.events} event(s), {escape(u.reason)}")
    for n in r.notes:
        console.print(f"note: {escape(n)}")


def margins(
    start: Annotated[str, typer.Option("--from", help="Window start (RFC 3339 or a date).")],
    end: Annotated[str, typer.Option("--to", help="Window end, exclusive.")],
    by: Annotated[str, typer.Option("--by", help="customer, plan, meter or model.")]
    = "customer",
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", help="Catalog to read plans, meters and costs from (default: the one "
                          "applied in the workspace).", show_default=False)] = None,
    tasks: Annotated[str | None, typer.Option(
        "--tasks", help="Meter counting tasks (for CPT; default: a meter named tasks, else "
                        "model requests).", show_default=False)] = None,
    resolutions: Annotated[str | None, typer.Option(
        "--resolutions", help="Meter counting resolved outcomes (for CPR; default: "
                              "resolutions).", show_default=False)] = None,
    members: Annotated[str | None, typer.Option(
        "--members", help="Meter counting active members (for CPAM; default: active_users)."
    , show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Revenue, cost, gross margin and unit economics per customer, plan, meter or model."""
    from ratecard.analytics.service import margins as compute

    check_dimension(by)
    window = Window(parse_time(start, field="--from", default_tz="UTC"),
                    parse_time(end, field="--to", default_tz="UTC"))
    ws = Workspace.open(workspace)
    cat = load_catalog(catalog) if catalog is not None else None
    report = compute(ws, window, by, catalog=cat, tasks=tasks, resolutions=resolutions,
                     members=members)
    if json:
        print_json(report_json(report))
    else:
        print_report(report)


def register(app: typer.Typer) -> None:
    app.command("margins")(margins)
