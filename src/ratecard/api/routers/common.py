"""Path and query parameters the routers share."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query

from ratecard.clock import parse_time

CustomerPath = Annotated[str, Path(min_length=1, max_length=200,
                                   description="The customer's id (what events carry).")]
CustomerQ = Annotated[str | None, Query(min_length=1, max_length=200,
                                        description="Only this customer.")]
AtQ = Annotated[str | None, Query(max_length=64,
                                  description="As of this time (RFC 3339 or a date, UTC; "
                                              "default now).")]
InvoicePath = Annotated[str, Path(min_length=1, max_length=64,
                                  description="Invoice id (12) or number (INV-000012).")]


def at_time(text: str | None, field: str = "at") -> datetime | None:
    """An optional time parameter (RFC 3339, or a date meaning midnight UTC)."""
    return parse_time(text, field=field, default_tz="UTC") if text else None
