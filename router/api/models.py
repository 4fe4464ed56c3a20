"""``GET /v1/models``: ``auto``, the tiers and the deployments, each usable as ``model``."""

from __future__ import annotations

from fastapi import APIRouter

from router.api.deps import ServicesDep
from router.schemas import ModelCard, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList, summary="List the models a client may ask for")
async def list_models(services: ServicesDep) -> ModelList:
    config = services.loaded.config
    created = int(services.policies.active.loaded_at)
    cards = [ModelCard(id="auto", created=created, owned_by="switchboard")]
    cards += [ModelCard(id=tier, created=created, owned_by="switchboard") for tier in config.tiers]
    cards += [ModelCard(id=d.name, created=created, owned_by=d.provider_prefix or "openai") for d in config.deployments]
    return ModelList(data=cards)
