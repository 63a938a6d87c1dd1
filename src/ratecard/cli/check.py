"""``ratecard check`` and ``ratecard entitlements show|override|overrides|end``."""

from __future__ import annotations

import json as jsonlib
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import iso, parse_time
from ratecard.entitlements import service
from ratecard.entitlements.model import Entitlement, Override
from ratecard.errors import InvalidInput
from ratecard.money import to_str
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

entitlements_app = typer.Typer(
    help="Entitlements: what each customer may use, and per-customer overrides.",
    no_args_is_help=True)

CustomerOpt = Annotated[str, typer.Option("--customer", "-c", help="Customer id.")]
AtOpt = Annotated[str | None, typer.Option(
    "--at", help="As of this time (RFC 3339, or a date in UTC; default now).")]


def _time(value: str | None, field: str) -> datetime | None:
    return parse_time(value, field=field, default_tz="UTC") if value else None


def check(
    customer: CustomerOpt,
    feature: Annotated[str, typer.Option("--feature", "-f", help="Feature (entitlement) name.")],
    quantity: Annotated[str | None, typer.Option(
        "--quantity", "-q", help="Would this much more be allowed? (nothing is consumed)")
    ] = None,
    value: Annotated[str | None, typer.Option(
        "--value", help="For a list entitlement: is this value in it? (e.g. a model)")] = None,
    at: AtOpt = None,
    exit_code: Annotated[bool, typer.Option(
        "--exit-code", help="Exit with status 2 when not allowed.")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """May this customer use this feature now? Reads counters, never consumes."""
    with session_scope(Workspace.open(workspace)) as s:
        r = service.check(s, customer, feature, quantity=quantity, value=value,
                          at=_time(at, "--at"))
    if json:
        print_json(r.to_dict())
    else:
        word = "allowed" if r.allowed else "denied"
        console.print(f"{word}: {escape(r.reason)}")
        if r.limit is not None or r.used is not None or r.remaining is not None:
            parts = []
            for name, v in (("limit", r.limit), ("used", r.used), ("remaining", r.remaining)):
                if v is not None:
                    parts.append(f"{name} {to_str(v)}")
            if r.resets_at is not None:
                parts.append(f"resets at {iso(r.resets_at)}")
            if r.retry_at is not None:
                parts.append(f"retry at {iso(r.retry_at)}")
            console.print("  " + ", ".join(parts))
        for w in r.windows:
            resets = f", resets {iso(w.resets_at)}" if w.resets_at else ""
            console.print(f"  {w.window:>6}: {to_str(w.used)} of {to_str(w.limit)}{resets}")
    if exit_code and not r.allowed:
        raise typer.Exit(2)


def _ent_dict(e: Entitlement) -> dict[str, Any]:
    out: dict[str, Any] = {"feature": e.feature, "kind": e.kind, "source": e.source}
    if e.kind == "metered":
        out.update(meter=e.meter, hard=e.hard,
                   limits=[{"limit": to_str(lim.limit), "window": lim.window.text}
                           for lim in e.limits],
                   overage_unit_price=to_str(e.overage_unit_price)
                   if e.overage_unit_price is not None else None)
    else:
        out["value"] = e.value
    return out


def _ovr_dict(o: Override) -> dict[str, Any]:
    value = o.value.model_dump(mode="json", exclude_none=True) if hasattr(
        o.value, "model_dump") else o.value
    return {"id": o.id, "customer": o.customer, "feature": o.feature, "value": value,
            "starts_at": iso(o.starts_at), "ends_at": iso(o.ends_at) if o.ends_at else None,
            "note": o.note}


@entitlements_app.command("show")
def show(
    customer: CustomerOpt,
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Every entitlement in force for a customer (plan version plus overrides)."""
    with session_scope(Workspace.open(workspace)) as s:
        ents = service.entitlements_of(s, customer, at=_time(at, "--at"))
    data = [_ent_dict(e) for e in ents.values()]
    if json:
        print_json(data)
        return
    t = Table(title=f"entitlements of {escape(customer)}", title_justify="left")
    for col in ("feature", "kind", "value / limits", "source"):
        t.add_column(col)
    for d in data:
        if d["kind"] == "metered":
            shown = ", ".join(f"{x['limit']} per {x['window']}" for x in d["limits"])
            shown += f" of {d['meter']}" + ("" if d["hard"] else " (soft)")
        else:
            shown = jsonlib.dumps(d["value"])
        t.add_row(escape(d["feature"]), d["kind"], escape(shown), escape(d["source"]))
    console.print(t)


@entitlements_app.command("override")
def override(
    customer: CustomerOpt,
    feature: Annotated[str, typer.Option("--feature", "-f", help="Feature name.")],
    value: Annotated[str, typer.Option(
        "--value", help='JSON: true, 5, "text", ["a","b"] or {"meter": "prompts", "limits": '
        '[{"limit": 500, "window": "5h"}]}')],
    start: Annotated[str | None, typer.Option("--start", help="From (default now).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Until (default: open).")] = None,
    note: Annotated[str, typer.Option("--note", help="Why.")] = "",
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Give one customer a different entitlement for a feature, from --start to --end."""
    try:
        parsed = jsonlib.loads(value)
    except ValueError:
        parsed = value  # bare text such as a model name
    if isinstance(parsed, float):
        raise InvalidInput(f"--value {value}: write an integer or quote a decimal as text")
    with session_scope(Workspace.open(workspace)) as s:
        o = service.set_override(s, customer, feature, parsed,
                                 starts_at=_time(start, "--start"), ends_at=_time(end, "--end"),
                                 note=note)
    if json:
        print_json(_ovr_dict(o))
        return
    until = f" until {iso(o.ends_at)}" if o.ends_at else ""
    console.print(f"override {o.id}: {escape(feature)} for {escape(customer)} from "
                  f"{iso(o.starts_at)}{until}")


@entitlements_app.command("overrides")
def overrides(
    customer: CustomerOpt,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """List a customer's overrides (past, current and future)."""
    with session_scope(Workspace.open(workspace)) as s:
        rows = service.list_overrides(s, customer)
    data = [_ovr_dict(o) for o in rows]
    if json:
        print_json(data)
        return
    for d in data:
        until = d["ends_at"] or "open"
        console.print(f"{d['id']}  {escape(d['feature'])} = "
                      f"{escape(jsonlib.dumps(d['value']))}  {d['starts_at']} .. {until}")
    if not data:
        console.print("no overrides")


@entitlements_app.command("end")
def end(
    override_id: Annotated[str, typer.Argument(metavar="OVERRIDE_ID")],
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """End an override now (or at --at)."""
    with session_scope(Workspace.open(workspace)) as s:
        o = service.end_override(s, override_id, at=_time(at, "--at"))
    if json:
        print_json(_ovr_dict(o))
        return
    console.print(f"override {o.id} ends at {iso(o.ends_at) if o.ends_at else 'never'}")


@entitlements_app.command("rebuild")
def rebuild(
    customer: Annotated[list[str] | None, typer.Option(
        "--customer", "-c", help="Only these customers (repeatable; default all).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only counters from this day on (default: all time).")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Recompute the check counters from the usage store (after `ratecard events ingest`
    of files, or a void made outside the API)."""
    from ratecard.metering.service import workspace_catalog
    from ratecard.store.usage import open_usage_store

    ws = Workspace.open(workspace)
    catalog = workspace_catalog(ws)
    if catalog is None:
        raise InvalidInput("no catalog is applied; apply one with `ratecard catalog apply FILE`")
    store = open_usage_store(ws.usage_url)
    try:
        with session_scope(ws) as s:
            n = service.rebuild_from_store(s, store, catalog, customers=customer or None,
                                           since=_time(since, "--since"))
    finally:
        store.close()
    if json:
        print_json({"events": n})
        return
    console.print(f"rebuilt the check counters from {n:,} events")


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.add_typer(entitlements_app, name="entitlements")
