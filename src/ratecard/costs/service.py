"""Which price book applies in a workspace, and importing price files into it.

The effective price book is built in layers:

1. the workspace's ``pricebook.json`` (written by ``ratecard costs import``), else the
   price book shipped with ratecard (made from LiteLLM's price map);
2. the catalog's ``costs:`` on top (a model the catalog prices replaces every version
   the book has for it; meter unit costs are added per meter).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ratecard.catalog.schema import Catalog, Costs
from ratecard.costs.default import default_book
from ratecard.costs.model import PriceBook
from ratecard.costs.pricefile import (
    ImportResult,
    combine,
    load_pricebook,
    merge_catalog_costs,
    read_price_file,
    write_pricebook,
)
from ratecard.workspace import Workspace

PRICEBOOK_NAME = "pricebook.json"


def pricebook_path(ws: Workspace) -> Path:
    return ws.path / PRICEBOOK_NAME


def base_book(ws: Workspace | None) -> PriceBook:
    """The workspace's imported price book, else the shipped default."""
    if ws is not None:
        path = pricebook_path(ws)
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
            return load_pricebook(data, where=str(path))
    return default_book()


def effective_book(ws: Workspace | None, costs: Costs | None = None) -> PriceBook:
    """The base book with a catalog's ``costs:`` laid over it."""
    book = base_book(ws)
    if costs is not None and (costs.models or costs.meters):
        book = merge_catalog_costs(book, costs)
    return book


def applied_costs(ws: Workspace) -> Costs | None:
    """The ``costs:`` of the catalog applied in ``ws`` (``None`` when there is none)."""
    from ratecard.billing.catalogs import current_catalog
    from ratecard.store.state import session_scope

    if not _has_state(ws):
        return None
    with session_scope(ws) as session:
        catalog: Catalog | None = current_catalog(session)
    return catalog.costs if catalog is not None else None


def _has_state(ws: Workspace) -> bool:
    url = ws.database_url
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).exists()
    return True


def import_price_file(ws: Workspace, file: Path, *, valid_from: datetime | None = None
                      ) -> tuple[ImportResult, PriceBook]:
    """Read ``file`` and store it as the workspace's price book.

    Without ``valid_from`` the file replaces the workspace's book. With it, the
    file's prices take over at ``valid_from``: each model it prices keeps its
    earlier prices (from the workspace book, else the shipped default) up to then.
    Returns what was read and the book stored.
    """
    result = read_price_file(file, valid_from=valid_from)
    book = result.book
    if valid_from is not None:
        book = combine(base_book(ws), book, valid_from)
    write_pricebook(book, pricebook_path(ws))
    return result, book
