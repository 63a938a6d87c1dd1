"""Metering services: ingest, voids and usage queries over a workspace's usage store.

The ingest functions take the catalog as a parameter (or read the one the
workspace rates with, through :func:`workspace_catalog`) and never care where it
came from. Reading the catalog opens a read-only session on the state database;
nothing here writes to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa

from ratecard.catalog.schema import Catalog, Meter
from ratecard.clock import Window, iso, utc_now
from ratecard.errors import InvalidInput, NotFound
from ratecard.metering.events import EventRules, PropertyChecks
from ratecard.metering.ingest import IngestReport, Progress, ingest_sources
from ratecard.metering.model import MeterUsage
from ratecard.money import to_str
from ratecard.store.usage import AppendResult, StoredEvent, UsageStore
from ratecard.workspace import Workspace

_checks_cache: dict[tuple[str, int | None], tuple[Catalog | None, PropertyChecks | None]] = {}


def rules_for(ws: Workspace) -> EventRules:
    """The workspace's ``[events]`` time limits."""
    return EventRules.from_settings(
        ws.setting("events", "late_event_days", None),
        ws.setting("events", "future_tolerance_minutes", None),
    )


def workspace_catalog(ws: Workspace) -> Catalog | None:
    """The catalog the workspace rates with (``None`` when none was applied)."""
    return _catalog_and_checks(ws)[0]


def _catalog_and_checks(ws: Workspace) -> tuple[Catalog | None, PropertyChecks | None]:
    from ratecard.billing.catalogs import current_catalog, current_revision
    from ratecard.store.state import session_scope

    with session_scope(ws) as session:
        revision = current_revision(session)
        key = (ws.database_url, revision)
        hit = _checks_cache.get(key)
        if hit is not None:
            return hit
        catalog = current_catalog(session)
    checks = PropertyChecks(catalog) if catalog is not None else None
    _checks_cache.clear()
    _checks_cache[key] = (catalog, checks)
    return catalog, checks


def ingest_table(
    ws: Workspace,
    store: UsageStore,
    table: pa.Table,
    *,
    source: str | None = None,
    now: datetime | None = None,
    catalog: Catalog | None = None,
) -> AppendResult:
    """Validate, deduplicate and store one batch (``line``/``raw`` Arrow table) in one
    transaction; the API's ingest path. Uses the workspace's catalog unless given one."""
    if catalog is None:
        catalog, checks = _catalog_and_checks(ws)
    else:
        checks = PropertyChecks(catalog)
    if catalog is not None:
        store.sync_meters(catalog.meters)
    append_arrow = getattr(store, "append_arrow", None)
    rules = rules_for(ws)
    if append_arrow is not None:
        result: AppendResult = append_arrow(table, checks=checks, rules=rules,
                                            now=now or utc_now(), source=source)
        return result
    from ratecard.store.usage import Line

    lines = [Line(n, t) for n, t in zip(table.column("line").to_pylist(),
                                        table.column("raw").to_pylist(), strict=True)]
    return store.append_lines(lines, checks=checks, rules=rules, now=now or utc_now(),
                              source=source)


def ingest_files(
    ws: Workspace,
    store: UsageStore,
    sources: Sequence[str],
    *,
    catalog: Catalog | None,
    fmt: str | None = None,
    batch_bytes: int | None = None,
    rejects: IO[str] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_commit: Callable[[str, int, AppendResult], None] | None = None,
    now: Callable[[], datetime] | None = None,
) -> IngestReport:
    """Ingest files with the workspace's rules (see :mod:`ratecard.metering.ingest`)."""
    kw: dict[str, Any] = {}
    if batch_bytes:
        kw["batch_bytes"] = batch_bytes
    return ingest_sources(store, sources, catalog=catalog, rules=rules_for(ws), fmt=fmt,
                          rejects=rejects, on_progress=on_progress, on_commit=on_commit,
                          now=now, **kw)


def void_event(store: UsageStore, event_id: str, reason: str) -> StoredEvent:
    """Retract an event: kept and marked with the reason, excluded from every aggregate."""
    return store.void(event_id, reason)


def find_meter(catalog: Catalog | None, name: str) -> Meter:
    if catalog is None:
        raise NotFound(
            "no catalog is applied, so no meter is defined; apply one with "
            "`ratecard catalog apply FILE`"
        )
    try:
        return catalog.meters[name]
    except KeyError:
        known = ", ".join(sorted(catalog.meters)) or "none"
        raise NotFound(f"no meter {name!r} in the applied catalog; meters: {known}") from None


def customer_usage(
    store: UsageStore,
    catalog: Catalog | None,
    *,
    customer: str,
    meter: str,
    window: Window,
    group_by: Sequence[str] | None = None,
) -> MeterUsage:
    """What ``customer`` used of ``meter`` in ``window`` (the point query)."""
    m = find_meter(catalog, meter)
    if not customer.strip():
        raise InvalidInput("--customer is blank; give the customer's id")
    got = store.aggregate(m, window=window, customers=[customer], group_by=group_by, key=meter)
    return got[customer]


def usage_json(customer: str, window: Window, usage: MeterUsage) -> dict[str, Any]:
    """The JSON answer of ``ratecard usage``: quantities as decimal strings."""
    groups = [
        {"group": dict(zip(usage.group_by, key, strict=True)), "quantity": to_str(q)}
        for key, q in sorted(usage.groups.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {
        "customer": customer,
        "meter": usage.meter,
        "from": iso(window.start),
        "to": iso(window.end),
        "quantity": to_str(usage.quantity),
        "group_by": list(usage.group_by),
        "groups": groups,
    }


def total(usages: Sequence[MeterUsage]) -> Decimal:
    return sum((u.quantity for u in usages), Decimal(0))
