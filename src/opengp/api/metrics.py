"""Every request passes here once: counted and timed for Prometheus, and guarded so that an
unexpected error becomes a logged 500 OperationOutcome, never a stack trace.

Labels are coarse (method, first path segment, FHIR type, status): ids never become labels,
and nothing about a request is logged, since it may carry patient data.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opengp.api.fhir import error_response
from opengp.fhir.errors import ServerError

log = logging.getLogger("opengp")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "opengp_http_requests",
            "HTTP requests",
            ["method", "area", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "opengp_http_request_seconds",
            "HTTP request latency",
            ["method", "area"],
            registry=self.registry,
        )

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def area(path: str) -> str:
    """A coarse label (first path segment, and the FHIR type): ids never become labels."""
    parts = path.strip("/").split("/")
    if parts[0] == "fhir":
        return "fhir/" + parts[1] if len(parts) > 1 and parts[1][:1].isupper() else "fhir"
    return parts[0] or "root"


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        except Exception:
            log.exception("unhandled error on %s", scope["method"])
            if status:  # the response had started: nothing sensible can follow it
                raise
            status = 500
            failure = ServerError("the server failed to handle the request; it has been logged")
            await error_response(failure)(scope, receive, send)
        finally:
            label = area(scope["path"])
            self.metrics.requests.labels(scope["method"], label, str(status or 500)).inc()
            self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - start)
