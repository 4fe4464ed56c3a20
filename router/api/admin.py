"""Admin endpoints (admin key required): policy reload and status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from router.api.deps import ServicesDep, require_admin
from router.errors import InvalidRequest, error_responses
from router.services import Services
from router.yamlsource import ConfigFileError

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], responses=error_responses(400, 401))


class ReloadRequest(BaseModel):
    path: str | None = None


def _policy_status(services: Services) -> dict[str, Any]:
    store = services.policies
    return {
        "version": store.active.version,
        "path": str(store.active.path),
        "loaded_at": store.active.loaded_at,
        "shadow_version": store.shadow.version if store.shadow else None,
        "last_error": store.last_error,
    }


@router.get("/policy", summary="The active policy's version and the last reload error")
async def policy_status(services: ServicesDep) -> dict[str, Any]:
    return _policy_status(services)


@router.post("/policy/reload", summary="Reload the policy (optionally from another file); the old one stays on error")
async def reload_policy(services: ServicesDep, request: ReloadRequest | None = None) -> dict[str, Any]:
    try:
        services.policies.reload(Path(request.path) if request and request.path else None)
    except ConfigFileError as exc:
        raise InvalidRequest(str(exc), param="policy", code="invalid_policy") from exc
    return _policy_status(services)


@router.get("/health/deployments", summary="Circuit breaker state and recent errors of every deployment")
async def deployment_health(services: ServicesDep) -> dict[str, Any]:
    return {"deployments": services.gateway.chain.health.snapshot()}
