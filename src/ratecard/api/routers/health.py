"""``GET /v1/health``: is the server up (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter

import ratecard
from ratecard.api.http import Json, ok

router = APIRouter(tags=["health"])


@router.get("/v1/health", summary="Liveness: the server answers (no key needed)")
def health() -> Json:
    return ok({"status": "ok", "version": ratecard.__version__})
