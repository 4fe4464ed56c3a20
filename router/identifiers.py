"""Ids a caller sends (call, caller, tenant, agent): short and plain, checked before they reach the ledger, the
call state or a metric label.

An id is 1 to ``ID_MAX_CHARS`` characters of ``A-Z a-z 0-9 . _ : @ -``, enough for UUIDs, SIP call ids, E.164
numbers and slugs. Anything else is a 400 naming the header or field; nothing caller-sized is ever stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from router import headers as H
from router.errors import InvalidRequest
from router.facts import text_or_none

ID_MAX_CHARS = 128
_ID = re.compile(rf"[A-Za-z0-9._:@-]{{1,{ID_MAX_CHARS}}}")
# Checked before the caller is identified; the call and caller ids once it is, so their refusals are the tenant's.
CALLER_HEADERS = (H.TENANT, H.AGENT)


def is_valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def checked_id(value: str, param: str) -> str:
    if not is_valid_id(value):
        raise InvalidRequest(
            f"'{param}' must be 1 to {ID_MAX_CHARS} characters of A-Z, a-z, 0-9, '.', '_', ':', '@' or '-'",
            param=param,
            code="invalid_id",
        )
    return value


def check_caller_headers(headers: Mapping[str, str]) -> None:
    """400 for an ``X-Tenant`` or ``X-Agent`` that is not a valid id (empty ones are absent)."""
    for name in CALLER_HEADERS:
        value = headers.get(name)
        if value:
            checked_id(value, name)


def call_identity(
    headers: Mapping[str, str], metadata: Mapping[str, Any] | None, user: Any, *, strict: bool = True
) -> tuple[str | None, str | None]:
    """The call id (``X-Call-Id``, else ``metadata.call_id``, else ``user`` when it is a valid id) and caller id
    (``X-Caller-Id``, else ``metadata.caller_id``), each checked where it came from: an invalid one is a 400, or
    with ``strict=False`` (recording a request already refused) ``None``."""
    metadata = metadata or {}
    call_id = _first_id(strict, (headers.get(H.CALL_ID), H.CALL_ID), (metadata.get("call_id"), "metadata.call_id"))
    if call_id is None:
        # OpenAI's `user` is free text ("Jane Doe" is fine there): it names the call only when it is a valid id.
        call_id = valid_id_or_none(user)
    caller_id = _first_id(
        strict, (headers.get(H.CALLER_ID), H.CALLER_ID), (metadata.get("caller_id"), "metadata.caller_id")
    )
    return call_id, caller_id


def valid_id_or_none(value: Any) -> str | None:
    """The value when it is a valid id, else ``None``: for recording a request that was already refused."""
    text = text_or_none(value)
    return text if text is not None and is_valid_id(text) else None


def _first_id(strict: bool, *candidates: tuple[Any, str]) -> str | None:
    """The first candidate given decides, valid or not."""
    for value, param in candidates:
        text = text_or_none(value)
        if text is not None:
            return checked_id(text, param) if strict else valid_id_or_none(text)
    return None
