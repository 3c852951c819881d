"""Prometheus metrics: request counts and latencies by route kind, never by patient data."""

from __future__ import annotations

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


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            label = area(scope["path"])
            self.metrics.requests.labels(scope["method"], label, str(status)).inc()
            self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - start)
