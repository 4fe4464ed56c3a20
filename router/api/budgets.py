"""``GET /v1/budgets``: the caller's tenant (and agent) budgets: limits, spend, reservations, what remains."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from router.accounting.budgets import BudgetStatus
from router.api.deps import ServicesDep, get_caller
from router.errors import error_responses

router = APIRouter()


class BudgetList(BaseModel):
    object: str = "list"
    tenant: str
    agent: str | None
    data: list[BudgetStatus]


@router.get(
    "/v1/budgets",
    response_model=BudgetList,
    summary="The caller's budgets and what remains of them",
    responses=error_responses(401, 429, 503),
)
async def list_budgets(request: Request, services: ServicesDep) -> BudgetList:
    caller = await get_caller(request)
    budgets = services.gateway.budgets
    statuses = await budgets.enforcer.remaining(caller.tenant, caller.agent) if budgets else []
    return BudgetList(tenant=caller.tenant, agent=caller.agent, data=statuses)
