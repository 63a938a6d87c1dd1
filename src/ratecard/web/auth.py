"""Who may see a page: the dashboard's key cookie and the portal's token cookie.

Both reuse the API's credentials (:func:`ratecard.api.keys.authenticate`): nothing is
hashed or stored here.

* **Dashboard**: an ``admin`` or ``read`` API key, entered once on the sign-in page
  and kept in an HttpOnly, SameSite=Strict cookie. A missing, wrong, revoked or
  expired key sends the browser back to the sign-in page; an ``ingest`` key or a
  portal token is refused (403).
* **Portal**: the link ``/portal?token=<portal token>`` checks the token, keeps it in
  an HttpOnly cookie scoped to ``/portal`` and redirects to ``/portal`` (so the token
  leaves the address bar and browser history). Every portal page re-checks the token
  and shows the token's own customer only: no page takes a customer from the URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from ratecard.api.keys import Principal, authenticate
from ratecard.errors import Unauthorized

DASHBOARD_COOKIE = "ratecard_key"
PORTAL_COOKIE = "ratecard_portal"
DASHBOARD_ROLES = frozenset({"admin", "read"})
COOKIE_DAYS = 30


@dataclass(frozen=True)
class Access:
    """The outcome of a check: the principal, or why there is none."""

    principal: Principal | None
    problem: str | None = None
    status: int = 401


def check_dashboard(session: Session, token: str | None) -> Access:
    """May ``token`` (an API key) read the dashboard?"""
    if not token:
        return Access(None, "Sign in with an admin or read API key.")
    try:
        principal = authenticate(session, token)
    except Unauthorized as e:
        return Access(None, e.message)
    if principal.role not in DASHBOARD_ROLES:
        what = "a portal token" if principal.role == "portal" else f"an {principal.role} key"
        return Access(None, f"The dashboard needs an admin or read key; this is {what}.", 403)
    return Access(principal)


def check_portal(session: Session, token: str | None) -> Access:
    """May ``token`` (a portal token) read its customer's portal?"""
    if not token:
        return Access(None, "This page needs the portal link your provider sent you.")
    try:
        principal = authenticate(session, token)
    except Unauthorized as e:
        return Access(None, e.message)
    if principal.role != "portal" or not principal.customer:
        return Access(None, "This link is not a customer portal link.", 403)
    return Access(principal)


def dashboard_token(request: Request) -> str | None:
    return request.cookies.get(DASHBOARD_COOKIE)


def portal_token(request: Request) -> str | None:
    return request.cookies.get(PORTAL_COOKIE)


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """Only same-site dashboard paths are followed after signing in (no open redirect)."""
    if not target or not target.startswith("/dashboard") or target.startswith("//"):
        return default
    if any(c in target for c in "\r\n\\"):
        return default
    return target
