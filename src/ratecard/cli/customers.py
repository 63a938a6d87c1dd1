"""``ratecard customers create|list|show``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.billing.customers import create_customer, get_customer, list_customers
from ratecard.billing.subscriptions import list_subscriptions
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import utc_now
from ratecard.errors import InvalidInput
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

customers_app = typer.Typer(help="Customers: who is billed, in which currency and timezone.",
                            no_args_is_help=True)


def parse_metadata(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--metadata {item!r}: write KEY=VALUE")
        out[key.strip()] = value
    return out


@customers_app.command("create")
def create(
    customer_id: Annotated[str, typer.Argument(metavar="ID",
                                               help="External id (what usage events carry).")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    currency: Annotated[str | None, typer.Option(
        "--currency", help="ISO currency (default: the catalog's).")] = None,
    timezone: Annotated[str, typer.Option(
        "--timezone", help="IANA timezone; billing periods follow its calendar.")] = "UTC",
    email: Annotated[str | None, typer.Option("--email", help="Billing email.")] = None,
    metadata: Annotated[list[str] | None, typer.Option(
        "--metadata", help="KEY=VALUE, repeatable.")] = None,
    byok: Annotated[bool, typer.Option(
        "--byok", help="The customer brings its own model keys.")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a customer."""
    meta = parse_metadata(metadata)
    with session_scope(Workspace.open(workspace)) as s:
        c = create_customer(s, customer_id, name=name, currency=currency, timezone=timezone,
                            email=email, metadata=meta, byok=byok)
    if json:
        print_json(c.as_dict())
    else:
        console.print(f"created customer {escape(c.external_id)} ({c.currency}, {c.timezone})")


@customers_app.command("list")
def list_(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """List customers."""
    with session_scope(Workspace.open(workspace)) as s:
        rows = list_customers(s)
    if json:
        print_json([c.as_dict() for c in rows])
        return
    t = Table(title=f"{len(rows)} customers", title_justify="left")
    for col in ("id", "name", "currency", "timezone", "email", "byok"):
        t.add_column(col)
    for c in rows:
        t.add_row(escape(c.external_id), escape(c.name), c.currency, c.timezone,
                  escape(c.email or ""), "yes" if c.byok else "")
    console.print(t)


@customers_app.command("show")
def show(
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show a customer and its subscriptions."""
    now = utc_now()
    with session_scope(Workspace.open(workspace)) as s:
        c = get_customer(s, customer_id)
        subs = list_subscriptions(s, customer_id)
    data = c.as_dict()
    data["subscriptions"] = [sub.as_dict(now) for sub in subs]
    if json:
        print_json(data)
        return
    for k in ("id", "name", "currency", "timezone", "email", "byok", "created_at"):
        console.print(f"{k:>11}: {escape(str(data[k]))}")
    if c.metadata:
        console.print(f"{'metadata':>11}: " + escape(", ".join(
            f"{k}={v}" for k, v in c.metadata.items())))
    for sub in data["subscriptions"]:
        console.print(f"subscription {sub['id']}: {sub['plan']} v{sub['version']} "
                      f"({sub['status']}, {sub['seats']} seats, per {sub['term']})")


def register(app: typer.Typer) -> None:
    app.add_typer(customers_app, name="customers")
