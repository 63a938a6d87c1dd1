"""``ratecard catalog lint FILE``: the playbook's pricing anti-patterns in a catalog.

Prints every finding with its reason and fix; exits 1 when a finding of severity
``error`` exists, 0 otherwise (warnings alone pass). ``--margins FILE`` (YAML or JSON,
plan code → real gross margin as a fraction) enables the margin-below-target rule.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape

from ratecard.advisor.lint import Finding, lint_catalog, parse_margins
from ratecard.catalog import load_catalog
from ratecard.cli.catalog import catalog_app
from ratecard.cli.common import JsonOpt, console, print_json
from ratecard.errors import InvalidInput


def read_margins(path: Path) -> dict[str, Decimal]:
    """Plan margins from a YAML or JSON file (``{plan: "0.62"}`` or a margins report)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read the margins file ({e.strerror})") from None
    try:
        data = (json.loads(text, parse_float=Decimal) if text.lstrip().startswith(("{", "["))
                else yaml.safe_load(text))
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise InvalidInput(f"{path}: not valid YAML or JSON: {e}") from None
    return parse_margins(data, source=str(path))


def lint_report(file: str, findings: list[Finding]) -> dict[str, object]:
    errors = sum(1 for f in findings if f.severity == "error")
    return {"file": file, "ok": errors == 0, "errors": errors,
            "warnings": len(findings) - errors, "findings": [f.as_dict() for f in findings]}


@catalog_app.command("lint")
def lint(
    file: Annotated[Path, typer.Argument(help="Catalog file or folder.")],
    margins: Annotated[Path | None, typer.Option(
        "--margins", help="YAML/JSON mapping plan code → real gross margin (0.55 for 55%), "
                          "e.g. from the margins report.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Flag the playbook's pricing anti-patterns, each with the reason and the fix.

    Exit 1 when an error-level finding exists.
    """
    catalog = load_catalog(file)
    plan_margins = read_margins(margins) if margins is not None else None
    findings = lint_catalog(catalog, margins=plan_margins)
    report = lint_report(str(file), findings)
    if json_out:
        print_json(report)
    else:
        if not findings:
            console.print(f"✓ {escape(str(file))}: no pricing anti-patterns found")
        for f in findings:
            style = "red" if f.severity == "error" else "yellow"
            console.print(f"[{style}]{f.severity}[/{style}] {escape(f.path)} "
                          f"[bold]{f.rule}[/bold]", soft_wrap=True)
            console.print(f"  why: {escape(f.message)}", soft_wrap=True)
            console.print(f"  fix: {escape(f.fix)}", soft_wrap=True)
        if findings:
            console.print(f"{report['errors']} error(s), {report['warnings']} warning(s)")
    if report["errors"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """The command hangs off the catalog group, which ``ratecard.cli.catalog`` registers."""
