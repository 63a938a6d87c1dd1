"""The FastAPI application: ``create_app(workspace)``.

Layers, outermost first: the body size limit (413), authentication and
authorisation (401/403, see :mod:`ratecard.api.auth`), then the routers under
``/v1`` (one per domain, :mod:`ratecard.api.routers`) and the web pages. Every
error is rendered by :mod:`ratecard.api.handlers` as ``{"error": code, "detail": ...}``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

import ratecard
from ratecard.api import handlers
from ratecard.api.auth import ROLES_KEY, AuthMiddleware, TokenCache
from ratecard.api.keys import Principal, authenticate
from ratecard.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from ratecard.api.usage import close_usage_store
from ratecard.store.state import session_factory, session_scope
from ratecard.workspace import Workspace

# the routers, in the order their routes are matched
ROUTERS = ("health", "keys", "catalog", "quotes", "events", "customers", "subscriptions",
           "invoices", "credits", "entitlements", "usage")

DESCRIPTION = """\
Meter, price, bill and simulate AI products, and see their margins.

Every route under `/v1` needs `Authorization: Bearer <key>` (a key from
`ratecard keys create --role admin|ingest|read`, or a customer's portal token).
Each operation lists the roles that may call it in `x-roles`. Errors are
`{"error": code, "detail": message}`; lists take `?limit=&cursor=` and answer
`{"data": [...], "next_cursor": ...}`. Money and quantities are decimal strings.
"""


def max_body_bytes(ws: Workspace) -> int:
    mb = ws.setting("api", "max_body_mb", None)
    if isinstance(mb, int | float) and not isinstance(mb, bool) and mb > 0:
        return int(mb * 1024 * 1024)
    return DEFAULT_MAX_BODY_BYTES


def create_app(workspace: Workspace | str | Path | None = None, *,
               max_body: int | None = None) -> FastAPI:
    """The API (and the web pages when installed) over one workspace.

    The state database is migrated to the newest schema when the app is created.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    session_factory(ws)  # migrate now, not on the first request
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        close_usage_store(app)

    app = FastAPI(title="ratecard", version=ratecard.__version__, description=DESCRIPTION,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
                  lifespan=lifespan)
    app.state.workspace = ws
    cache = TokenCache()
    app.state.token_cache = cache

    def _authenticate(token: str) -> Principal:
        with session_scope(ws) as s:
            return authenticate(s, token)

    handlers.install(app)
    from ratecard.web.routes import router as web_router  # the dashboard and the portal

    routers = [importlib.import_module(f"ratecard.api.routers.{name}").router
               for name in ROUTERS]
    routers.append(web_router)
    # the routes as declared (no prefixes), which the auth middleware matches against
    api_routes: list[BaseRoute] = []
    for router in routers:
        app.include_router(router)
        api_routes.extend(r for r in router.routes if isinstance(r, APIRoute))
    app.state.api_routes = api_routes

    app.add_middleware(AuthMiddleware, routes=lambda: api_routes,
                       authenticate=_authenticate, cache=cache)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body or max_body_bytes(ws))
    default_openapi = app.openapi
    app.openapi = lambda: _openapi(app, default_openapi)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if getattr(app.state, "openapi_done", False) and app.openapi_schema:
        return app.openapi_schema
    schema = build()
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = handlers.ERROR_SCHEMA
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "An API key or a portal token."},
    }
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    protected = {r.path for r in app.state.api_routes
                 if r.path.startswith("/v1/") and not r.path.startswith("/v1/health")}
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            responses = op.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "Invalid input", **ref}
            if path in protected:
                op["security"] = [{"bearer": []}]
                responses.setdefault("401", {"description": "No valid key", **ref})
                responses.setdefault("403", {"description": "The key may not call this",
                                             **ref})
                if ROLES_KEY not in op:
                    op[ROLES_KEY] = ["admin"]
            responses.setdefault("404", {"description": "Not found", **ref})
    app.openapi_schema = schema
    app.state.openapi_done = True
    return schema
