"""``ratecard catalog apply FILE [--dry-run]``: store a catalog, versioning changed plans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ratecard.billing.catalogs import apply_catalog
from ratecard.catalog import load_catalog
from ratecard.catalog.loader import catalog_files
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace


def source_text(path: Path) -> str:
    """The text applied: the file, or each file of a folder under a ``# file:`` header."""
    files = catalog_files(path)
    if len(files) == 1 and not path.is_dir():
        return files[0].read_text(encoding="utf-8")
    return "\n".join(f"# file: {f.name}\n{f.read_text(encoding='utf-8')}" for f in files)


def apply(
    file: Annotated[Path, typer.Argument(help="Catalog file or folder.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff, change nothing.")]
    = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Diff FILE against the stored catalog, print the diff, and version each changed plan.

    Subscriptions stay on the plan version they have (grandfathered) until migrated
    with `ratecard plans migrate`.
    """
    catalog = load_catalog(file)
    text = source_text(file)
    ws = Workspace.open(workspace, create=True)
    with session_scope(ws) as session:
        result = apply_catalog(session, catalog, text, dry_run=dry_run)
    if json:
        print_json(result.to_dict())
        return
    for line in result.lines():
        console.print(line, markup=False)
    if dry_run:
        console.print("dry run: nothing applied" + ("" if result.changed else " (no changes)"))
    elif result.changed:
        console.print(f"applied as catalog revision {result.revision}")


def register(app: typer.Typer) -> None:
    from ratecard.cli.catalog import catalog_app

    catalog_app.command("apply")(apply)
