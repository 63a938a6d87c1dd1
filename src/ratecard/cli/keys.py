"""``ratecard keys create|list|revoke`` and ``ratecard portal-token create``.

A key's token is printed once, when it is created: only its hash is stored.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, console_err, print_json
from ratecard.workspace import Workspace

keys_app = typer.Typer(help="API keys (admin, ingest, read): create, list, revoke.",
                       no_args_is_help=True)
portal_app = typer.Typer(help="Portal tokens: one customer's read access to its own pages.",
                         no_args_is_help=True)


@keys_app.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help="admin, ingest or read.")],
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key.")] = "",
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create an API key and print its token (shown this once; only a hash is kept)."""
    from ratecard.api.keys import create_key
    from ratecard.store.state import session_scope

    ws = Workspace.open(workspace, create=True)
    with session_scope(ws) as s:
        created = create_key(s, role, name)
    if json:
        print_json(created.to_dict())
        return
    console.print(created.token, markup=False, soft_wrap=True)
    console_err.print(f"{role} key {created.credential.key_id} created; the token above is "
                      "shown once: store it now")


@keys_app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """List API keys and portal tokens (their ids, never their secrets)."""
    from ratecard.api.keys import list_keys
    from ratecard.store.state import session_scope

    ws = Workspace.open(workspace)
    with session_scope(ws) as s:
        creds = list_keys(s, include_revoked=all_)
    if json:
        print_json([c.to_dict() for c in creds])
        return
    t = Table(title="API keys and portal tokens", title_justify="left")
    for col in ("key id", "role", "customer", "name", "created", "status"):
        t.add_column(col)
    for c in creds:
        status = "revoked" if c.revoked_at else ("active" if c.active else "expired")
        t.add_row(c.key_id, c.role, c.customer or "", c.name,
                  c.created_at.strftime("%Y-%m-%d %H:%M"), status)
    console.print(t)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id `ratecard keys list` shows.")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Revoke an API key or portal token (a running server stops taking it within seconds)."""
    from ratecard.api.keys import revoke_key
    from ratecard.store.state import session_scope

    ws = Workspace.open(workspace)
    with session_scope(ws) as s:
        cred = revoke_key(s, key_id)
    if json:
        print_json(cred.to_dict())
        return
    console.print(f"revoked {cred.role} key {cred.key_id}")


@portal_app.command("create")
def portal_create(
    customer: Annotated[str, typer.Option("--customer", help="The customer's id.")],
    name: Annotated[str, typer.Option("--name", help="A label.")] = "",
    expires_in: Annotated[str | None, typer.Option(
        "--expires-in", help="Lifetime like 30d or 12h (default: until revoked).")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a portal token that reads one customer's own usage, invoices and credits."""
    from ratecard.api.keys import create_portal_token
    from ratecard.clock import parse_duration
    from ratecard.store.state import session_scope

    ws = Workspace.open(workspace)
    expires = parse_duration(expires_in) if expires_in else None
    with session_scope(ws) as s:
        created = create_portal_token(s, customer, name, expires)
    if json:
        print_json(created.to_dict())
        return
    console.print(created.token, markup=False, soft_wrap=True)
    console_err.print(f"portal token {created.credential.key_id} for customer {customer} "
                      "created; the token above is shown once")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(portal_app, name="portal-token")
