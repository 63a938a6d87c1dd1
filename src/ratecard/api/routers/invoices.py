"""Invoices: runs, list, show, HTML and PDF, finalize, void, pay, credit notes.

A portal token reads its own customer's invoices under
``/v1/customers/{customer}/invoices``; an invoice of another customer is 404 there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api.auth import access
from ratecard.api.deps import transaction, workspace_of
from ratecard.api.http import CursorQ, Json, LimitQ, ok, page
from ratecard.api.routers.common import CustomerPath, CustomerQ, InvoicePath, at_time
from ratecard.billing import invoices as svc
from ratecard.billing import repository as repo
from ratecard.billing.render import invoice_html, invoice_pdf
from ratecard.billing.usage import open_usage_source
from ratecard.clock import utc_now
from ratecard.errors import NotFound
from ratecard.money import D
from ratecard.store.state import session_scope

router = APIRouter(tags=["invoices"])

StatusQ = Annotated[Literal["draft", "finalized", "paid", "void"] | None,
                    Query(description="Only invoices in this status.")]


class InvoiceRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = Field(None, max_length=64,
                           description="Bill as of this time (default now).")
    customer: str | None = Field(None, min_length=1, max_length=200)


class InvoiceVoid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


class CreditNoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Decimal | None = Field(None, gt=0, max_digits=30,
                                   description="Default: all that remains.")
    line: int | None = Field(None, ge=1, le=100_000,
                             description="Credit against this line (its position).")
    reason: str = Field("", max_length=2000)


def _own(inv: dict[str, Any], customer: str) -> dict[str, Any]:
    if inv["customer"] != customer:
        raise NotFound(f"customer {customer!r} has no invoice {inv['id']}")
    return inv


def _html(inv: dict[str, Any]) -> HTMLResponse:
    return HTMLResponse(invoice_html(inv))


def _pdf(inv: dict[str, Any]) -> Response:
    name = inv["number"] or f"draft-{inv['id']}"
    return Response(invoice_pdf(inv), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}.pdf"'})


HTML_DOC: dict[str, Any] = {200: {"content": {"text/html": {}}, "description": "HTML"}}
PDF_DOC: dict[str, Any] = {200: {"content": {"application/pdf": {}}, "description": "PDF"}}


@router.post("/v1/invoices/run", **access(),
             summary="Bill every subscription whose period has ended: create, re-rate, "
                     "finalize")
def run(request: Request, body: InvoiceRun) -> Json:
    ws = workspace_of(request)
    when = at_time(body.at) or utc_now()
    settings = svc.BillingSettings.from_workspace(ws)
    source = open_usage_source(ws.usage_url)
    report = svc.run_invoices(lambda: session_scope(ws), when, source, settings=settings,
                              customer=body.customer)
    return ok(report.as_dict())


@router.get("/v1/invoices", summary="List invoices", **access("read"))
def invoices(request: Request, customer: CustomerQ = None, status: StatusQ = None,
             limit: LimitQ = 100, cursor: CursorQ = None) -> Json:
    with transaction(request) as s:
        rows = svc.list_invoices(s, customer=customer, status=status)
    return page(rows, lambda r: r["id"], limit, cursor)


@router.get("/v1/invoices/{invoice}", summary="One invoice, line by line", **access("read"))
def show(request: Request, invoice: InvoicePath) -> Json:
    with transaction(request) as s:
        return ok(svc.get_invoice(s, invoice))


@router.get("/v1/invoices/{invoice}/html", summary="An invoice as printable HTML",
            responses=HTML_DOC, response_class=HTMLResponse, **access("read"))
def show_html(request: Request, invoice: InvoicePath) -> HTMLResponse:
    with transaction(request) as s:
        return _html(svc.get_invoice(s, invoice))


@router.get("/v1/invoices/{invoice}/pdf", summary="An invoice as PDF", responses=PDF_DOC,
            response_class=Response, **access("read"))
def show_pdf(request: Request, invoice: InvoicePath) -> Response:
    with transaction(request) as s:
        return _pdf(svc.get_invoice(s, invoice))


@router.post("/v1/invoices/{invoice}/finalize", summary="Finalize a draft now and number it",
             **access())
def finalize(request: Request, invoice: InvoicePath) -> Json:
    with transaction(request) as s:
        row = svc.finalize_invoice(s, invoice)
        return ok(svc.invoice_view(s, row))


@router.post("/v1/invoices/{invoice}/void", summary="Void an invoice", **access())
def void(request: Request, invoice: InvoicePath, body: InvoiceVoid) -> Json:
    with transaction(request) as s:
        row = svc.void_invoice(s, invoice, body.reason)
        return ok(svc.invoice_view(s, row))


@router.post("/v1/invoices/{invoice}/pay", summary="Mark a finalized invoice paid",
             **access())
def pay(request: Request, invoice: InvoicePath) -> Json:
    with transaction(request) as s:
        row = svc.mark_paid(s, invoice)
        return ok(svc.invoice_view(s, row))


@router.post("/v1/invoices/{invoice}/credit-notes", status_code=201, **access(),
             summary="Issue a credit note against a finalized invoice")
def credit(request: Request, invoice: InvoicePath, body: CreditNoteCreate) -> Json:
    ws = workspace_of(request)
    amount = D(body.amount) if body.amount is not None else None
    with transaction(request) as s:
        note = svc.create_credit_note(s, invoice, amount=amount, line=body.line,
                                      reason=body.reason,
                                      settings=svc.BillingSettings.from_workspace(ws))
        return ok(svc.credit_note_view(note), 201)


# --------------------------------------------------------------------------- one customer's


@router.get("/v1/customers/{customer}/invoices", summary="A customer's invoices",
            **access("read", portal=True))
def customer_invoices(request: Request, customer: CustomerPath, status: StatusQ = None,
                      limit: LimitQ = 100, cursor: CursorQ = None) -> Json:
    with transaction(request) as s:
        rows = svc.list_invoices(s, customer=customer, status=status)
    return page(rows, lambda r: r["id"], limit, cursor)


@router.get("/v1/customers/{customer}/invoices/{invoice}", summary="One of its invoices",
            **access("read", portal=True))
def customer_invoice(request: Request, customer: CustomerPath, invoice: InvoicePath) -> Json:
    with transaction(request) as s:
        repo.customer_row(s, customer)
        return ok(_own(svc.get_invoice(s, invoice), customer))


@router.get("/v1/customers/{customer}/invoices/{invoice}/html", response_class=HTMLResponse,
            summary="One of its invoices as HTML", responses=HTML_DOC,
            **access("read", portal=True))
def customer_invoice_html(request: Request, customer: CustomerPath,
                          invoice: InvoicePath) -> HTMLResponse:
    with transaction(request) as s:
        return _html(_own(svc.get_invoice(s, invoice), customer))


@router.get("/v1/customers/{customer}/invoices/{invoice}/pdf", response_class=Response,
            summary="One of its invoices as PDF", responses=PDF_DOC,
            **access("read", portal=True))
def customer_invoice_pdf(request: Request, customer: CustomerPath,
                         invoice: InvoicePath) -> Response:
    with transaction(request) as s:
        return _pdf(_own(svc.get_invoice(s, invoice), customer))
