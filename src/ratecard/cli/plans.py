"""``ratecard plans list|show|migrate``: stored plan versions and migrations between them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.billing.catalogs import list_plans, plan_versions
from ratecard.billing.subscriptions import migrate_plan
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import iso, parse_time, utc_now
from ratecard.errors import InvalidInput
from ratecard.money import to_str
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

plans_app = typer.Typer(help="Plan versions (grandfathering) and migrations.",
                        no_args_is_help=True)


@plans_app.command("list")
def list_(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """List plans with their newest version."""
    with session_scope(Workspace.open(workspace)) as s:
        rows = list_plans(s)
    data = [{"plan": p.code, "name": p.plan.name, "version": p.version, "currency": p.currency,
             "interval": p.plan.interval, "base_fee": to_str(p.plan.base_fee),
             "retired": p.retired} for p in rows]
    if json:
        print_json(data)
        return
    t = Table(title="plans", title_justify="left")
    for col in ("plan", "name", "version", "currency", "interval", "base fee", "retired"):
        t.add_column(col)
    for d in data:
        t.add_row(escape(d["plan"]), escape(d["name"] or ""), str(d["version"]),
                  d["currency"], d["interval"], d["base_fee"], "yes" if d["retired"] else "")
    console.print(t)


@plans_app.command("show")
def show(
    plan: Annotated[str, typer.Argument(metavar="PLAN")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show every version of a plan."""
    with session_scope(Workspace.open(workspace)) as s:
        versions = plan_versions(s, plan)
    data = [{"plan": v.code, "version": v.version, "created_at": iso(v.created_at),
             "currency": v.currency, "latest": v.latest, "retired": v.retired,
             "definition": v.definition} for v in versions]
    if json:
        print_json(data)
        return
    for d in data:
        mark = " (latest)" if d["latest"] else ""
        console.print(f"{escape(plan)} v{d['version']}{mark}: created {d['created_at']}, "
                      f"{d['currency']}")


@plans_app.command("migrate")
def migrate(
    plan: Annotated[str, typer.Argument(metavar="PLAN")],
    to_version: Annotated[int, typer.Option("--to-version", help="The version to move to.")],
    now: Annotated[bool, typer.Option("--now", help="Move now (prorated).")] = False,
    at: Annotated[str | None, typer.Option("--at", help="Move on this date.")] = None,
    at_renewal: Annotated[bool, typer.Option(
        "--at-renewal", help="Move each subscription when its period renews.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Show, change nothing.")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Move the subscriptions on PLAN's other versions to --to-version."""
    chosen = [x for x in (now, at is not None, at_renewal) if x]
    if len(chosen) != 1:
        raise InvalidInput("say when: exactly one of --now, --at DATE or --at-renewal")
    when = "now" if now else "renewal" if at_renewal else parse_time(
        at or "", field="--at", default_tz="UTC")
    with session_scope(Workspace.open(workspace)) as s:
        items = migrate_plan(s, plan, to_version, when=when, at=utc_now(), preview=preview)
    if json:
        print_json({"preview": preview, "subscriptions": [i.as_dict() for i in items]})
        return
    t = Table(title=f"{'preview: ' if preview else ''}{plan} → v{to_version}: "
                    f"{len(items)} subscriptions", title_justify="left")
    for col in ("subscription", "customer", "from", "effective", "fee/month", "error"):
        t.add_column(col)
    for i in items:
        d = i.as_dict()
        t.add_row(str(i.subscription), escape(i.customer), f"v{i.from_version}",
                  iso(i.effective_at) if i.effective_at else "",
                  f"{d['old_fee_per_month']} → {d['new_fee_per_month']}",
                  escape(i.error or ""))
    console.print(t)
    errors = [i for i in items if i.error]
    if errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(plans_app, name="plans")
