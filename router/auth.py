"""Who is calling.

Once any virtual key has been issued (or ``require_keys`` is set), every ``/v1`` request needs
``Authorization: Bearer sb-...``: the tenant, agent and limits come from the key, and ``X-Tenant`` is ignored;
``X-Agent`` names the agent only when the key has none. Until then the gateway is open and tenants come
from ``X-Tenant`` / ``X-Agent``. Revoking every key does not reopen it. Admin endpoints need the admin key.

Fail closed: whether keys are required, and whether a key is valid, come from the system of record (through a
cache of at most 5 s); when it cannot be asked the request gets 503, never the open path.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from router import headers as H
from router.errors import AuthenticationError
from router.keys import KeyRecord, KeyRing, build_key_store
from router.ratelimit import RateLimiter
from router.redisclient import SharedRedis
from router.settings import Settings
from router.types import Caller

DEFAULT_TENANT = "default"


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _optional_set(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def key_caller(record: KeyRecord, headers: Mapping[str, str]) -> Caller:
    return Caller(
        tenant=record.tenant,
        agent=record.agent or headers.get(H.AGENT),
        key_id=record.key_id,
        allowed_tiers=_optional_set(record.allowed_tiers),
        allowed_models=_optional_set(record.allowed_models),
        agent_pinned=record.agent is not None,
    )


class Authenticator:
    def __init__(
        self, admin_key: str | None, keys: KeyRing, limiter: RateLimiter, *, require_keys: bool = False
    ) -> None:
        self._admin_key = admin_key
        self.keys = keys
        self.limiter = limiter
        self._require_keys = require_keys

    async def keys_required(self) -> bool:
        return self._require_keys or await self.keys.issued_any()

    async def caller(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a request, counted against its key's RPM; 401 without a valid key when keys are required."""
        if not await self.keys_required():
            return Caller(tenant=headers.get(H.TENANT) or DEFAULT_TENANT, agent=headers.get(H.AGENT))
        token = bearer_token(headers)
        if token is None:
            raise AuthenticationError("an API key is required: send 'Authorization: Bearer <key>'")
        record = await self.keys.authenticate(token)
        if record is None:
            # Never echo the key: error bodies end up in client logs.
            raise AuthenticationError("the API key is invalid or has been revoked")
        caller = key_caller(record, headers)
        await self.limiter.admit_request(caller)
        return caller

    def require_admin(self, headers: Mapping[str, str]) -> None:
        token = bearer_token(headers)
        if self._admin_key is None:
            raise AuthenticationError("admin endpoints are disabled: set SWITCHBOARD_ADMIN_KEY")
        if token is None or not hmac.compare_digest(token.encode(), self._admin_key.encode()):
            raise AuthenticationError("a valid admin key is required")

    async def aclose(self) -> None:
        await self.keys.aclose()


def build_authenticator(
    settings: Settings, redis: SharedRedis | None, *, require_keys: bool = False, postgres: Any | None = None
) -> Authenticator:
    """Keys in the system of record (PostgreSQL pool if given, else SQLite); rate limits in Redis when it is
    configured (the process's shared client, so shared by replicas), else in-process."""
    keys = KeyRing(build_key_store(settings, postgres))
    return Authenticator(settings.admin_key, keys, RateLimiter(keys, redis), require_keys=require_keys)
