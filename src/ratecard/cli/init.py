"""``ratecard init [DIR]``: make a workspace (config, transactional database, usage store)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.workspace import CONFIG_NAME, Workspace, default_dir


def init(
    directory: Annotated[Path | None, typer.Argument(
        metavar="[DIR]", help="Folder to create (default $RATECARD_HOME or ./.ratecard).",
        show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a workspace: ratecard.toml, the state database and the usage store.

    Running it again on an existing workspace changes nothing and says so.
    """
    if directory is not None and workspace is not None and directory != workspace:
        from ratecard.errors import InvalidInput

        raise InvalidInput("give the folder as DIR or as --workspace, not both")
    path = directory or workspace or default_dir()
    existed = (path / CONFIG_NAME).exists()
    ws = Workspace.open(path, create=True)
    from ratecard.store.state import session_factory
    from ratecard.store.usage import open_usage_store

    session_factory(ws)  # creates the schema
    store = open_usage_store(ws.usage_url)
    store.close()
    info = {"workspace": str(ws.path), "config": str(ws.path / CONFIG_NAME),
            "database_url": _redact(ws.database_url), "usage_url": ws.usage_url,
            "created": not existed}
    if json:
        print_json(info)
        return
    if existed:
        console.print(f"{ws.path} is already a workspace; nothing changed", markup=False)
    else:
        console.print(f"created workspace {ws.path}", markup=False)
    console.print(f"  config    {info['config']}", markup=False)
    console.print(f"  database  {info['database_url']}", markup=False)
    console.print(f"  usage     {info['usage_url']}", markup=False)
    if not existed:
        console.print("next: ratecard catalog apply CATALOG.yaml, then "
                      "ratecard events ingest EVENTS.jsonl", markup=False)


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def register(app: typer.Typer) -> None:
    app.command("init")(init)
