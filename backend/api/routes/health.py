"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from backend.api.deps import Ctx
from backend.api.health import run_checks

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="database, broker, chain and Redis, each reported",
            responses={503: {"description": "a configured dependency is failing"}})
async def healthz(ctx: Ctx) -> JSONResponse:
    healthy, report = await run_checks(ctx.checks)
    body: dict[str, Any] = {"status": "ok" if healthy else "failing", "checks": report}
    return JSONResponse(body, 200 if healthy else 503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format")
async def metrics(ctx: Ctx) -> PlainTextResponse:
    return PlainTextResponse(await ctx.metrics.render(ctx.figures),
                             media_type="text/plain; version=0.0.4; charset=utf-8")
