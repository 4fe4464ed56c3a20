"""The fast path: OpenAI-compatible upstreams over pooled keep-alive HTTP.

OpenAI's request parameters (router/providers/params.py) travel to the upstream as the client sent them; any other
field is dropped. Only ``model`` is rewritten (and ``stream_options.include_usage`` forced on streams, so every
streamed turn can be priced). Answers come back through router/providers/normalise.py, like every provider's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from router.config import Deployment, Timeouts
from router.providers import normalise
from router.providers.base import ProviderError, failure_kind_of_status, parse_retry_after
from router.providers.params import forwarded_params
from router.providers.sse import EventTooLarge, decode_events

SSE_DONE = "[DONE]"


class OpenAICompatibleProvider:
    def __init__(self, resolve_api_base: dict[str, str] | None = None, pool_size: int = 512) -> None:
        # Simulated deployments name the placeholder "simulator"; the gateway knows the real address.
        self._resolve_api_base = resolve_api_base or {}
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(), auto_decompress=True
            )
        return self._session

    def _url(self, deployment: Deployment) -> str:
        assert deployment.api_base is not None
        base = self._resolve_api_base.get(deployment.api_base, deployment.api_base).rstrip("/")
        return f"{base}/chat/completions"

    def _headers(self, deployment: Deployment) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        key = deployment.api_key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    @staticmethod
    def _body(deployment: Deployment, body: dict[str, Any], stream: bool) -> bytes:
        upstream = {
            **forwarded_params(body),
            **deployment.extra_body,
            "model": deployment.upstream_model,
            "stream": stream,
        }
        if stream:
            upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            upstream.pop("stream_options", None)
        return orjson.dumps(upstream)

    async def _post(self, deployment: Deployment, payload: bytes, timeouts: Timeouts, first_byte: float) -> Any:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=None)
        try:
            async with asyncio.timeout(first_byte):
                response = await self._client().post(
                    self._url(deployment), data=payload, headers=self._headers(deployment), timeout=timeout
                )
        except TimeoutError as exc:
            raise ProviderError("timeout", f"{deployment.name}: no response within {first_byte:g}s") from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise ProviderError("connect", f"{deployment.name}: cannot connect: {exc}") from exc
        if response.status >= 400:
            await _raise_for_status(deployment, response)
        return response

    async def complete(self, deployment: Deployment, body: dict[str, Any], timeouts: Timeouts) -> dict[str, Any]:
        payload = self._body(deployment, body, stream=False)
        try:
            async with asyncio.timeout(timeouts.total):
                response = await self._post(deployment, payload, timeouts, timeouts.total)
                async with response:
                    raw = await response.read()
        except TimeoutError as exc:
            raise ProviderError("timeout", f"{deployment.name}: no answer within {timeouts.total:g}s") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("dropped", f"{deployment.name}: connection lost: {exc}") from exc
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProviderError("server", f"{deployment.name}: answer is not JSON") from exc
        if not isinstance(answer, dict) or "choices" not in answer:
            raise ProviderError("server", f"{deployment.name}: answer is not a chat completion")
        return normalise.completion(answer)

    async def stream(
        self, deployment: Deployment, body: dict[str, Any], timeouts: Timeouts
    ) -> AsyncIterator[dict[str, Any]]:
        payload = self._body(deployment, body, stream=True)
        response = await self._post(deployment, payload, timeouts, timeouts.first_token)
        try:
            finished = False
            async for chunk in _sse_events(response.content, deployment):
                if chunk is None:
                    finished = True
                    break
                yield chunk
            if not finished:
                raise ProviderError("dropped", f"{deployment.name}: stream ended without [DONE]")
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            raise ProviderError("dropped", f"{deployment.name}: stream broken: {exc}") from exc
        finally:
            # Closing (not releasing) drops the connection, which cancels the upstream generation mid-stream.
            response.close()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _sse_events(content: aiohttp.StreamReader, deployment: Deployment) -> AsyncIterator[dict[str, Any] | None]:
    """Parsed events; ``None`` marks ``[DONE]``. An ``error`` event or one over the size limit is a ProviderError."""
    try:
        async for message in decode_events(content.iter_any()):
            if message.data == SSE_DONE:
                yield None
                return
            try:
                event = orjson.loads(message.data)
            except orjson.JSONDecodeError as exc:
                raise ProviderError("server", f"{deployment.name}: malformed stream event") from exc
            if isinstance(event, dict) and "error" in event:
                error = event["error"] if isinstance(event["error"], dict) else {"message": str(event["error"])}
                raise ProviderError(
                    "server",
                    f"{deployment.name}: {error.get('message', 'stream error')}",
                    body=normalise.error_body(event),
                )
            if not isinstance(event, dict):
                raise ProviderError("server", f"{deployment.name}: stream event is not a JSON object")
            yield normalise.chunk(event)
    except EventTooLarge as exc:
        # Failing over like a dropped stream: another deployment may well answer sanely.
        raise ProviderError("dropped", f"{deployment.name}: {exc}") from exc


async def _raise_for_status(deployment: Deployment, response: aiohttp.ClientResponse) -> None:
    async with response:
        raw = await response.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    detail = (
        body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    )
    raise ProviderError(
        failure_kind_of_status(response.status),
        f"{deployment.name}: upstream answered {response.status}: {detail or raw[:200].decode(errors='replace')}",
        status=response.status,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        body=normalise.error_body(body),
    )
