"""FastAPI dependencies: the app's services and the caller of a request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from router.gateway import Gateway
from router.identifiers import check_caller_headers
from router.services import Services
from router.types import Caller


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_gateway(request: Request) -> Gateway:
    return get_services(request).gateway


async def get_caller(request: Request) -> Caller:
    """The tenant and agent of a request: from its virtual key, or from headers when keys are not configured.

    ``X-Tenant`` and ``X-Agent`` are checked first: 400 if malformed (call ids are checked by the gateway).
    """
    check_caller_headers(request.headers)
    return await get_services(request).auth.caller(request.headers)


async def require_admin(request: Request) -> None:
    get_services(request).auth.require_admin(request.headers)


ServicesDep = Annotated[Services, Depends(get_services)]
