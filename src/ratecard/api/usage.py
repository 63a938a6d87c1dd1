"""The app's usage store, and the API's ingest path from HTTP batches to stored events.

One usage store per app, opened on first use and shared by every request (DuckDB
allows one writing connection per file; the dashboard shares it through
:func:`ratecard.api.deps.usage_store_of`).

**Ingest** (:class:`Ingestor`) is a small pipeline with group commit:

1. each request's batch is parsed in the request's thread (ids and events read once);
2. one *append* thread takes every batch waiting and appends them to the store in one
   transaction (:func:`ratecard.metering.service.ingest_table`, which validates,
   deduplicates and stores): the store's cost per append is paid once for many
   requests, which is what makes batches of 1,000 fast;
3. one *hook* thread hands the events each append stored to the entitlements hook
   (:func:`ratecard.entitlements.service.on_events_ingested`: check counters, credit
   burns) while the next append runs;
4. each request is answered when its events are durable and counted.

Requests are merged only when their answers can be told apart: a batch holding an event
id seen recently (a retry) or also in another waiting batch is appended on its own, so
``accepted`` and ``duplicates`` stay exact per request. When a merged append still
reports duplicates (ids stored before the server started), the events it stored are
told apart by their ingest time, one lookup each.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from ratecard.api.batch import Batch
from ratecard.workspace import Workspace

log = logging.getLogger("ratecard.api")
_open_lock = threading.Lock()

MAX_MERGE_EVENTS = 50_000
HOOK_SLICE = 2_000
RECENT_IDS = 500_000


def usage_store(app: Any) -> Any:
    """The usage store of the app's workspace, opened once."""
    store = getattr(app.state, "usage_store", None)
    if store is not None:
        return store
    with _open_lock:
        store = getattr(app.state, "usage_store", None)
        if store is None:
            from ratecard.store.usage import open_usage_store

            ws: Workspace = app.state.workspace
            store = open_usage_store(ws.usage_url)
            app.state.usage_store = store
    return store


def close_usage_store(app: Any) -> None:
    ingestor = getattr(app.state, "ingestor", None)
    if ingestor is not None:
        ingestor.stop()
        app.state.ingestor = None
    store = getattr(app.state, "usage_store", None)
    if store is not None:
        app.state.usage_store = None
        store.close()


def ingestor_of(app: Any) -> Ingestor:
    ing = getattr(app.state, "ingestor", None)
    if ing is None:
        with _open_lock:
            ing = getattr(app.state, "ingestor", None)
            if ing is None:
                ing = Ingestor(app.state.workspace, lambda: usage_store(app))
                app.state.ingestor = ing
    assert isinstance(ing, Ingestor)
    return ing


def ingest_batch(app: Any, batch: Batch) -> dict[str, Any]:
    """Store one batch and answer per event: accepted and duplicate counts, and each
    rejected event with its position (``index``, from 1), its id and the reason."""
    return ingestor_of(app).submit(batch)


# --------------------------------------------------------------------------- pipeline


@dataclass
class Pending:
    """One request waiting for its answer."""

    batch: Batch
    objs: list[Any | None]  # per line: the decoded object, None when it is not one
    ids: set[str]
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None
    error: BaseException | None = None


@dataclass
class Group:
    """Requests appended in one transaction."""

    items: list[Pending]
    objs: list[Any] = field(default_factory=list)  # what the append stored, as decoded
    events: list[Any] | None = None  # the same, as Events (when a lookup was needed)
    started: datetime | None = None


def read_ids(batch: Batch) -> tuple[list[Any | None], set[str]]:
    """Each line's decoded JSON object (``None`` when it is not one) and the event ids:
    enough to decide merges; the store decides what it accepts."""
    import orjson

    from ratecard.metering.events import loads

    read = loads if batch.exact else orjson.loads
    objs: list[Any | None] = []
    ids: set[str] = set()
    for raw in batch.table.column("raw").to_pylist():
        try:
            obj = read(raw)
        except ValueError:
            objs.append(None)
            continue
        if not isinstance(obj, dict):
            objs.append(None)
            continue
        objs.append(obj)
        eid = obj.get("event_id")
        if isinstance(eid, str | int) and not isinstance(eid, bool):
            ids.add(str(eid))
    return objs, ids


def to_events(objs: Sequence[Any], started: datetime) -> list[Any]:
    """Stored events as :class:`~ratecard.metering.model.Event` values (the store took
    them, so they read; one that does not is left out)."""
    from ratecard.metering.events import EventRules, parse_event

    anytime = EventRules(late=timedelta(days=365 * 1000), future=timedelta(days=365 * 1000))
    out = []
    for obj in objs:
        try:
            out.append(parse_event(obj, rules=anytime, now=started, size=0))
        except Exception:
            continue
    return out


class Ingestor:
    """Group commit of API batches into the usage store, then the ingestion hook."""

    def __init__(self, ws: Workspace, store: Any) -> None:
        self.ws = ws
        self._store = store
        self._queue: queue.Queue[Pending | None] = queue.Queue()
        self._hooks: queue.Queue[Group | None] = queue.Queue(maxsize=4)
        self._recent: set[str] = set()
        self._recent_order: deque[str] = deque()
        self._appender = threading.Thread(target=self._append_loop, name="ratecard-append",
                                          daemon=True)
        self._hooker = threading.Thread(target=self._hook_loop, name="ratecard-hook",
                                        daemon=True)
        self._appender.start()
        self._hooker.start()

    def submit(self, batch: Batch) -> dict[str, Any]:
        objs, ids = read_ids(batch)
        p = Pending(batch, objs, ids)
        self._queue.put(p)
        p.done.wait()
        if p.error is not None:
            raise p.error
        assert p.answer is not None
        return p.answer

    def stop(self) -> None:
        self._queue.put(None)
        self._appender.join(timeout=30)

    # ------------------------------------------------------------------ append thread

    def _take(self) -> list[Pending] | None:
        first = self._queue.get()
        if first is None:
            return None
        taken = [first]
        size = first.batch.count
        while size < MAX_MERGE_EVENTS:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)
                break
            taken.append(nxt)
            size += nxt.batch.count
        return taken

    def _groups(self, taken: list[Pending]) -> list[list[Pending]]:
        """Merge what can be told apart; a likely retry or an overlap goes alone."""
        merged: list[Pending] = []
        alone: list[list[Pending]] = []
        seen: set[str] = set()
        for p in taken:
            if p.ids & self._recent or p.ids & seen:
                alone.append([p])
            else:
                merged.append(p)
                seen |= p.ids
        return ([merged] if merged else []) + alone

    def _append_loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                self._hooks.put(None)
                return
            for items in self._groups(taken):
                try:
                    group = self._append(items)
                except BaseException as e:  # answer every request of the group
                    for p in items:
                        p.error = e
                        p.done.set()
                    continue
                self._hooks.put(group)

    def _append(self, items: list[Pending]) -> Group:
        from ratecard.clock import utc_now
        from ratecard.metering.service import ingest_table

        store = self._store()
        offsets = []
        total = 0
        for p in items:
            offsets.append(total)
            total += p.batch.count
        # lines numbered by position in the group; answers map them back to each request
        lines = pa.array(np.arange(1, total + 1, dtype=np.int64))
        raws = pa.chunked_array([c for p in items for c in p.batch.table.column("raw").chunks],
                                type=pa.string())
        table = pa.Table.from_arrays([lines, raws.combine_chunks()], names=["line", "raw"])
        started = utc_now()
        result = ingest_table(self.ws, store, table, source="api")
        originals = [p.batch.table.column("line").to_pylist() for p in items]
        rejected: list[list[dict[str, Any]]] = [[] for _ in items]
        for r in result.rejected:
            k = max(0, _owner(offsets, r.line))
            pos = r.line - offsets[k]
            index = originals[k][pos - 1] if 1 <= pos <= len(originals[k]) else pos
            rejected[k].append({"index": index, "event_id": r.event_id, "reason": r.reason})
        stored, looked_up = self._stored(store, items, offsets, result, started)
        group = Group(items, started=started)
        if looked_up:
            group.events = []
        single = len(items) == 1
        for k, p in enumerate(items):
            mine = stored[k]
            valid = p.batch.count - len(rejected[k])
            p.answer = {
                "accepted": result.accepted if single else len(mine),
                "duplicates": result.duplicates if single else valid - len(mine),
                "rejected": sorted(rejected[k], key=lambda x: x["index"]),
            }
            if group.events is not None:
                group.events.extend(mine)
            else:
                group.objs.extend(mine)
            for item in mine:
                self._remember(item.event_id if looked_up else _id(item))
        return group

    def _stored(self, store: Any, items: list[Pending], offsets: list[int], result: Any,
                started: datetime) -> tuple[list[list[Any]], bool]:
        """What each request got stored (first copy wins; rejected lines out): decoded
        objects, or, when the append also met ids stored before, the stored Events
        (``True`` second)."""
        bad_lines = {r.line for r in result.rejected}
        per: list[list[Any]] = []
        seen: set[str] = set()
        for p, offset in zip(items, offsets, strict=True):
            mine = []
            for pos, obj in enumerate(p.objs, start=1):
                if obj is None or offset + pos in bad_lines:
                    continue
                eid = _id(obj)
                if eid in seen:
                    continue
                seen.add(eid)
                mine.append(obj)
            per.append(mine)
        stored_ids = getattr(result, "stored_ids", None)
        if stored_ids is not None:  # the store names what this append stored (ClickHouse)
            keep = set(stored_ids)
            return [[o for o in mine if _id(o) in keep] for mine in per], False
        if result.duplicates == 0 and sum(len(m) for m in per) == result.accepted:
            return per, False
        if result.accepted == 0:
            return [[] for _ in items], False
        # some were stored before: keep those this append stored (ingested from `started`)
        out = []
        for mine in per:
            kept = []
            for obj in mine:
                got = store.get(_id(obj))
                if got is not None and got.ingested_at >= started:
                    kept.append(got.event)
            out.append(kept)
        return out, True

    def _remember(self, event_id: str) -> None:
        if event_id in self._recent:
            return
        self._recent.add(event_id)
        self._recent_order.append(event_id)
        if len(self._recent_order) > RECENT_IDS:
            self._recent.discard(self._recent_order.popleft())

    # ------------------------------------------------------------------ hook thread

    def _hook_loop(self) -> None:
        while True:
            group = self._hooks.get()
            if group is None:
                return
            try:
                events = group.events
                if events is None:
                    assert group.started is not None
                    events = to_events(group.objs, group.started)
                if events:
                    after_ingest(self.ws, events)
            except Exception:  # the events are durable: answer so; counters can be rebuilt
                log.exception("ingest: events stored, but updating the entitlement "
                              "counters failed; rebuild them from the events")
            finally:
                for p in group.items:
                    p.done.set()


def _id(obj: Any) -> str:
    eid = obj.get("event_id")
    return eid if isinstance(eid, str) else str(eid)


def _owner(offsets: Sequence[int], line: int) -> int:
    """The request a group line number belongs to."""
    import bisect

    return bisect.bisect_left(list(offsets), line) - 1


def after_ingest(ws: Workspace, events: Sequence[Any]) -> None:
    """Keep entitlement counters and credit burns current with newly stored events."""
    from ratecard.entitlements.service import on_events_ingested
    from ratecard.metering.service import workspace_catalog
    from ratecard.store.state import session_scope

    catalog = workspace_catalog(ws)
    if catalog is None:
        return
    # in slices: on SQLite a write transaction holds the database's one writer lock, and
    # entitlement checks wait for it
    for i in range(0, len(events), HOOK_SLICE):
        with session_scope(ws) as session:
            on_events_ingested(session, events[i:i + HOOK_SLICE], catalog)


def void_event(app: Any, event_id: str, reason: str) -> Any:
    """Void an event in the store, then take it out of the entitlement counters."""
    from ratecard.entitlements.service import on_event_voided
    from ratecard.metering import service
    from ratecard.store.state import session_scope

    ws: Workspace = app.state.workspace
    store = usage_store(app)
    before = store.get(event_id)
    stored = service.void_event(store, event_id, reason)
    catalog = service.workspace_catalog(ws)
    if catalog is not None and before is not None and not before.voided:
        with session_scope(ws) as session:
            on_event_voided(session, stored.event, catalog)
    return stored
