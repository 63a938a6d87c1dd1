"""An event batch as received over HTTP, turned into the lines the usage store validates.

A request body is one of:

* ``application/json``: a single event object, a JSON array of events, or
  ``{"events": [...]}``;
* ``application/x-ndjson`` (or ``application/jsonl``): one event object per line.

The store validates events itself, vectorised, from each event's JSON text
(:meth:`ratecard.store.usage.UsageStore.append_arrow`), so this module does as little
per-event Python as it can: NDJSON is split into lines without parsing; a JSON array
is parsed once (orjson) and each event written back as compact JSON. A body holding
numbers a binary reader would not keep exactly (17 or more digits in a row, or an
exponent below -99) takes the exact path instead: parsed with Decimals and written
exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from ratecard.errors import InvalidInput

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    orjson = None  # type: ignore[assignment]

MAX_BATCH = 10_000
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson",
                "application/json-lines", "application/x-jsonlines")


@dataclass
class Batch:
    """The events of one request: an Arrow table of ``line`` (1-based index) and ``raw``
    (each event's JSON text)."""

    table: pa.Table
    count: int
    single: bool = False
    exact: bool = False  # holds numbers a float64 reader would not keep: read with Decimals


def too_many(n: int) -> InvalidInput:
    return InvalidInput(f"the batch has {n:,} events; send at most {MAX_BATCH:,} per request "
                        "(split it, or use `ratecard events ingest` for files)")


def _table(lines: list[int] | None, raws: list[str]) -> pa.Table:
    numbers = (np.arange(1, len(raws) + 1, dtype=np.int64) if lines is None
               else np.asarray(lines, dtype=np.int64))
    return pa.Table.from_arrays([pa.array(numbers), pa.array(raws, pa.string())],
                                names=["line", "raw"])


def risky(body: bytes) -> bool:
    """Does ``body`` hold a number a binary (float64) reader may not keep exactly?

    The usage store's own test, vectorised: a run of 17 or more digits and points, or
    an exponent below -99 (``e-100``). It may say yes for a long digit string inside
    a string value: that only sends the body down the exact (slower) path.
    """
    buf = np.frombuffer(body, dtype=np.uint8)
    digit = (buf >= 48) & (buf <= 57)
    run = (digit | (buf == 46)).view(np.int8)
    edges = np.diff(run, prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if bool(((ends - starts) >= 17).any()):
        return True
    if len(buf) > 4:
        e = np.flatnonzero((buf[:-4] == 101) | (buf[:-4] == 69))
        if len(e):
            e = e[(buf[e + 1] == 45) & digit[e + 2] & digit[e + 3] & digit[e + 4]]
            return len(e) > 0
    return False


def is_ndjson(content_type: str | None) -> bool:
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    return ct in NDJSON_TYPES


def parse_ndjson(body: bytes) -> Batch:
    """One event per line; blank lines are skipped (numbers are the line positions)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the body is not UTF-8 (byte {e.start})") from None
    lines: list[int] = []
    raws: list[str] = []
    for i, raw in enumerate(text.split("\n"), start=1):
        if raw.strip():
            lines.append(i)
            raws.append(raw)
    if len(raws) > MAX_BATCH:
        raise too_many(len(raws))
    if not raws:
        raise InvalidInput("the body holds no events; send one JSON event per line")
    return Batch(_table(lines, raws), len(raws), exact=risky(body))


def parse_json(body: bytes) -> Batch:
    """A single event, an array of events, or ``{"events": [...]}``."""
    if not body.strip():
        raise InvalidInput('the body is empty; send an event, a list of events or '
                           '{"events": [...]}')
    exact = orjson is None or risky(body)
    data = _loads(body, exact)
    single = False
    if isinstance(data, dict) and "events" in data and set(data) == {"events"}:
        events = data["events"]
        if not isinstance(events, list):
            raise InvalidInput(f'"events" must be a list of events, not '
                               f"{_kind(events)}")
    elif isinstance(data, list):
        events = data
    elif isinstance(data, dict):
        events = [data]
        single = True
    else:
        raise InvalidInput(f"expected an event object, a list of events or "
                           f'{{"events": [...]}}, not {_kind(data)}')
    if len(events) > MAX_BATCH:
        raise too_many(len(events))
    if not events:
        raise InvalidInput("the batch holds no events")
    raws = [_dumps(e, exact) for e in events]
    return Batch(_table(None, raws), len(raws), single, exact=exact)


def _loads(body: bytes, exact: bool) -> Any:
    if not exact:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            if "64-bit" not in str(e):  # an integer too large: the exact path reads it
                raise InvalidInput(f"malformed JSON: {e}") from None
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError) as e:
        raise InvalidInput(f"malformed JSON: {e}") from None


def _dumps(event: Any, exact: bool) -> str:
    if not exact:
        try:
            return orjson.dumps(event).decode("utf-8")
        except TypeError:
            pass
    from ratecard.metering.events import dumps_json

    return dumps_json(event)


def _kind(v: Any) -> str:
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    if v is None:
        return "null"
    return type(v).__name__


def parse_body(body: bytes, content_type: str | None) -> Batch:
    return parse_ndjson(body) if is_ndjson(content_type) else parse_json(body)
