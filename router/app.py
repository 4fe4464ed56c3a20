"""The FastAPI application factory; services live on ``app.state`` for the app's lifetime."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from router.access_log import AccessLog
from router.accounting.speech import SpeechPrices, usage_report_schema
from router.api import admin, budgets, calls, chat, health, keys, models
from router.api.guards import BodyDeadline, InternalEndpoints, LastResortErrors
from router.config import Limits
from router.errors import install_error_handlers
from router.services import build_services
from router.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings)
        app.state.services = services
        # Start-up leaves hundreds of thousands of long-lived objects (litellm's cost map, the classifier, the
        # tokenizer); freezing them keeps full garbage collections from scanning them mid-request, which
        # otherwise shows as stalls of hundreds of milliseconds at the p99.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await services.aclose()

    # Without docs, FastAPI serves no /docs, /redoc or /openapi.json.
    docs: dict[str, Any] = {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        summary="OpenAI-compatible gateway that routes each turn to the cheapest safe model",
        lifespan=lifespan,
        **docs,
    )
    install_error_handlers(app)
    # Added innermost first: the last resort wraps everything, the body deadline sits next to the routes.
    app.add_middleware(BodyDeadline, timeout_seconds=settings.body_timeout_seconds)
    internal_tokens = [t for t in (settings.metrics_token, settings.admin_key) if t] if settings.metrics_token else []
    app.add_middleware(InternalEndpoints, tokens=internal_tokens)
    app.add_middleware(LastResortErrors)
    if settings.access_log:
        app.add_middleware(AccessLog)  # outermost: it sees the status the client got, the last resort's 500 too
    for module in (chat, models, calls, budgets, health, admin, keys):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            limits = app.state.services.loaded.config.limits if hasattr(app.state, "services") else Limits()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(chat.request_schemas(limits))
            prices = app.state.services.loaded.config.speech_prices if hasattr(app.state, "services") else None
            schema["components"]["schemas"]["CallUsageReport"] = usage_report_schema(prices or SpeechPrices())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
