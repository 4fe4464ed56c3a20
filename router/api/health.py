"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from router.api.deps import ServicesDep

router = APIRouter()


@router.get("/healthz", summary="Liveness: the process serves HTTP")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: policy loaded; degraded components listed")
async def readyz(services: ServicesDep) -> JSONResponse:
    degraded = services.degraded()
    body: dict[str, Any] = {
        "status": "degraded" if degraded else "ready",
        "degraded": degraded,
        "policy_version": services.policies.active.version,
        "simulator": services.simulator.base_url if services.simulator else None,
    }
    # Degraded still serves (in-process state, spooled ledger), so it stays in the load balancer's rotation.
    return JSONResponse(body, status_code=200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    body, content_type = services.metrics.exposition()
    return Response(body, media_type=content_type)
