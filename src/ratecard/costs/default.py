"""The price book shipped with ratecard, made from LiteLLM's MIT-licensed price map.

``data/pricebook.json`` is the LiteLLM file converted by :func:`build_default`
(see ``data/NOTICE.txt`` for its source and licence). Rebuild it from a newer copy of
the map with::

    python -m ratecard.costs.default path/to/model_prices_and_context_window.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from ratecard.costs.model import PriceBook
from ratecard.costs.pricefile import import_litellm_report, load_pricebook, write_pricebook

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_FILE = DATA_DIR / "pricebook.json"


@lru_cache(maxsize=1)
def default_book() -> PriceBook:
    """The shipped default price book (read once per process)."""
    data = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"), parse_float=Decimal)
    return load_pricebook(data, where="the bundled price book")


def build_default(source: Path, dest: Path = DEFAULT_FILE) -> PriceBook:
    """Convert a LiteLLM price map into the shipped price book file."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    result = import_litellm_report(source, where=source.name)
    label = f"LiteLLM model price map (MIT), sha256 {digest[:16]}"
    book = PriceBook.build([replace(p, source=label) for p in result.book.all_prices()],
                           source=label)
    write_pricebook(book, dest)
    return book


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - maintenance script
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ratecard.costs.default LITELLM_JSON", file=sys.stderr)
        return 2
    book = build_default(Path(args[0]))
    print(f"wrote {DEFAULT_FILE.name}: {len(book)} models ({book.source})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
