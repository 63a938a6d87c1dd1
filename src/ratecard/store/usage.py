"""The usage store contract: where raw events live and how meters read them.

:class:`UsageStore` is what every backend implements (DuckDB now, ClickHouse later);
``tests/metering/test_store_contract.py`` is its executable contract, parametrised
over backends. :func:`open_usage_store` opens one from a URL
(``duckdb:///path/usage.duckdb``, ``duckdb://:memory:``).

Semantics every backend keeps:

* **Raw events are immutable.** ``append`` stores each new ``event_id`` once; an id
  seen before (in the store or earlier in the same batch) is a *duplicate*: counted,
  never stored twice, the first copy wins. A voided event stays, marked, with its
  reason, and no aggregate counts it; resending it is still a duplicate.
* **Acknowledged means committed.** When ``append``/``append_lines`` returns (or calls
  its ``on_commit``), the events it reports as accepted are durable.
* **Aggregates agree exactly with** :func:`ratecard.metering.meters.aggregate` over
  the same (non-voided) events, whatever the backend computes them from.
* Windows are half-open ``[start, end)``; quantities are exact Decimals.

Optional capabilities (callers look for them with ``getattr``): ``append_arrow(table,
...)`` takes a batch as an Arrow table of ``line``/``raw`` (the bulk ingest and the API
use it when present, else ``append_lines``); ``compact()`` tidies storage after a bulk
ingest; ``usage_table(meters, window=, customers=)`` returns many meters' quantities per
customer and group as one Arrow table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from ratecard.catalog.schema import Meter
from ratecard.clock import Window
from ratecard.errors import InvalidInput
from ratecard.metering.events import EventRules, PropertyChecks
from ratecard.metering.model import Event, GroupKey, MeterUsage

Grain = Literal["hour", "day"]


@dataclass(frozen=True)
class Rejection:
    """One refused input line: where it was, its event id when known, and why."""

    line: int
    reason: str
    event_id: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"line": self.line, "reason": self.reason}
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.source is not None:
            out["source"] = self.source
        return out


@dataclass
class AppendResult:
    """What one append did: new events stored, duplicates skipped, lines rejected."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def add(self, other: AppendResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored, with its ingest time and void status."""

    event: Event
    ingested_at: datetime
    voided_at: datetime | None = None
    void_reason: str | None = None

    @property
    def voided(self) -> bool:
        return self.voided_at is not None


@dataclass(frozen=True)
class SeriesPoint:
    """The quantity of one meter in one time bucket (and group)."""

    customer: str
    bucket: datetime
    quantity: Decimal
    group: GroupKey = ()


@dataclass(frozen=True)
class Line:
    """One input line of a batch: its number in the source and its JSON text."""

    number: int
    text: str


Progress = Callable[[AppendResult], None]


@runtime_checkable
class UsageStore(Protocol):
    """The usage store contract (see the module docstring for the semantics)."""

    url: str

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Store already-validated events, deduplicating on ``event_id``; durable on return."""
        ...

    def append_lines(
        self,
        lines: Sequence[Line],
        *,
        checks: PropertyChecks | None = None,
        rules: EventRules | None = None,
        now: datetime | None = None,
        source: str | None = None,
    ) -> AppendResult:
        """Validate JSON lines with :func:`ratecard.metering.events.parse_event`'s rules and
        store the good ones in one transaction; bad lines come back as rejections."""
        ...

    def sync_meters(self, meters: Mapping[str, Meter]) -> None:
        """Tell the store which meters are read, so it can keep rollups for them."""
        ...

    def aggregate(
        self,
        meter: Meter,
        *,
        window: Window,
        customers: Sequence[str] | None = None,
        group_by: Sequence[str] | None = None,
        key: str = "",
        values: bool = False,
    ) -> dict[str, MeterUsage]:
        """The meter's usage per customer (every customer with events when ``None``)."""
        ...

    def series(
        self,
        meter: Meter,
        *,
        window: Window,
        grain: Grain = "day",
        customers: Sequence[str] | None = None,
        group_by: Sequence[str] | None = None,
    ) -> list[SeriesPoint]:
        """The meter's quantity per UTC hour or day bucket (only buckets with events)."""
        ...

    def scan(
        self,
        *,
        window: Window | None = None,
        customers: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        include_voided: bool = False,
    ) -> Iterator[Event]:
        """Events in ``(timestamp, event_id)`` order, voided ones left out unless asked."""
        ...

    def get(self, event_id: str) -> StoredEvent | None: ...

    def void(self, event_id: str, reason: str, *, at: datetime | None = None) -> StoredEvent:
        """Retract an event: kept, marked with the reason, excluded from every aggregate."""
        ...

    def customers(self, window: Window | None = None) -> list[str]: ...

    def stats(self) -> dict[str, object]: ...

    def close(self) -> None: ...


def open_usage_store(url: str, *, read_only: bool = False) -> UsageStore:
    """Open the usage store at ``url`` (``duckdb:///path/file.duckdb`` or ``duckdb://:memory:``)."""
    if url.startswith("duckdb://"):
        from ratecard.store.duckdb_store import DuckDBUsageStore

        return DuckDBUsageStore.open(url, read_only=read_only)
    if url.startswith(("clickhouse://", "chdb://")):
        from ratecard.store.clickhouse_store import ClickHouseUsageStore

        return ClickHouseUsageStore.open(url, read_only=read_only)
    raise InvalidInput(
        f"usage store URL {url!r} is not supported; use duckdb:///path/to/usage.duckdb"
    )
