"""Customers (service): create, read, list. Takes a session, never commits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from ratecard.billing import repository as repo
from ratecard.billing.catalogs import current_catalog
from ratecard.billing.model import Customer
from ratecard.clock import utc_now, zone
from ratecard.errors import Conflict, InvalidInput
from ratecard.money import is_known_currency
from ratecard.store.models import CustomerRow

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,199}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def create_customer(
    session: Session,
    external_id: str,
    *,
    name: str = "",
    currency: str | None = None,
    timezone: str = "UTC",
    email: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    byok: bool = False,
) -> Customer:
    """A new customer. ``currency`` defaults to the catalog's (USD before any catalog)."""
    if not _ID.match(external_id or ""):
        raise InvalidInput(
            f"customer id {external_id!r}: use 1-200 letters, digits and . _ : @ / + - "
            "(the id your usage events carry)"
        )
    if currency is None:
        cat = current_catalog(session)
        currency = cat.currency if cat is not None else "USD"
    currency = currency.upper()
    if not is_known_currency(currency):
        raise InvalidInput(f"currency {currency!r} is not an ISO 4217 code (USD, EUR, CNY ...)")
    zone(timezone)  # raises TimeInvalid naming the fix
    if email is not None and not _EMAIL.match(email):
        raise InvalidInput(f"email {email!r} does not look like an address (name@example.com)")
    for k in (metadata or {}):
        if not isinstance(k, str):
            raise InvalidInput("metadata keys must be text")
    if session.query(CustomerRow.id).filter(CustomerRow.external_id == external_id).first():
        raise Conflict(f"customer {external_id!r} already exists; see it with "
                       f"`ratecard customers show {external_id}`")
    row = CustomerRow(external_id=external_id, name=name, currency=currency, timezone=timezone,
                      email=email, metadata_=dict(metadata or {}), byok=byok,
                      created_at=utc_now())
    session.add(row)
    session.flush()
    return repo.to_customer(row)


def get_customer(session: Session, external_id: str) -> Customer:
    return repo.to_customer(repo.customer_row(session, external_id))


def list_customers(session: Session) -> list[Customer]:
    return [repo.to_customer(r) for r in repo.customer_rows(session)]
