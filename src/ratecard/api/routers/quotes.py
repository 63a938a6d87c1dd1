"""``POST /v1/quotes``: price one period of a plan for given usage (nothing is stored).

The plan comes from the applied catalog (its newest version, or ``version``), or from
a catalog given inline as ``catalog`` (YAML or JSON text) to price a plan not applied
yet. The answer has the shape of ``ratecard quote --json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api.auth import access
from ratecard.api.deps import transaction
from ratecard.api.http import Json, dumps, ok
from ratecard.billing import catalogs
from ratecard.catalog.loader import parse_catalog_text
from ratecard.cli.quote import quote_json
from ratecard.pricing import rate_plan, with_catalog_costs
from ratecard.pricing.usage_file import parse_usage

router = APIRouter(tags=["quotes"])


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str = Field(min_length=1, max_length=200, description="Plan code.")
    version: int | None = Field(None, ge=1, le=1_000_000,
                                description="Plan version (default: the newest).")
    usage: dict[str, Any] = Field(
        default_factory=dict,
        description="Meter key → quantity; for a grouped meter {group value: quantity}; for "
                    "a meter priced per event, the list of event values. Write decimals as "
                    'strings ("0.1") to keep them exact.')
    seats: int | None = Field(None, ge=0, le=1_000_000_000)
    catalog: str | None = Field(None, max_length=5_000_000,
                                description="Price against this catalog (YAML or JSON text) "
                                            "instead of the applied one.")


@router.post("/v1/quotes", summary="Price one period of a plan for given usage",
             **access("read", "ingest"))
def create_quote(request: Request, body: QuoteRequest) -> Json:
    if body.catalog is not None:
        cat = parse_catalog_text(body.catalog, "catalog")
        cat.plan(body.plan)
        code = body.plan
    else:
        with transaction(request) as s:
            pv = catalogs.plan_version(s, body.plan, body.version)
            cat = catalogs.rating_catalog(pv, catalogs.current_catalog(s))
            code = pv.code
    snapshot = parse_usage(dumps(body.usage).decode("utf-8"), cat, name="usage")
    q = rate_plan(cat, code, with_catalog_costs(cat, snapshot), seats=body.seats)
    return ok(quote_json(q))
