"""Entitlement checks ("may this customer do this?"), what a customer is entitled to, and
per-customer overrides."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api.auth import access
from ratecard.api.deps import transaction
from ratecard.api.http import CursorQ, Json, LimitQ, ok, page
from ratecard.api.routers.common import AtQ, CustomerPath, at_time
from ratecard.clock import iso, parse_time
from ratecard.entitlements import service
from ratecard.entitlements.model import Entitlement, Override
from ratecard.errors import NotFound
from ratecard.money import to_str

router = APIRouter(tags=["entitlements"])

FeaturePath = Annotated[str, Path(min_length=1, max_length=200)]


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feature: str = Field(min_length=1, max_length=200)
    value: Any = Field(description='true, 5, "text", ["a", "b"] or {"meter": "prompts", '
                                   '"limits": [{"limit": 500, "window": "5h"}]}')
    start: str | None = Field(None, max_length=64, description="From (default now).")
    end: str | None = Field(None, max_length=64, description="Until (default: open).")
    note: str = Field("", max_length=2000)


def entitlement_dict(e: Entitlement) -> dict[str, Any]:
    out: dict[str, Any] = {"feature": e.feature, "kind": e.kind, "source": e.source}
    if e.kind == "metered":
        out.update(meter=e.meter, hard=e.hard,
                   limits=[{"limit": to_str(lim.limit), "window": lim.window.text}
                           for lim in e.limits],
                   overage_unit_price=to_str(e.overage_unit_price)
                   if e.overage_unit_price is not None else None)
    else:
        out["value"] = e.value
    return out


def override_dict(o: Override) -> dict[str, Any]:
    value = o.value.model_dump(mode="json", exclude_none=True) if hasattr(
        o.value, "model_dump") else o.value
    return {"id": o.id, "customer": o.customer, "feature": o.feature, "value": value,
            "starts_at": iso(o.starts_at), "ends_at": iso(o.ends_at) if o.ends_at else None,
            "note": o.note}


@router.get("/v1/customers/{customer}/entitlements/{feature}",
            summary="Check: may this customer use this feature (this much more) now?",
            **access("read", "ingest", portal=True))
def check(request: Request, customer: CustomerPath, feature: FeaturePath,
          quantity: Annotated[str | None, Query(
              max_length=40, description="Would this much more be allowed? (nothing is "
                                         "consumed)")] = None,
          value: Annotated[str | None, Query(
              max_length=200, description="For a list entitlement: is this value in it?")]
          = None,
          at: AtQ = None) -> Json:
    with transaction(request) as s:
        r = service.check(s, customer, feature, quantity=quantity, value=value,
                          at=at_time(at))
    return ok(r.to_dict())


@router.get("/v1/customers/{customer}/entitlements",
            summary="Every entitlement in force (plan version plus overrides)",
            **access("read", portal=True))
def entitlements(request: Request, customer: CustomerPath, at: AtQ = None) -> Json:
    with transaction(request) as s:
        ents = service.entitlements_of(s, customer, at=at_time(at))
    return ok({"customer": customer, "data": [entitlement_dict(e) for e in ents.values()]})


@router.get("/v1/customers/{customer}/overrides", summary="A customer's overrides",
            **access("read"))
def overrides(request: Request, customer: CustomerPath, limit: LimitQ = 100,
              cursor: CursorQ = None) -> Json:
    with transaction(request) as s:
        rows = service.list_overrides(s, customer)
    return page(rows, lambda o: [iso(o.starts_at), o.id], limit, cursor, override_dict)


@router.post("/v1/customers/{customer}/overrides", status_code=201,
             summary="Give one customer a different entitlement for a while", **access())
def create_override(request: Request, customer: CustomerPath, body: OverrideCreate) -> Json:
    start = parse_time(body.start, field="start", default_tz="UTC") if body.start else None
    end = parse_time(body.end, field="end", default_tz="UTC") if body.end else None
    with transaction(request) as s:
        o = service.set_override(s, customer, body.feature, body.value, starts_at=start,
                                 ends_at=end, note=body.note)
    return ok(override_dict(o), 201)


@router.post("/v1/customers/{customer}/overrides/{override_id}/end",
             summary="End an override now", **access())
def end_override(request: Request, customer: CustomerPath,
                 override_id: Annotated[str, Path(min_length=1, max_length=100)]) -> Json:
    with transaction(request) as s:
        if override_id not in {o.id for o in service.list_overrides(s, customer)}:
            raise NotFound(f"customer {customer!r} has no override {override_id!r}")
        o = service.end_override(s, override_id)
    return ok(override_dict(o))
