"""Access control: who may call which route, checked before a request is read.

Every route under ``/v1`` declares the roles that may call it with :func:`access`
(stored in its OpenAPI operation as ``x-roles``, so the document says it too). The
:class:`AuthMiddleware` runs before routing and body parsing:

1. no ``Authorization: Bearer <token>`` (or an unknown, revoked or expired token):
   401 ``unauthorized``;
2. a role the route does not list: 403 ``forbidden``;
3. a portal token on a customer-scoped route (``/v1/customers/{customer}/...``) of
   another customer: 403 ``forbidden``; on any route that is not customer-scoped:
   403.

A route with no declared roles is admin-only: forgetting to declare is safe.
A verified token is remembered for :data:`CACHE_SECONDS` so the hot paths (ingest,
check) do not read the key table on every request; a key revoked through the API is
forgotten at once, one revoked from the CLI of another process within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ratecard.api.handlers import error_bytes
from ratecard.api.keys import ALL_ROLES, Principal, hash_token
from ratecard.errors import RatecardError, Unauthorized

ROLES_KEY = "x-roles"
SCOPE_KEY = "x-customer-scoped"
CUSTOMER_PARAM = "customer"
CACHE_SECONDS = 5.0
CACHE_MAX = 10_000
PUBLIC_PREFIXES = ("/v1/health",)


def access(*roles: str, portal: bool = False) -> dict[str, Any]:
    """Route keyword arguments declaring who may call it.

    ``roles`` are key roles (``admin`` is always allowed); ``portal=True`` also lets
    the portal token of the customer named in the ``{customer}`` path parameter in.
    """
    allowed = sorted({"admin", *roles} | ({"portal"} if portal else set()))
    for r in allowed:
        if r not in ALL_ROLES:
            raise ValueError(f"unknown role {r!r}")
    extra: dict[str, Any] = {ROLES_KEY: allowed}
    if portal:
        extra[SCOPE_KEY] = True
    return {"openapi_extra": extra}


def route_policy(route: BaseRoute) -> tuple[frozenset[str], bool]:
    extra = getattr(route, "openapi_extra", None) or {}
    roles = frozenset(extra.get(ROLES_KEY) or ("admin",))
    return roles, bool(extra.get(SCOPE_KEY))


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            kind, _, token = text.partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
            return None
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
    return None


class TokenCache:
    """Verified tokens for a few seconds (by hash; failures are never cached)."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        h = hash_token(token)
        with self._lock:
            hit = self._items.get(h)
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                del self._items[h]
                return None
            return hit[1]

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._items) >= CACHE_MAX:
                self._items.clear()
            self._items[hash_token(token)] = (time.monotonic() + self.ttl, principal)

    def forget(self, key_id: str) -> None:
        with self._lock:
            for h in [h for h, (_, p) in self._items.items() if p.key_id == key_id]:
                del self._items[h]


class AuthMiddleware:
    """Authenticate and authorise every ``/v1`` request before it is routed."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[], Iterable[BaseRoute]],
                 authenticate: Callable[[str], Principal], cache: TokenCache) -> None:
        self.app = app
        self.routes = routes
        self.authenticate = authenticate
        self.cache = cache
        self._index: dict[tuple[str, str, int], list[BaseRoute]] | None = None

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that may match ``path``: same first two segments, same depth (no
        route under /v1 takes a parameter that spans segments)."""
        if self._index is None:
            index: dict[tuple[str, str, int], list[BaseRoute]] = {}
            for route in self.routes():
                template = getattr(route, "path", "")
                if not template.startswith("/v1"):
                    continue
                segs = template.strip("/").split("/")
                key = (segs[0], segs[1] if len(segs) > 1 else "", len(segs))
                index.setdefault(key, []).append(route)
            self._index = index
        segs = path.strip("/").split("/")
        return self._index.get((segs[0], segs[1] if len(segs) > 1 else "", len(segs)), [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if not (path == "/v1" or path.startswith("/v1/")) or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if token is None:
            await _deny(send, 401, "unauthorized",
                        "no API key; send `Authorization: Bearer <key>` with a key from "
                        "`ratecard keys create`")
            return
        principal = self.cache.get(token)
        if principal is None:
            try:
                principal = await anyio.to_thread.run_sync(self.authenticate, token)
            except RatecardError as e:
                await _deny(send, e.http_status, e.code, e.message)
                return
            self.cache.put(token, principal)
        denial = self.authorise(scope, principal)
        if denial is not None:
            await _deny(send, 403, "forbidden", denial)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def authorise(self, scope: Scope, principal: Principal) -> str | None:
        """``None`` when ``principal`` may call the route ``scope`` reaches, else why not."""
        partial: BaseRoute | None = None
        for route in self.candidates(scope.get("path", "")):
            match, child = route.matches(scope)
            if match == Match.FULL:
                return _allowed(route, child, principal)
            if match == Match.PARTIAL and partial is None:
                partial = route
        # an unknown route (404) or a wrong method (405): only say so to a key holder
        if principal.role == "portal":
            return "a portal token can only read its own customer's pages"
        return None


def _allowed(route: BaseRoute, child: Scope, principal: Principal) -> str | None:
    roles, scoped = route_policy(route)
    if principal.role not in roles:
        needed = " or ".join(sorted(r for r in roles if r != "portal")) or "admin"
        what = "a portal token" if principal.role == "portal" else f"{_a(principal.role)} key"
        return f"{what} cannot call this route; it needs {_a(needed)} key"
    if principal.role == "portal":
        customer = (child.get("path_params") or {}).get(CUSTOMER_PARAM)
        if not scoped or customer is None:
            return "a portal token can only read its own customer's pages"
        if customer != principal.customer:
            return "this portal token belongs to another customer"
    return None


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


async def _deny(send: Send, status: int, code: str, detail: str) -> None:
    body = error_bytes(code, detail)
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def principal_of(request: Any) -> Principal:
    """The caller of a request that passed :class:`AuthMiddleware`."""
    p = getattr(request.state, "principal", None)
    if p is None:  # pragma: no cover - the middleware always sets it under /v1
        raise Unauthorized("not authenticated")
    assert isinstance(p, Principal)
    return p
