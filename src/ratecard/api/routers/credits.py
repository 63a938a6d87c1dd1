"""Credit wallets: balance and ledger (a portal token reads its own), grants, packs, burns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api.auth import access
from ratecard.api.deps import transaction
from ratecard.api.http import CursorQ, Json, LimitQ, ok, page
from ratecard.api.routers.common import AtQ, CustomerPath, at_time
from ratecard.billing import repository as billing_repo
from ratecard.clock import iso, parse_time
from ratecard.credits import service
from ratecard.credits.model import LedgerEntry
from ratecard.money import to_str

router = APIRouter(tags=["credits"])

Credits = Annotated[Decimal, Field(gt=0, max_digits=30, allow_inf_nan=False)]
TimeText = Field(None, max_length=64, description="RFC 3339, or a date (midnight UTC).")
GrantPath = Annotated[str, Path(min_length=1, max_length=100)]


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Credits
    source: str = Field("promotion", max_length=20,
                        description="plan, purchase, promotion or bonus.")
    priority: int = Field(10, ge=-1_000_000, le=1_000_000,
                          description="Burn order: lower burns first.")
    effective_at: str | None = TimeText
    expires_at: str | None = TimeText
    expires_after: str | None = Field(None, max_length=20, description="Or a duration: 30d.")
    cost_basis: Decimal = Field(Decimal(0), ge=0, max_digits=30, allow_inf_nan=False,
                                description="Money paid per credit (0 for free credits).")
    key: str | None = Field(None, max_length=200,
                            description="Idempotency key: granting a key twice grants once.")
    note: str = Field("", max_length=2000)


class PurchaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pack: str = Field(min_length=1, max_length=200)
    quantity: int = Field(1, ge=1, le=1_000_000)
    reference: str | None = Field(None, max_length=200,
                                  description="Idempotency key (an order id).")


class BurnCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Credits
    reference: str | None = Field(None, max_length=200,
                                  description="Idempotency key: burning it twice burns once.")
    partial: bool = Field(False, description="Burn what there is and record the shortfall.")
    grant: str | None = Field(None, max_length=100, description="Burn from this grant only.")


class GrantVoid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


def _time(text: str | None, field: str) -> datetime | None:
    return parse_time(text, field=field, default_tz="UTC") if text else None


def entry_dict(e: LedgerEntry) -> dict[str, object]:
    return {"seq": e.seq, "at": iso(e.at), "grant": e.grant_id, "kind": e.kind,
            "amount": to_str(e.amount), "reference": e.reference, "note": e.note}


@router.get("/v1/customers/{customer}/credits", summary="Credit balance and each grant",
            **access("read", portal=True))
def balance(request: Request, customer: CustomerPath, at: AtQ = None) -> Json:
    with transaction(request) as s:
        billing_repo.customer_row(s, customer)
        b = service.balance(s, customer, at=at_time(at))
    return ok(b.as_dict())


@router.get("/v1/customers/{customer}/credits/ledger",
            summary="The append-only credit ledger, oldest first",
            **access("read", portal=True))
def ledger(request: Request, customer: CustomerPath, limit: LimitQ = 100,
           cursor: CursorQ = None,
           grant: Annotated[str | None, Query(max_length=100)] = None) -> Json:
    with transaction(request) as s:
        billing_repo.customer_row(s, customer)
        entries = service.ledger(s, customer, grant_id=grant)
    return page(entries, lambda e: e.seq or 0, limit, cursor, entry_dict)


@router.post("/v1/customers/{customer}/credits/grants", status_code=201,
             summary="Grant credits", **access())
def grant(request: Request, customer: CustomerPath, body: GrantCreate) -> Json:
    with transaction(request) as s:
        g = service.grant(
            s, customer, body.amount, source=body.source,
            effective_at=_time(body.effective_at, "effective_at"),
            expires_at=_time(body.expires_at, "expires_at"), expires_after=body.expires_after,
            priority=body.priority, cost_basis=body.cost_basis, key=body.key, note=body.note)
    return ok(service.grant_dict(g), 201)


@router.post("/v1/customers/{customer}/credits/grants/{grant_id}/void",
             summary="Void a grant: its remaining credits leave the wallet", **access())
def void(request: Request, customer: CustomerPath, grant_id: GrantPath,
         body: GrantVoid) -> Json:
    with transaction(request) as s:
        g = service.void_grant(s, customer, grant_id, reason=body.reason)
    return ok(service.grant_dict(g))


@router.post("/v1/customers/{customer}/credits/purchases", status_code=201,
             summary="Buy prepaid credit packs", **access())
def purchase(request: Request, customer: CustomerPath, body: PurchaseCreate) -> Json:
    with transaction(request) as s:
        p = service.purchase(s, customer, body.pack, quantity=body.quantity,
                             reference=body.reference)
    return ok(p.as_dict(), 201)


@router.post("/v1/customers/{customer}/credits/burns", status_code=201,
             summary="Burn credits in the documented order", **access())
def burn(request: Request, customer: CustomerPath, body: BurnCreate) -> Json:
    with transaction(request) as s:
        r = service.burn(s, customer, body.amount, reference=body.reference,
                         mode="partial" if body.partial else "hard", grant_id=body.grant)
    return ok(r.as_dict(), 201)
