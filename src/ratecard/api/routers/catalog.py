"""The catalog: show the applied one, apply a new one (or dry-run it), plans and versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ratecard.api.auth import access
from ratecard.api.deps import transaction
from ratecard.api.http import CursorQ, Json, LimitQ, ok, page
from ratecard.billing import catalogs
from ratecard.billing.catalogs import PlanVersion
from ratecard.catalog.loader import parse_catalog_text
from ratecard.errors import NotFound

router = APIRouter(tags=["catalog"])

PlanCode = Annotated[str, Path(min_length=1, max_length=200)]


class CatalogApply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=5_000_000,
                        description="The catalog as YAML (or JSON) text.")
    dry_run: bool = Field(False, description="Compute the diff, change nothing.")


def plan_json(pv: PlanVersion) -> dict[str, Any]:
    return {
        "code": pv.code,
        "version": pv.version,
        "name": pv.plan.name or pv.code,
        "currency": pv.currency,
        "latest": pv.latest,
        "retired": pv.retired,
        "created_at": pv.created_at,
        "digest": pv.digest,
        "plan": pv.definition.get("plan", {}),
        "meters": dict(pv.meters),
    }


@router.get("/v1/catalog", summary="The catalog as last applied", **access("read"))
def show_catalog(request: Request) -> Json:
    with transaction(request) as s:
        cat = catalogs.current_catalog(s)
        revision = catalogs.current_revision(s)
    if cat is None:
        raise NotFound("no catalog applied yet; POST /v1/catalog or `ratecard catalog apply`")
    return ok({"revision": revision, "catalog": catalogs.catalog_document(cat)})


@router.post("/v1/catalog", **access(),
             summary="Apply a catalog: version every changed plan (dry_run: only the diff)")
def apply_catalog(request: Request, body: CatalogApply) -> Json:
    catalog = parse_catalog_text(body.source, "catalog")
    with transaction(request) as s:
        result = catalogs.apply_catalog(s, catalog, body.source, dry_run=body.dry_run)
    return ok({**result.to_dict(), "diff": result.lines()})


@router.get("/v1/plans", summary="Every plan at its newest version", **access("read"))
def list_plans(request: Request, limit: LimitQ = 100, cursor: CursorQ = None) -> Json:
    with transaction(request) as s:
        plans = catalogs.list_plans(s)
    return page(plans, lambda p: p.code, limit, cursor, plan_json)


@router.get("/v1/plans/{code}", summary="A plan at its newest version", **access("read"))
def show_plan(request: Request, code: PlanCode) -> Json:
    with transaction(request) as s:
        pv = catalogs.plan_version(s, code)
    return ok(plan_json(pv))


@router.get("/v1/plans/{code}/versions", summary="Every version of a plan", **access("read"))
def list_versions(request: Request, code: PlanCode, limit: LimitQ = 100,
                  cursor: CursorQ = None) -> Json:
    with transaction(request) as s:
        versions = catalogs.plan_versions(s, code)
    return page(versions, lambda p: p.version, limit, cursor, plan_json)


@router.get("/v1/plans/{code}/versions/{version}", summary="One version of a plan",
            **access("read"))
def show_version(request: Request, code: PlanCode,
                 version: Annotated[int, Path(ge=1, le=1_000_000)]) -> Json:
    with transaction(request) as s:
        pv = catalogs.plan_version(s, code, version)
    return ok(plan_json(pv))
