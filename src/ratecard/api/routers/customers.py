"""Customers: create, list, show (a portal token reads its own)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api.auth import access
from ratecard.api.deps import transaction
from ratecard.api.http import CursorQ, Json, LimitQ, ok, page
from ratecard.api.routers.common import CustomerPath
from ratecard.billing.customers import create_customer, get_customer, list_customers
from ratecard.billing.subscriptions import list_subscriptions
from ratecard.clock import utc_now

router = APIRouter(tags=["customers"])


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200,
                    description="External id: what usage events carry as `customer`.")
    name: str = Field("", max_length=300)
    currency: str | None = Field(None, min_length=3, max_length=3,
                                 description="ISO 4217 (default: the catalog's).")
    timezone: str = Field("UTC", min_length=1, max_length=64,
                          description="IANA timezone; billing periods follow its calendar.")
    email: str | None = Field(None, max_length=300)
    metadata: dict[str, Any] = Field(default_factory=dict)
    byok: bool = Field(False, description="The customer brings its own model keys.")


@router.get("/v1/customers", summary="List customers", **access("read"))
def customers(request: Request, limit: LimitQ = 100, cursor: CursorQ = None) -> Json:
    with transaction(request) as s:
        rows = list_customers(s)
    return page(rows, lambda c: c.external_id, limit, cursor, lambda c: c.as_dict())


@router.post("/v1/customers", status_code=201, summary="Create a customer", **access())
def create(request: Request, body: CustomerCreate) -> Json:
    with transaction(request) as s:
        c = create_customer(s, body.id, name=body.name, currency=body.currency,
                            timezone=body.timezone, email=body.email, metadata=body.metadata,
                            byok=body.byok)
    return ok(c.as_dict(), 201)


@router.get("/v1/customers/{customer}", summary="A customer and its subscriptions",
            **access("read", portal=True))
def show(request: Request, customer: CustomerPath) -> Json:
    now = utc_now()
    with transaction(request) as s:
        c = get_customer(s, customer)
        subs = list_subscriptions(s, customer)
    return ok({**c.as_dict(), "subscriptions": [sub.as_dict(now) for sub in subs]})
