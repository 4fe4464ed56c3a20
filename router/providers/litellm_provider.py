"""Everything that is not OpenAI-compatible (Anthropic, Bedrock, Gemini, Azure, ...) through litellm.

litellm is imported on first use: it costs seconds at import and gateways that only talk to OpenAI-compatible
upstreams never pay for it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from router.config import Deployment, Timeouts
from router.providers import normalise
from router.providers.base import ProviderError, failure_kind_of_status, parse_retry_after
from router.providers.params import forwarded_params

NO_KEY = "no-key-configured"
# Set by the gateway itself below.
_HANDLED_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})
# OpenAI parameters litellm reads as its own: ``metadata`` carries litellm's routing and budget state, not OpenAI's
# stored-completion tags, so a caller's metadata must never reach it.
_LITELLM_OWN_FIELDS = frozenset({"metadata"})


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY_DISABLED", "true")
    import litellm

    litellm.drop_params = True  # a parameter one provider lacks must not fail the turn
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMProvider:
    def __init__(self, resolve_api_base: dict[str, str] | None = None, serves: Sequence[str] = ()) -> None:
        # Checked here, at start-up, rather than at the first request: litellm is an optional extra.
        if serves and importlib.util.find_spec("litellm") is None:
            raise RuntimeError(
                f"deployments {', '.join(serves)} are not OpenAI-compatible and need litellm: "
                "pip install 'switchboard[litellm]'"
            )
        self._resolve_api_base = resolve_api_base or {}
        self._module: Any = None

    def _call_kwargs(self, deployment: Deployment, body: dict[str, Any], timeouts: Timeouts) -> dict[str, Any]:
        if self._module is None:
            self._module = _litellm()
        params = {
            k: v for k, v in forwarded_params(body).items() if k not in _HANDLED_FIELDS and k not in _LITELLM_OWN_FIELDS
        }
        kwargs: dict[str, Any] = {
            **params,
            **deployment.extra_body,
            "model": deployment.model,
            "messages": body["messages"],
            "timeout": timeouts.total,
            "num_retries": 0,  # the fallback chain decides about retries
        }
        if deployment.api_base is not None:
            kwargs["api_base"] = self._resolve_api_base.get(deployment.api_base, deployment.api_base)
        # SDK-based providers refuse to send a request without a key, even to a self-hosted upstream that needs none.
        key = deployment.api_key() or (NO_KEY if deployment.api_base is not None else None)
        if key:
            kwargs["api_key"] = key
        return kwargs

    async def complete(self, deployment: Deployment, body: dict[str, Any], timeouts: Timeouts) -> dict[str, Any]:
        kwargs = self._call_kwargs(deployment, body, timeouts)
        try:
            async with asyncio.timeout(timeouts.total):
                response = await self._module.acompletion(**kwargs)
        except TimeoutError as exc:
            raise ProviderError("timeout", f"{deployment.name}: no answer within {timeouts.total:g}s") from exc
        except Exception as exc:
            raise _translate(deployment, exc) from exc
        return normalise.completion(response.model_dump(exclude_none=False))

    async def stream(
        self, deployment: Deployment, body: dict[str, Any], timeouts: Timeouts
    ) -> AsyncIterator[dict[str, Any]]:
        kwargs = self._call_kwargs(deployment, body, timeouts)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        try:
            stream = await self._module.acompletion(**kwargs)
            async for chunk in stream:
                yield normalise.chunk(chunk.model_dump(exclude_none=False))
        except ProviderError:
            raise
        except Exception as exc:
            raise _translate(deployment, exc) from exc

    async def aclose(self) -> None:
        if self._module is not None:
            close = getattr(self._module, "close_litellm_async_clients", None)
            if close is not None:
                await close()


def _translate(deployment: Deployment, exc: Exception) -> ProviderError:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    if isinstance(status, int) and status >= 400:
        kind = failure_kind_of_status(status)
    elif "Timeout" in name:
        kind = "timeout"
    elif "Connection" in name:
        kind = "connect"
    else:
        kind = "server"
    retry_after = None
    response = getattr(exc, "response", None)
    if response is not None:
        retry_after = parse_retry_after(getattr(response, "headers", {}).get("retry-after"))
    return ProviderError(kind, f"{deployment.name}: {name}: {exc}", status=status, retry_after=retry_after)
