"""The dashboard (``/dashboard``) and the customer portal (``/portal``): HTML pages.

``router`` is included by the API's app factory. Pages are rendered on the server
(Jinja2 + inline SVG charts); the only script is the small ``app.js`` of this
package, and every asset is served from ``/dashboard/static/`` (no CDN; the
Content-Security-Policy header forbids any other origin). The routes are left out of
the OpenAPI document: they are pages, not API.

Access (see :mod:`ratecard.web.auth`): the dashboard wants an admin or read API key
(sign in once; kept in a cookie); the portal wants a portal token (the link
``/portal?token=...``) and shows that token's customer only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ratecard.api.deps import transaction, workspace_of
from ratecard.clock import utc_now
from ratecard.errors import NotFound, RatecardError
from ratecard.web import views
from ratecard.web.auth import (
    COOKIE_DAYS,
    DASHBOARD_COOKIE,
    PORTAL_COOKIE,
    check_dashboard,
    check_portal,
    dashboard_token,
    portal_token,
    safe_next,
)
from ratecard.web.render import render, static_file

router = APIRouter(include_in_schema=False)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
NAV = (
    ("overview", "Overview", "/dashboard"),
    ("customers", "Customers", "/dashboard/customers"),
    ("plans", "Plans", "/dashboard/plans"),
    ("invoices", "Invoices", "/dashboard/invoices"),
    ("usage", "Usage", "/dashboard/usage"),
    ("margins", "Margins", "/dashboard/margins"),
    ("credits", "Credits", "/dashboard/credits"),
)
MAX_FORM_BYTES = 8192

Build = Callable[[views.Ctx], dict[str, Any]]


def portal_link(base_url: str, token: str) -> str:
    """The address a customer opens to see its portal."""
    return f"{base_url.rstrip('/')}/portal?{urlencode({'token': token})}"


_store_lock = threading.Lock()


def usage_store(request: Request) -> Callable[[], Any]:
    """The app's usage store, opened once and shared (DuckDB wants one connection per file)."""

    def get() -> Any:
        from ratecard.api import deps

        shared = getattr(deps, "usage_store_of", None)
        if shared is not None:
            return shared(request)
        state = request.app.state
        with _store_lock:
            store = getattr(state, "usage_store", None)
            if store is None:
                from ratecard.store.usage import open_usage_store

                store = open_usage_store(workspace_of(request).usage_url)
                state.usage_store = store
        return store

    return get


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _error_page(status: int, title: str, message: str, *, area: str = "dashboard",
                principal: Any = None) -> Response:
    """An error page: inside the dashboard's frame for a signed-in user, bare otherwise."""
    nav = NAV if area == "dashboard" and principal is not None else ()
    return _html(render("error.html", status=status, title=title, message=message, area=area,
                        nav=nav, active="", principal=principal, now=utc_now()), status)


def _int(value: str | None, default: int = 1) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _dashboard(request: Request, template: str, active: str, build: Build) -> Response:
    with transaction(request) as session:
        access = check_dashboard(session, dashboard_token(request))
        if access.principal is None:
            if access.status == 403:
                return _error_page(403, "Not allowed", access.problem or "")
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/dashboard/login?{urlencode({'next': target})}",
                                    status_code=303, headers={"Cache-Control": "no-store"})
        ctx = views.Ctx(workspace_of(request), session, utc_now(), usage_store(request))
        try:
            data = build(ctx)
        except NotFound as e:
            return _error_page(404, "Not found", e.message, principal=access.principal)
        except RatecardError as e:
            return _error_page(e.http_status, "Cannot show this page", e.message,
                               principal=access.principal)
        if isinstance(data, Response):
            return data
        body = render(template, nav=NAV, active=active, principal=access.principal,
                      now=ctx.now, area="dashboard", **data)
    return _html(body)


# --------------------------------------------------------------------------- sign in


@router.get("/dashboard/login")
def login_form(request: Request) -> Response:
    return _html(render("login.html", next=safe_next(request.query_params.get("next")),
                        problem=None, area="dashboard", nav=(), active="", principal=None))


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return _error_page(413, "Too large", "The form is too large.")
    form = parse_qs(raw.decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = safe_next((form.get("next") or [""])[0])
    with transaction(request) as session:
        access = check_dashboard(session, key)
    if access.principal is None:
        return _html(render("login.html", next=target, problem=access.problem, area="dashboard",
                            nav=(), active="", principal=None), 401 if access.status == 401
                     else 403)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(DASHBOARD_COOKIE, key, max_age=COOKIE_DAYS * 86400, httponly=True,
                    samesite="strict", path="/dashboard",
                    secure=request.url.scheme == "https")
    return resp


@router.post("/dashboard/logout")
def logout() -> Response:
    resp = RedirectResponse("/dashboard/login", status_code=303)
    resp.delete_cookie(DASHBOARD_COOKIE, path="/dashboard")
    return resp


@router.get("/dashboard/static/{name}")
def static(name: str) -> Response:
    path = static_file(name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=300",
                                       "X-Content-Type-Options": "nosniff"})


# --------------------------------------------------------------------------- dashboard


@router.get("/dashboard")
def overview(request: Request) -> Response:
    def build(ctx: views.Ctx) -> dict[str, Any]:
        from ratecard.web.charts import Series

        ov = views.overview(ctx)
        ranked = sorted(ov["plan_revenue"].items(), key=lambda kv: -sum(kv[1]))
        series = [Series(k, v) for k, v in ranked[:7]]
        if len(ranked) > 7:
            rest = [sum(col) for col in zip(*(v for _, v in ranked[7:]), strict=True)]
            series.append(Series("other plans", rest))
        streams = []
        rev = ov["revenue_report"]
        for cur, by_month in sorted((rev.by_stream if rev else {}).items()):
            labels, named = views.stream_series(by_month)
            streams.append((cur, labels, [Series(n, v) for n, v in named]))
        return {"ov": ov, "plan_series": series, "streams": streams}

    return _dashboard(request, "overview.html", "overview", build)


@router.get("/dashboard/customers")
def customers(request: Request) -> Response:
    q = request.query_params.get("q", "")
    number = _int(request.query_params.get("page"))

    def build(ctx: views.Ctx) -> dict[str, Any]:
        rows = views.customer_summaries(ctx, q)
        return {"page": views.paginate(rows, number), "q": q, "count": len(rows)}

    return _dashboard(request, "customers.html", "customers", build)


@router.get("/dashboard/customers/{customer_id:path}")
def customer(request: Request, customer_id: str) -> Response:
    return _dashboard(request, "customer.html", "customers", lambda ctx: {
        "c": views.customer_detail(ctx, customer_id),
    })


@router.get("/dashboard/plans")
def plans(request: Request) -> Response:
    def build(ctx: views.Ctx) -> dict[str, Any]:
        rows = views.plans(ctx)
        return {"plans": rows, "bars": [(p.code, p.subscribers) for p in rows],
                "links": [f"/dashboard/plans/{quote(p.code)}" for p in rows]}

    return _dashboard(request, "plans.html", "plans", build)


@router.get("/dashboard/plans/{code}")
def plan(request: Request, code: str) -> Response:
    return _dashboard(request, "plan.html", "plans", lambda ctx: {
        "p": views.plan_detail(ctx, code),
    })


@router.get("/dashboard/invoices")
def invoices(request: Request) -> Response:
    qp = request.query_params
    status = qp.get("status") if qp.get("status") in views.INVOICE_STATUSES else None
    currency = qp.get("currency") or None
    number = _int(qp.get("page"))

    def build(ctx: views.Ctx) -> dict[str, Any]:
        rows = views.invoices(ctx, status=status, currency=currency)
        return {"page": views.paginate(rows, number), "status": status, "currency": currency,
                "totals": views.invoice_totals(rows), "statuses": views.INVOICE_STATUSES,
                "count": len(rows), "period_label": views.period_label}

    return _dashboard(request, "invoices.html", "invoices", build)


@router.get("/dashboard/invoices/{ref}")
def invoice(request: Request, ref: str) -> Response:
    return _dashboard(request, "invoice.html", "invoices", lambda ctx: {
        "inv": views.invoice_detail(ctx, ref), "period_label": views.period_label,
        "doc_base": f"/dashboard/invoices/{quote(ref)}",
    })


@router.get("/dashboard/invoices/{ref}/document.{fmt}")
def invoice_document(request: Request, ref: str, fmt: str) -> Response:
    def build(ctx: views.Ctx) -> Any:
        return _document(ctx, ref, fmt)

    return _dashboard(request, "error.html", "invoices", build)


def _document(ctx: views.Ctx, ref: str, fmt: str, customer: str | None = None) -> Response:
    if fmt not in ("html", "pdf"):
        raise NotFound(f"no {fmt!r} document; use html or pdf")
    doc = views.invoice_document(ctx, ref, fmt, customer=customer)
    if fmt == "pdf":
        return Response(doc.content, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{doc.filename}"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    return Response(doc.content, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "img-src data:",
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


@router.get("/dashboard/usage")
def usage(request: Request) -> Response:
    qp = request.query_params

    def build(ctx: views.Ctx) -> dict[str, Any]:
        return {"u": views.usage_explorer(
            ctx, meter=qp.get("meter") or None, customer=qp.get("customer") or None,
            window=qp.get("window") or "30d", group_by=qp.get("group_by") or None,
            step=qp.get("step") or None)}

    return _dashboard(request, "usage.html", "usage", build)


@router.get("/dashboard/margins")
def margins(request: Request) -> Response:
    qp = request.query_params
    def build(ctx: views.Ctx) -> dict[str, Any]:
        m = views.margins(ctx, period=qp.get("period") or None)
        rows = m["reports"]["customer"].rows if m["reports"]["customer"] else ()
        return {"m": m, "margin_bars": [(r.key, r.margin) for r in rows],
                "margin_links": [f"/dashboard/customers/{quote(r.key)}" for r in rows]}

    return _dashboard(request, "margins.html", "margins", build)


@router.get("/dashboard/credits")
def credits(request: Request) -> Response:
    def build(ctx: views.Ctx) -> dict[str, Any]:
        cr = views.credits_overview(ctx)
        top = cr["wallets"][:12]
        return {"cr": cr, "bars": [(w.customer, w.available) for w in top],
                "links": [f"/dashboard/customers/{quote(w.customer)}" for w in top]}

    return _dashboard(request, "credits.html", "credits", build)


# --------------------------------------------------------------------------- portal


def _portal(request: Request, build: Callable[[views.Ctx, str], Any],
            template: str = "portal.html") -> Response:
    with transaction(request) as session:
        access = check_portal(session, portal_token(request))
        if access.principal is None or access.principal.customer is None:
            return _error_page(access.status, "Portal link needed", access.problem or "",
                               area="portal")
        ctx = views.Ctx(workspace_of(request), session, utc_now(), usage_store(request))
        try:
            data = build(ctx, access.principal.customer)
        except NotFound as e:
            return _error_page(404, "Not found", e.message, area="portal")
        except RatecardError as e:
            return _error_page(e.http_status, "Cannot show this page", e.message, area="portal")
        if isinstance(data, Response):
            return data
        body = render(template, area="portal", nav=(), active="", principal=access.principal,
                      now=ctx.now, **data)
    return _html(body)


@router.get("/portal")
def portal(request: Request) -> Response:
    token = request.query_params.get("token")
    if token is not None:
        with transaction(request) as session:
            access = check_portal(session, token.strip())
        if access.principal is None:
            return _error_page(access.status, "This link does not work", access.problem or "",
                               area="portal")
        resp = RedirectResponse("/portal", status_code=303, headers={"Cache-Control": "no-store"})
        resp.set_cookie(PORTAL_COOKIE, token.strip(), max_age=COOKIE_DAYS * 86400,
                        httponly=True, samesite="lax", path="/portal",
                        secure=request.url.scheme == "https")
        return resp
    return _portal(request, lambda ctx, customer: {"pv": views.portal(ctx, customer)})


@router.get("/portal/invoices/{ref}/document.{fmt}")
def portal_invoice(request: Request, ref: str, fmt: str) -> Response:
    return _portal(request, lambda ctx, customer: _document(ctx, ref, fmt, customer=customer))


@router.post("/portal/logout")
def portal_logout() -> Response:
    resp = RedirectResponse("/portal", status_code=303)
    resp.delete_cookie(PORTAL_COOKIE, path="/portal")
    return resp
