"""JSON responses that keep money exact, and pagination.

Every route answers through :func:`ok` (or :class:`Json`): ``Decimal`` is written
as a string (``"12.50"``), never a binary float; datetimes as RFC 3339 with ``Z``.

Lists paginate with ``?limit=&cursor=`` and answer ``{"data": [...], "next_cursor":
"..." | null}``; pass ``next_cursor`` back as ``cursor`` for the next page.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel

from ratecard.errors import InvalidInput

try:  # orjson is much faster on event batches; the stdlib works too
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    orjson = None  # type: ignore[assignment]

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return format(o, "f") if o.is_finite() else str(o)
    if isinstance(o, datetime):
        if o.tzinfo is not None:
            o = o.astimezone(UTC)
        return o.isoformat().replace("+00:00", "Z")
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    if isinstance(o, Mapping):
        return dict(o)
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json")
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        if hasattr(o, "to_dict"):
            return o.to_dict()
        if hasattr(o, "as_dict"):
            return o.as_dict()
        return dataclasses.asdict(o)
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def dumps(data: Any) -> bytes:
    """Compact JSON bytes: Decimals as strings, datetimes in UTC with ``Z``."""
    if orjson is not None:
        try:
            return orjson.dumps(data, default=_default,
                                option=orjson.OPT_PASSTHROUGH_DATETIME
                                | orjson.OPT_PASSTHROUGH_DATACLASS
                                | orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass  # e.g. integers beyond 64 bits: the stdlib handles them
    return json.dumps(data, default=_default, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


class Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def ok(data: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Json:
    return Json(data, status_code=status_code, headers=dict(headers) if headers else None)


# --------------------------------------------------------------------------- pagination


LimitQ = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-1000).")]
CursorQ = Annotated[str | None, Query(max_length=500,
                                      description="`next_cursor` of the previous page.")]


def encode_cursor(key: Any) -> str:
    raw = json.dumps(key, default=_default, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        pad = "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(cursor + pad).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not valid; pass the next_cursor of the previous page unchanged"
        ) from None


def paginate(items: Sequence[T], key: Callable[[T], Any], limit: int,
             cursor: str | None) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``, ascending): those after ``cursor``.

    ``key`` returns a JSON-able sort key (a string, a number or a list of them) that
    is unique per item. The cursor carries the last key seen, so a page never
    repeats or skips items that were there before the previous page was read.
    """
    ordered = sorted(items, key=lambda it: _sortable(key(it)))
    if cursor is not None:
        after = _sortable(decode_cursor(cursor))
        try:
            ordered = [it for it in ordered if _sortable(key(it)) > after]
        except TypeError:
            raise InvalidInput("cursor does not belong to this list; start again without "
                               "a cursor") from None
    page = ordered[:limit]
    nxt = encode_cursor(key(page[-1])) if len(ordered) > limit and page else None
    return page, nxt


def _sortable(k: Any) -> Any:
    if isinstance(k, list):
        return tuple(_sortable(x) for x in k)
    if isinstance(k, datetime):
        return _default(k)
    return k


def page(items: Sequence[Any], key: Callable[[Any], Any], limit: int, cursor: str | None,
         render: Callable[[Any], Any] | None = None) -> Json:
    """A paginated list response: ``{"data": [...], "next_cursor": ...}``."""
    chunk, nxt = paginate(items, key, limit, cursor)
    data = [render(x) for x in chunk] if render is not None else list(chunk)
    return ok({"data": data, "next_cursor": nxt})
