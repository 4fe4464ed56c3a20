"""Who is calling. Without virtual keys the gateway is open; tenants come from X-Tenant / X-Agent headers."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from router import headers as H
from router.errors import AuthenticationError
from router.gateway import Caller

DEFAULT_TENANT = "default"


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Authenticator:
    def __init__(self, admin_key: str | None) -> None:
        self._admin_key = admin_key

    async def caller(self, headers: Mapping[str, str]) -> Caller:
        return Caller(tenant=headers.get(H.TENANT) or DEFAULT_TENANT, agent=headers.get(H.AGENT))

    def require_admin(self, headers: Mapping[str, str]) -> None:
        token = bearer_token(headers)
        if self._admin_key is None:
            raise AuthenticationError("admin endpoints are disabled: set SWITCHBOARD_ADMIN_KEY")
        if token is None or not hmac.compare_digest(token.encode(), self._admin_key.encode()):
            raise AuthenticationError("a valid admin key is required")
