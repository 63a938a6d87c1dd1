"""API keys and portal tokens: create (shown once), list, revoke, authenticate.

A token looks like ``rck_<key_id>_<secret>`` (an API key) or ``rcp_<key_id>_<secret>``
(a portal token). Only the SHA-256 of the whole token is stored; ``key_id`` is the
public handle that lists show and ``revoke`` takes.

Roles (see ``docs/api.md`` for what each may call):

* ``admin``: everything;
* ``ingest``: send events and ask entitlement checks (what product code does);
* ``read``: read everything, quotes and checks, change nothing;
* ``portal`` (a portal token): read one customer's own usage, invoices, credits and
  limits, nothing else.

Every function takes a session and never commits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ratecard.clock import utc_now
from ratecard.errors import InvalidInput, NotFound, Unauthorized
from ratecard.store.api_models import ApiKeyRow

Role = Literal["admin", "ingest", "read", "portal"]
KEY_ROLES: tuple[str, ...] = ("admin", "ingest", "read")
ALL_ROLES: tuple[str, ...] = (*KEY_ROLES, "portal")
KEY_PREFIX = "rck"
PORTAL_PREFIX = "rcp"
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Principal:
    """Who is calling: the credential's public id, its role, and (portal) its customer."""

    key_id: str
    role: str
    customer: str | None = None


@dataclass(frozen=True)
class Credential:
    """A stored key or portal token, without its secret."""

    key_id: str
    role: str
    name: str
    customer: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        now = utc_now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def to_dict(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "role": self.role,
            "name": self.name,
            "customer": self.customer,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
        }


@dataclass(frozen=True)
class Created:
    """A new credential and its token: the only time the token is visible."""

    token: str
    credential: Credential

    def to_dict(self) -> dict[str, object]:
        return {"token": self.token, **self.credential.to_dict()}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _credential(row: ApiKeyRow) -> Credential:
    return Credential(key_id=row.key_id, role=row.role, name=row.name, customer=row.customer,
                      created_at=row.created_at, expires_at=row.expires_at,
                      revoked_at=row.revoked_at)


def _new(session: Session, prefix: str, role: str, name: str, customer: str | None,
         expires_in: timedelta | None) -> Created:
    key_id = secrets.token_hex(6)
    token = f"{prefix}_{key_id}_{secrets.token_urlsafe(24)}"
    now = utc_now()
    row = ApiKeyRow(key_id=key_id, secret_hash=hash_token(token), role=role, name=name,
                    customer=customer, created_at=now,
                    expires_at=now + expires_in if expires_in is not None else None)
    session.add(row)
    session.flush()
    return Created(token=token, credential=_credential(row))


def create_key(session: Session, role: str, name: str = "") -> Created:
    """A new API key with ``role`` (admin, ingest or read)."""
    if role not in KEY_ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(KEY_ROLES)}")
    return _new(session, KEY_PREFIX, role, name, None, None)


def create_portal_token(session: Session, customer: str, name: str = "",
                        expires_in: timedelta | None = None) -> Created:
    """A portal token that reads ``customer``'s own data and nothing else.

    The customer must exist (create it first with ``ratecard customers create``).
    """
    from ratecard.store.models import CustomerRow

    if not customer or not customer.strip():
        raise InvalidInput("a portal token needs a customer: --customer ID")
    found = session.scalars(
        select(CustomerRow.id).where(CustomerRow.external_id == customer)
    ).first()
    if found is None:
        raise NotFound(f"no customer {customer!r}; create it first: "
                       f"ratecard customers create {customer}")
    return _new(session, PORTAL_PREFIX, "portal", name, customer, expires_in)


def list_keys(session: Session, *, include_revoked: bool = False) -> list[Credential]:
    """Every key and portal token (active only unless ``include_revoked``), oldest first."""
    rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))
    out = [_credential(r) for r in rows]
    return out if include_revoked else [c for c in out if c.revoked_at is None]


def revoke_key(session: Session, key_id: str) -> Credential:
    """Revoke a key or portal token by its public id (revoking twice is harmless)."""
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).first()
    if row is None:
        raise NotFound(f"no key {key_id!r}; `ratecard keys list` shows the key ids")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        session.flush()
    return _credential(row)


def parse_token(token: str) -> tuple[str, str] | None:
    """``(prefix, key_id)`` of a well-formed token, else ``None``."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] not in (KEY_PREFIX, PORTAL_PREFIX) or not parts[2]:
        return None
    return parts[0], parts[1]


def authenticate(session: Session, token: str) -> Principal:
    """The principal a token stands for, or :class:`Unauthorized`."""
    parsed = parse_token(token)
    if parsed is None:
        raise Unauthorized("the API key is malformed; send `Authorization: Bearer <key>` "
                           "with a key from `ratecard keys create`")
    _, key_id = parsed
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).first()
    if row is None or not hmac.compare_digest(row.secret_hash, hash_token(token)):
        raise Unauthorized("the API key is not valid")
    if row.revoked_at is not None:
        raise Unauthorized(f"the API key {key_id} was revoked")
    if row.expires_at is not None and row.expires_at <= utc_now():
        raise Unauthorized(f"the token {key_id} has expired; ask for a new one")
    return Principal(key_id=row.key_id, role=row.role, customer=row.customer)
