"""``POST /v1/events``: one event or a batch of up to 10,000, each answered.

The answer counts the events stored (``accepted``), those whose ``event_id`` was seen
before (``duplicates``: a resent batch is safe) and lists each rejected event with its
position in the batch (``index``, from 1), its id when known and the reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ratecard.api.auth import access
from ratecard.api.batch import MAX_BATCH, parse_body
from ratecard.api.http import Json, ok
from ratecard.api.usage import ingest_batch, usage_store, void_event
from ratecard.errors import NotFound

router = APIRouter(tags=["events"])

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "customer"],
    "properties": {
        "event_id": {"type": "string", "description": "Idempotency key (unique per event)."},
        "type": {"type": "string", "example": "llm.request"},
        "customer": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time",
                      "description": "RFC 3339 with an offset; default now."},
        "properties": {"type": "object"},
    },
}
BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": [
                EVENT_SCHEMA,
                {"type": "array", "items": EVENT_SCHEMA, "maxItems": MAX_BATCH},
                {"type": "object", "required": ["events"], "properties": {
                    "events": {"type": "array", "items": EVENT_SCHEMA,
                               "maxItems": MAX_BATCH}}},
            ]}},
            "application/x-ndjson": {"schema": {
                "type": "string", "description": "One JSON event per line."}},
        },
    },
}
ANSWER_DOC: dict[int | str, dict[str, Any]] = {200: {
    "description": "What happened to each event",
    "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["accepted", "duplicates", "rejected"],
        "properties": {
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "rejected": {"type": "array", "items": {"type": "object", "properties": {
                "index": {"type": "integer"}, "event_id": {"type": "string"},
                "reason": {"type": "string"}}}},
        },
    }}},
}}


def _ingest_access() -> dict[str, Any]:
    kw = access("ingest")
    kw["openapi_extra"] = {**kw["openapi_extra"], **BODY_DOC}
    return kw


@router.post("/v1/events", summary="Send one event or a batch of up to 10,000",
             responses=ANSWER_DOC, **_ingest_access())
async def ingest(request: Request) -> Json:
    body = await request.body()
    batch = parse_body(body, request.headers.get("content-type"))
    result = await run_in_threadpool(ingest_batch, request.app, batch)
    return ok(result)


EventIdPath = Annotated[str, Path(min_length=1, max_length=256)]


class EventVoid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="Why (kept with the event).")


def stored_json(stored: Any) -> dict[str, Any]:
    from ratecard.metering.events import event_to_json

    return {**event_to_json(stored.event), "ingested_at": stored.ingested_at,
            "voided_at": stored.voided_at, "void_reason": stored.void_reason}


@router.get("/v1/events/{event_id}", summary="One stored event, with its void status",
            **access("read"))
def show(request: Request, event_id: EventIdPath) -> Json:
    got = usage_store(request.app).get(event_id)
    if got is None:
        raise NotFound(f"no event {event_id!r} in the usage store")
    return ok(stored_json(got))


@router.post("/v1/events/{event_id}/void", **access(),
             summary="Void (retract) an event: kept, marked, left out of every aggregate")
def void(request: Request, event_id: EventIdPath, body: EventVoid) -> Json:
    return ok(stored_json(void_event(request.app, event_id, body.reason)))
