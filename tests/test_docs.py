"""Docs cannot drift: every CLI command and every price model is documented."""

from pathlib import Path
from typing import Any

import typer.main

from ratecard.catalog.schema import PRICE_MODELS
from ratecard.cli import app

ROOT = Path(__file__).resolve().parent.parent


def docs_text() -> str:
    parts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    parts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(parts)


def command_paths() -> list[str]:
    root = typer.main.get_command(app)
    out: list[str] = []

    def walk(cmd: Any, prefix: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*prefix, name])
        else:
            out.append(" ".join(prefix))

    walk(root, [])
    return sorted(out)


def test_every_cli_command_is_documented() -> None:
    text = docs_text()
    commands = command_paths()
    assert "quote" in commands and "catalog validate" in commands
    missing = [c for c in commands if f"ratecard {c}" not in text]
    assert missing == [], f"document these commands in docs/ or README.md: {missing}"


def test_every_price_model_is_documented() -> None:
    text = (ROOT / "docs" / "catalog.md").read_text(encoding="utf-8")
    missing = [m for m in PRICE_MODELS if f"| `{m}` |" not in text]
    assert missing == []


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
