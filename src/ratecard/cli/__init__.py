"""The ``ratecard`` command line.

Each module in this package adds its commands through ``register(app)``; this
module discovers them, so a new domain adds a file and touches nothing else.
Errors a user can cause (:class:`ratecard.errors.RatecardError`) are printed as
one line on standard error with the error's exit code, never as a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import typer
import typer.main

from ratecard.cli.common import console_err
from ratecard.errors import RatecardError

app = typer.Typer(
    name="ratecard",
    help="Meter, price, bill and simulate AI products, and see their margins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _discover() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_") or mod.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_discover()


_built: dict[tuple[int, int], Any] = {}


def command() -> Any:
    """The click command tree, built once (building it costs ~0.4 s, every call of main)."""
    key = (len(app.registered_commands), len(app.registered_groups))
    if key not in _built:
        _built.clear()
        _built[key] = typer.main.get_command(app)
    return _built[key]


def main(argv: list[str] | None = None) -> int:
    try:
        result = command()(args=argv, standalone_mode=False)
        if isinstance(result, int) and not isinstance(result, bool):
            return result  # typer.Exit(code) is returned, not raised, outside standalone mode
    except RatecardError as e:
        console_err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        console_err.print("aborted")
        return 130
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


def entry() -> None:  # pragma: no cover - console script
    sys.exit(main())
