"""What a customer used: each meter's quantity (and its groups) over a window."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ratecard.api.auth import access
from ratecard.api.http import Json, ok
from ratecard.api.routers.common import CustomerPath, at_time
from ratecard.api.usage import usage_store
from ratecard.clock import Window, utc_now
from ratecard.errors import TimeInvalid

router = APIRouter(tags=["usage"])

TimeQ = Annotated[str | None, Query(max_length=64,
                                    description="RFC 3339 or a date (midnight UTC).")]


@router.get("/v1/customers/{customer}/usage", **access("read", portal=True),
            summary="A customer's usage of each meter (or one) in [from, to)")
def customer_usage(
    request: Request,
    customer: CustomerPath,
    meter: Annotated[str | None, Query(min_length=1, max_length=200,
                                       description="One meter (default: every meter).")]
    = None,
    start: Annotated[str | None, Query(alias="from", max_length=64,
                                       description="Start, inclusive (default: the first "
                                                   "of this month, UTC).")] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64,
                                     description="End, exclusive (default: now).")] = None,
    group_by: Annotated[str | None, Query(max_length=500,
                                          description="Split by these properties "
                                                      "(comma-separated; default: the "
                                                      "meter's group_by).")] = None,
) -> Json:
    from ratecard.metering import service

    now = utc_now()
    lo = at_time(start, "from") or now.replace(day=1, hour=0, minute=0, second=0,
                                               microsecond=0)
    hi = at_time(end, "to") or now
    if hi <= lo:
        raise TimeInvalid(f"from ({lo.isoformat()}) must be before to ({hi.isoformat()})")
    window = Window(lo, hi)
    gb = [p.strip() for p in group_by.split(",") if p.strip()] if group_by else None
    catalog = service.workspace_catalog(request.app.state.workspace)
    names = [meter] if meter is not None else sorted(catalog.meters) if catalog else []
    if meter is not None:
        service.find_meter(catalog, meter)
    store = usage_store(request.app)
    data = []
    for name in names:
        got = service.customer_usage(store, catalog, customer=customer, meter=name,
                                     window=window, group_by=gb)
        data.append(service.usage_json(customer, window, got))
    return ok({"customer": customer, "from": window.start, "to": window.end, "data": data})
