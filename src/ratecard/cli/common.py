"""Shared pieces of the CLI: the workspace option, JSON output, tables."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False, soft_wrap=True)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace folder (default $RATECARD_HOME or "
                                            "./.ratecard).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return format(o, "f")
    if hasattr(o, "isoformat"):
        return o.isoformat().replace("+00:00", "Z")
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, ensure_ascii=False)


def print_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()
