"""Subscriptions: create, list, show, change plan/seats/term, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api.auth import access
from ratecard.api.deps import transaction
from ratecard.api.http import CursorQ, Json, LimitQ, ok, page
from ratecard.api.routers.common import CustomerPath, CustomerQ
from ratecard.billing import repository as repo
from ratecard.billing.subscriptions import (
    cancel_subscription,
    change_subscription,
    create_subscription,
    get_subscription,
    list_subscriptions,
)
from ratecard.clock import parse_time, utc_now

router = APIRouter(tags=["subscriptions"])

SubscriptionPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
TimeText = Field(None, max_length=64,
                 description="RFC 3339, or a date (midnight in the customer's timezone).")


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: str = Field(min_length=1, max_length=200)
    plan: str = Field(min_length=1, max_length=200)
    version: int | None = Field(None, ge=1, le=1_000_000)
    start: str | None = TimeText
    anchor: str | None = TimeText
    trial_days: int | None = Field(None, ge=0, le=3650)
    seats: int | None = Field(None, ge=0, le=1_000_000_000)
    term: Literal["month", "quarter", "year"] | None = None


class SubscriptionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str | None = Field(None, min_length=1, max_length=200)
    version: int | None = Field(None, ge=1, le=1_000_000)
    seats: int | None = Field(None, ge=0, le=1_000_000_000)
    term: Literal["month", "quarter", "year"] | None = None
    when: Literal["now", "renewal"] | None = Field(
        None, description="now (prorated by day) or renewal; default: upgrades now, "
                          "downgrades at renewal.")
    at: str | None = TimeText


class SubscriptionCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: Literal["now", "period_end"] = "period_end"
    at: str | None = TimeText


def _time(text: str | None, field: str, tz: str) -> datetime | None:
    return None if text is None else parse_time(text, field=field, default_tz=tz)


@router.get("/v1/subscriptions", summary="List subscriptions", **access("read"))
def subscriptions(request: Request, customer: CustomerQ = None, limit: LimitQ = 100,
                  cursor: CursorQ = None) -> Json:
    now = utc_now()
    with transaction(request) as s:
        subs = list_subscriptions(s, customer)
    return page(subs, lambda x: x.id, limit, cursor, lambda x: x.as_dict(now))


@router.get("/v1/customers/{customer}/subscriptions", summary="A customer's subscriptions",
            **access("read", portal=True))
def customer_subscriptions(request: Request, customer: CustomerPath, limit: LimitQ = 100,
                           cursor: CursorQ = None) -> Json:
    now = utc_now()
    with transaction(request) as s:
        repo.customer_row(s, customer)  # 404 for an unknown customer
        subs = list_subscriptions(s, customer)
    return page(subs, lambda x: x.id, limit, cursor, lambda x: x.as_dict(now))


@router.post("/v1/subscriptions", status_code=201, summary="Subscribe a customer to a plan",
             **access())
def create(request: Request, body: SubscriptionCreate) -> Json:
    with transaction(request) as s:
        tz = repo.customer_row(s, body.customer).timezone
        sub = create_subscription(
            s, body.customer, body.plan, version=body.version,
            start=_time(body.start, "start", tz), anchor=_time(body.anchor, "anchor", tz),
            trial_days=body.trial_days, seats=body.seats, term=body.term)
    return ok(sub.as_dict(utc_now()), 201)


@router.get("/v1/subscriptions/{subscription_id}", summary="A subscription and its phases",
            **access("read"))
def show(request: Request, subscription_id: SubscriptionPath) -> Json:
    with transaction(request) as s:
        sub = get_subscription(s, subscription_id)
    return ok(sub.as_dict(utc_now()))


@router.post("/v1/subscriptions/{subscription_id}/change",
             summary="Change plan, version, seats or term", **access())
def change(request: Request, subscription_id: SubscriptionPath,
           body: SubscriptionChange) -> Json:
    with transaction(request) as s:
        sub = repo.load_subscription(s, subscription_id)
        result = change_subscription(s, subscription_id, plan=body.plan, version=body.version,
                                     seats=body.seats, term=body.term, when=body.when,
                                     at=_time(body.at, "at", sub.timezone))
    return ok(result.as_dict(utc_now()))


@router.post("/v1/subscriptions/{subscription_id}/cancel",
             summary="Cancel now or at the end of the period", **access())
def cancel(request: Request, subscription_id: SubscriptionPath,
           body: SubscriptionCancel) -> Json:
    with transaction(request) as s:
        sub = repo.load_subscription(s, subscription_id)
        result = cancel_subscription(s, subscription_id, when=body.when,
                                     at=_time(body.at, "at", sub.timezone))
    return ok(result.as_dict(utc_now()))
