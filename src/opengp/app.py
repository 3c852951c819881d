"""The one place that wires implementations together into the ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from opengp.access.principal import Principal
from opengp.api import bulk, health, openapi, web
from opengp.api.fhir import FhirEndpoint, error_response
from opengp.api.metrics import Metrics, RequestMiddleware
from opengp.api.oauth import OAuthEndpoints
from opengp.api.protection import ProtectionMiddleware
from opengp.api.web.screen_audit import ScreenAudit
from opengp.config import Settings
from opengp.fhir.errors import FhirError, Unauthorized
from opengp.services.fhir.guard import record_failure
from opengp.store import ResourceStore
from opengp.store.sql import SqlStore

FHIR_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def _http_error(store: ResourceStore) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The answer to a request refused by the routing (no such path: 404; method: 405) or
    by a screen, audited as a failure like every other request."""

    async def answer(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = FhirError(exc.detail, status=exc.status_code)
        await run_in_threadpool(record_failure, store, error)
        if request.url.path.startswith("/fhir"):
            return error_response(error)
        return PlainTextResponse(exc.detail, status_code=exc.status_code)

    return answer


def create_app(settings: Settings | None = None, store: ResourceStore | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    the_store = store or SqlStore.from_url(settings.database_url)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if store is None:
            the_store.dispose()

    oauth = OAuthEndpoints(settings, the_store)

    def identify(request: Request) -> Callable[[], Principal]:
        """Who is asking (the bearer token); a refusal is audited before it is answered."""
        principal = oauth.identify(request)

        def audited() -> Principal:
            try:
                return principal()
            except Unauthorized as failure:
                record_failure(the_store, failure)
                raise

        return audited

    fhir = FhirEndpoint(the_store, settings, identify)
    app = Starlette(
        routes=[
            *web.routes(the_store, settings, oauth.service.signing_key),  # the screens
            Route("/healthz", health.healthz),
            Route("/readyz", health.readyz(the_store)),
            Route("/metrics", metrics.endpoint),
            Route("/openapi.json", openapi.endpoint),
            *oauth.routes(),  # before /fhir/{path}: it holds /fhir/.well-known/...
            *bulk.routes(the_store, settings, identify),  # before /fhir/{path}: $export ...
            Route("/fhir", fhir.handle, methods=FHIR_METHODS),
            Route("/fhir/{path:path}", fhir.handle, methods=FHIR_METHODS),
        ],
        exception_handlers={HTTPException: _http_error(the_store)},
        lifespan=lifespan,
    )
    app.add_middleware(ScreenAudit, store=the_store)
    app.add_middleware(ProtectionMiddleware)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    return app
