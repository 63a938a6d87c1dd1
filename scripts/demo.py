"""`make run`: quote every example catalog's plans with its usage file.

This uses the same command a user runs (`ratecard quote`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ratecard.catalog import load_catalog
from ratecard.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEATS = {"copilot_seats": "10"}


def run() -> int:
    failures = 0
    for catalog_file in sorted(EXAMPLES.glob("*.yaml")):
        usage = catalog_file.with_suffix(".usage.json")
        catalog = load_catalog(catalog_file)
        print(f"\n=== {catalog.name or catalog_file.stem} ({catalog_file.name}) ===")
        for plan in catalog.plans:
            args = ["quote", str(catalog_file), "--plan", plan, "--usage", str(usage)]
            if catalog_file.stem in SEATS:
                args += ["--seats", SEATS[catalog_file.stem]]
            code = main(args)
            failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
