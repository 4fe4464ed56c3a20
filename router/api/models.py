"""``GET /v1/models``: ``auto``, the tiers and the deployments, each usable as ``model``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from router.api.deps import ServicesDep, get_caller
from router.errors import error_responses
from router.schemas import ModelCard, ModelList

router = APIRouter()


@router.get(
    "/v1/models",
    response_model=ModelList,
    summary="List the models a client may ask for",
    responses=error_responses(401, 429, 503),
)
async def list_models(request: Request, services: ServicesDep) -> ModelList:
    caller = await get_caller(request)
    config = services.loaded.config
    allowance = services.gateway.allowance
    created = int(services.policies.active.loaded_at)
    cards = [ModelCard(id="auto", created=created, owned_by="switchboard")]
    cards += [
        ModelCard(id=tier, created=created, owned_by="switchboard")
        for tier in config.tiers
        if allowance.may_use_tier(caller, tier)
    ]
    cards += [
        ModelCard(id=d.name, created=created, owned_by=d.provider_prefix or "openai")
        for d in config.deployments
        if allowance.permits(caller, d.name)
    ]
    return ModelList(data=cards)
