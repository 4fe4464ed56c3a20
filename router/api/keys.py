"""Admin endpoints for virtual keys (admin key required): issue, list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from router.api.deps import ServicesDep, require_admin
from router.errors import InvalidRequest, NotFound, error_responses
from router.keys import IssuedKey, KeyRecord, KeySpec

router = APIRouter(
    prefix="/admin/keys", dependencies=[Depends(require_admin)], responses=error_responses(400, 401, 503)
)


class KeyList(BaseModel):
    object: str = "list"
    data: list[KeyRecord]


def _check_known(kind: str, requested: list[str] | None, known: set[str]) -> None:
    unknown = sorted(set(requested or ()) - known)
    if unknown:
        raise InvalidRequest(
            f"unknown {kind} {unknown}; this gateway has {sorted(known)}", param=f"allowed_{kind}", code="invalid_value"
        )


@router.post(
    "",
    status_code=201,
    response_model=IssuedKey,
    summary="Issue a key; the response is the only time its material is shown",
)
async def create_key(spec: KeySpec, services: ServicesDep, response: Response) -> IssuedKey:
    config = services.gateway.config
    _check_known("tiers", spec.allowed_tiers, set(config.tiers))
    _check_known("models", spec.allowed_models, {d.name for d in config.deployments})
    response.headers["cache-control"] = "no-store"
    return await services.auth.keys.create(spec)


@router.get("", response_model=KeyList, summary="Keys of one tenant or of all (never their material or hashes)")
async def list_keys(services: ServicesDep, tenant: str | None = None) -> KeyList:
    return KeyList(data=await services.auth.keys.list(tenant))


@router.delete(
    "/{key_id}",
    response_model=KeyRecord,
    responses=error_responses(404),
    summary="Revoke a key; it stops working at once here",
)
async def revoke_key(key_id: str, services: ServicesDep) -> KeyRecord:
    record = await services.auth.keys.revoke(key_id)
    if record is None:
        raise NotFound(f"no key '{key_id}'", param="key_id", code="key_not_found")
    return record
