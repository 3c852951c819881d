"""The one place that wires implementations together into the ASGI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opengp.api import health, landing
from opengp.api.fhir import FhirEndpoint, error_response
from opengp.api.metrics import Metrics, MetricsMiddleware
from opengp.config import Settings
from opengp.fhir.errors import FhirError, ServerError
from opengp.store import ResourceStore
from opengp.store.sql import SqlStore

log = logging.getLogger("opengp")
FHIR_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class CatchAll:
    """Last line of defence: an unexpected error becomes a logged 500, never a stack trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            # No request details: they may carry patient data.
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("type"))
            if started or scope["type"] != "http":
                raise
            failure = ServerError("the server failed to handle the request; it has been logged")
            await error_response(failure)(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/fhir"):
        return error_response(FhirError(exc.detail, status=exc.status_code))
    return PlainTextResponse(exc.detail, status_code=exc.status_code)


def create_app(settings: Settings | None = None, store: ResourceStore | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    the_store = store or SqlStore.from_url(settings.database_url)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if store is None:
            the_store.dispose()

    fhir = FhirEndpoint(the_store, settings)
    app = Starlette(
        routes=[
            Route("/", landing.landing),
            Route("/patient", landing.patient_services),
            Route("/staff", landing.staff_sign_in),
            Route("/healthz", health.healthz),
            Route("/readyz", health.readyz(the_store)),
            Route("/metrics", metrics.endpoint),
            Route("/fhir", fhir.handle, methods=FHIR_METHODS),
            Route("/fhir/{path:path}", fhir.handle, methods=FHIR_METHODS),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(CatchAll)
    return app
