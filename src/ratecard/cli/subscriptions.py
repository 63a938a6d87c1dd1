"""``ratecard subscriptions create|list|show|change|cancel``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.billing import repository as repo
from ratecard.billing.subscriptions import (
    cancel_subscription,
    change_subscription,
    create_subscription,
    get_subscription,
    list_subscriptions,
)
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import parse_time, utc_now
from ratecard.errors import InvalidInput
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

subscriptions_app = typer.Typer(help="Subscriptions: a customer on a plan version over time.",
                                no_args_is_help=True)

AtOpt = Annotated[str | None, typer.Option(
    "--at", help="Act as of this time (RFC 3339 or a date; default now).")]


def _time(text: str | None, field: str, tz: str = "UTC") -> datetime | None:
    return None if text is None else parse_time(text, field=field, default_tz=tz)


def _print(sub: dict[str, object]) -> None:
    console.print(f"subscription {sub['id']}: customer {escape(str(sub['customer']))}, "
                  f"{sub['plan']} v{sub['version']}, {sub['status']}, {sub['seats']} seats, "
                  f"billed per {sub['term']}")
    for k in ("started_at", "trial_end", "ends_at", "canceled_at"):
        if sub.get(k):
            console.print(f"  {k}: {sub[k]}")
    for p in sub["phases"]:  # type: ignore[attr-defined]
        console.print(f"  from {p['starts_at']}: {p['plan']} v{p['version']}, {p['seats']} "
                      f"seats, per {p['term']} ({p['reason']})")


@subscriptions_app.command("create")
def create(
    customer: Annotated[str, typer.Option("--customer", help="Customer id.")],
    plan: Annotated[str, typer.Option("--plan", help="Plan code.")],
    version: Annotated[int | None, typer.Option(
        "--version", help="Plan version (default: the newest).")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="Start (RFC 3339, or a date: midnight in the customer's timezone; "
        "default now).")] = None,
    anchor: Annotated[str | None, typer.Option(
        "--anchor", help="Billing anchor: periods renew on this date's day "
        "(default: the start, or the trial's end).")] = None,
    trial_days: Annotated[int | None, typer.Option(
        "--trial-days", help="Free trial days (default: the plan's).")] = None,
    seats: Annotated[int | None, typer.Option("--seats", help="Seats (quantity).")] = None,
    term: Annotated[str | None, typer.Option(
        "--term", help="Prepay month, quarter or year (default: the plan's interval).")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Subscribe a customer to a plan."""
    with session_scope(Workspace.open(workspace)) as s:
        tz = repo.customer_row(s, customer).timezone
        sub = create_subscription(
            s, customer, plan, version=version, start=_time(start, "--start", tz),
            anchor=_time(anchor, "--anchor", tz), trial_days=trial_days, seats=seats,
            term=term,
        )
    data = sub.as_dict(utc_now())
    if json:
        print_json(data)
    else:
        _print(data)


@subscriptions_app.command("list")
def list_(
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.")]
    = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """List subscriptions."""
    now = utc_now()
    with session_scope(Workspace.open(workspace)) as s:
        subs = [x.as_dict(now) for x in list_subscriptions(s, customer)]
    if json:
        print_json(subs)
        return
    t = Table(title=f"{len(subs)} subscriptions", title_justify="left")
    for col in ("id", "customer", "plan", "version", "status", "seats", "term", "started",
                "ends"):
        t.add_column(col)
    for d in subs:
        t.add_row(str(d["id"]), escape(str(d["customer"])), escape(str(d["plan"])),
                  str(d["version"]), str(d["status"]), str(d["seats"]), str(d["term"]),
                  str(d["started_at"]), str(d["ends_at"] or ""))
    console.print(t)


@subscriptions_app.command("show")
def show(
    sub_id: Annotated[int, typer.Argument(metavar="ID")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show a subscription and its phases."""
    with session_scope(Workspace.open(workspace)) as s:
        data = get_subscription(s, sub_id).as_dict(utc_now())
    if json:
        print_json(data)
    else:
        _print(data)


@subscriptions_app.command("change")
def change(
    sub_id: Annotated[int, typer.Argument(metavar="ID")],
    plan: Annotated[str | None, typer.Option("--plan", help="New plan code.")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Plan version.")] = None,
    seats: Annotated[int | None, typer.Option("--seats", help="New seat count.")] = None,
    term: Annotated[str | None, typer.Option("--term", help="month, quarter or year.")] = None,
    now: Annotated[bool, typer.Option("--now", help="Take effect now, prorated by day.")]
    = False,
    at_renewal: Annotated[bool, typer.Option(
        "--at-renewal", help="Take effect when the current period ends.")] = False,
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Change plan, version, seats or term (default: upgrades now, downgrades at renewal)."""
    if now and at_renewal:
        raise InvalidInput("choose one of --now and --at-renewal")
    when = "now" if now else "renewal" if at_renewal else None
    with session_scope(Workspace.open(workspace)) as s:
        sub = repo.load_subscription(s, sub_id)
        result = change_subscription(s, sub_id, plan=plan, version=version, seats=seats,
                                     term=term, when=when,
                                     at=_time(at, "--at", sub.timezone))
    data = result.as_dict(utc_now())
    if json:
        print_json(data)
        return
    console.print(f"subscription {sub_id}: {data['direction']} to {result.to_phase.plan_code} "
                  f"v{result.to_phase.plan_version} ({result.to_phase.seats} seats, per "
                  f"{result.to_phase.term}) from {data['effective_at']}")


@subscriptions_app.command("cancel")
def cancel(
    sub_id: Annotated[int, typer.Argument(metavar="ID")],
    now: Annotated[bool, typer.Option("--now", help="End now (unused days are credited).")]
    = False,
    at_period_end: Annotated[bool, typer.Option(
        "--at-period-end", help="End when the current period ends (the default).")] = False,
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Cancel a subscription now or at the end of its period."""
    if now and at_period_end:
        raise InvalidInput("choose one of --now and --at-period-end")
    with session_scope(Workspace.open(workspace)) as s:
        sub = repo.load_subscription(s, sub_id)
        result = cancel_subscription(s, sub_id, when="now" if now else "period_end",
                                     at=_time(at, "--at", sub.timezone))
    data = result.as_dict(utc_now())
    if json:
        print_json(data)
    else:
        console.print(f"subscription {sub_id} cancelled; it ends {data['ends_at']}")


def register(app: typer.Typer) -> None:
    app.add_typer(subscriptions_app, name="subscriptions")
