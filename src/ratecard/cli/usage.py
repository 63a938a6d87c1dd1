"""``ratecard usage --customer C --meter M --from T --to T``: what a customer used."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import Window, iso, parse_time
from ratecard.workspace import Workspace


def usage(
    customer: Annotated[str, typer.Option("--customer", help="Customer id.")],
    meter: Annotated[str, typer.Option("--meter", help="Meter name in the applied catalog.")],
    start: Annotated[str, typer.Option("--from", help="Start (RFC 3339 or a date, UTC), "
                                                      "inclusive.")],
    end: Annotated[str, typer.Option("--to", help="End (RFC 3339 or a date, UTC), exclusive.")],
    group_by: Annotated[list[str] | None, typer.Option(
        "--group-by", help="Split by this property (repeat, or comma-separate, for several). "
        "Default: the meter's group_by.", show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """What CUSTOMER used of METER in [FROM, TO): the quantity and its split by group."""
    from ratecard.metering.service import customer_usage, usage_json, workspace_catalog
    from ratecard.store.usage import open_usage_store

    window = Window(parse_time(start, field="--from", default_tz="UTC"),
                    parse_time(end, field="--to", default_tz="UTC"))
    gb = None
    if group_by is not None:
        gb = [p.strip() for item in group_by for p in item.split(",") if p.strip()]
    ws = Workspace.open(workspace)
    catalog = workspace_catalog(ws)
    store = open_usage_store(ws.usage_url, read_only=True)
    try:
        got = customer_usage(store, catalog, customer=customer, meter=meter, window=window,
                             group_by=gb)
    finally:
        store.close()
    data = usage_json(customer, window, got)
    if json:
        print_json(data)
        return
    console.print(f"{customer} · {meter} · {iso(window.start)} → {iso(window.end)}: "
                  f"[bold]{data['quantity']}[/bold]")
    if got.groups:
        t = Table(*got.group_by, "quantity")
        for g in data["groups"]:
            t.add_row(*[str(g["group"][k]) for k in got.group_by], g["quantity"])
        console.print(t)


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
