"""Admin endpoints (admin key required): policy reload and status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from router.api.deps import ServicesDep, require_admin
from router.errors import InvalidRequest, PermissionDenied, error_responses
from router.services import Services
from router.yamlsource import ConfigFileError

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], responses=error_responses(400, 401))


class ReloadRequest(BaseModel):
    path: str | None = Field(
        default=None, max_length=4096, description="A policy file in the policy folder (relative to it, or absolute)."
    )


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


def _policy_file(folder: Path, requested: str) -> Path:
    """The file ``requested`` names (relative to the policy folder), only if it really lies in that folder.

    Symlinks are resolved first, so neither ``..`` nor a link can reach a file outside it.
    """
    try:
        path = (folder / requested).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a symlink loop
        raise InvalidRequest(f"not a usable path: {exc}", param="path", code="invalid_policy") from exc
    if not path.is_relative_to(folder):
        raise PermissionDenied(
            f"policies are loaded only from the policy folder {folder}", param="path", code="policy_path_not_allowed"
        )
    return path


@router.post(
    "/policy/reload",
    summary="Reload the policy (optionally from another file in the policy folder); the old one stays on error",
    responses=error_responses(403),
)
async def reload_policy(services: ServicesDep, request: ReloadRequest | None = None) -> dict[str, Any]:
    store = services.policies
    path = _policy_file(store.folder, request.path) if request and request.path else None
    try:
        # Reading and compiling a policy is file I/O and CPU work: off the event loop that serves the turns.
        await asyncio.to_thread(store.reload, path)
    except ConfigFileError as exc:
        raise InvalidRequest(str(exc), param="path" if path else "policy", code="invalid_policy") from exc
    return _policy_status(services)


@router.get("/health/deployments", summary="Circuit breaker state and recent errors of every deployment")
async def deployment_health(services: ServicesDep) -> dict[str, Any]:
    return {"deployments": services.gateway.chain.health.snapshot()}
