"""API keys and portal tokens over the API (admin only): the same service as the CLI."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api import keys as keys_service
from ratecard.api.auth import access
from ratecard.api.deps import transaction
from ratecard.api.http import CursorQ, Json, LimitQ, ok, page
from ratecard.clock import parse_duration

router = APIRouter(tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "ingest", "read"]
    name: str = Field("", max_length=200)


class PortalTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)
    expires_in: str | None = Field(None, max_length=20,
                                   description="A duration like 30d or 12h; none: no expiry.")


@router.get("/v1/keys", summary="List API keys and portal tokens (never their secrets)",
            **access())
def list_keys(request: Request, limit: LimitQ = 100, cursor: CursorQ = None,
              include_revoked: Annotated[bool, Query()] = False) -> Json:
    with transaction(request) as s:
        items = keys_service.list_keys(s, include_revoked=include_revoked)
    return page(items, lambda c: [c.created_at, c.key_id], limit, cursor,
                lambda c: c.to_dict())


@router.post("/v1/keys", status_code=201, **access(),
             summary="Create an API key; the token is shown in this answer only")
def create_key(request: Request, body: KeyCreate) -> Json:
    with transaction(request) as s:
        created = keys_service.create_key(s, body.role, body.name)
    return ok(created.to_dict(), 201)


@router.delete("/v1/keys/{key_id}", summary="Revoke an API key or portal token", **access())
def revoke_key(request: Request,
               key_id: Annotated[str, Path(min_length=1, max_length=32)]) -> Json:
    with transaction(request) as s:
        cred = keys_service.revoke_key(s, key_id)
    request.app.state.token_cache.forget(key_id)
    return ok(cred.to_dict())


@router.post("/v1/portal-tokens", status_code=201, **access(),
             summary="Create a portal token for one customer; shown in this answer only")
def create_portal_token(request: Request, body: PortalTokenCreate) -> Json:
    expires = parse_duration(body.expires_in) if body.expires_in else None
    with transaction(request) as s:
        created = keys_service.create_portal_token(s, body.customer, body.name, expires)
    return ok(created.to_dict(), 201)
