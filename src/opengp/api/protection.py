"""Protection every response gets: security headers, no caching of record data, and rate
limits on the endpoints that take secrets (sign-in and tokens).

Rate limits are kept per process (each `opengp serve` worker counts alone), per client
address and endpoint: enough to turn a password or secret guessing run into a crawl, on top
of the per-account lockout.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = {
    # Pages load only their own resources, may not be framed, and send no referrer.
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HSTS = "max-age=31536000; includeSubDomains"
# Record data and tokens must not be kept by browsers or proxies; discovery documents may.
NO_STORE_PREFIXES = ("/fhir", "/oauth2")
CACHEABLE = ("/fhir/metadata", "/fhir/.well-known/", "/oauth2/jwks")
# Endpoints that check a secret, with (requests, per seconds) allowed per client address.
LIMITED: dict[str, tuple[int, float]] = {
    "/oauth2/token": (30, 60.0),
    "/oauth2/authorize": (30, 60.0),
    "/oauth2/introspect": (120, 60.0),
    "/oauth2/revoke": (30, 60.0),
    # The screens' sign-in forms (api/web): passwords and one-time-password replacements.
    "/staff/sign-in": (30, 60.0),
    "/patient/sign-in": (30, 60.0),
    "/staff/new-password": (30, 60.0),
    "/patient/new-password": (30, 60.0),
}


class TokenBuckets:
    """A token bucket per key; `take` says how long to wait (0: go ahead)."""

    def __init__(
        self, capacity: int, per_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.rate = capacity / per_seconds
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.lock = threading.Lock()
        self.max_keys = 10_000

    def take(self, key: str) -> float:
        now = self.clock()
        with self.lock:
            tokens, last = self.buckets.pop(key, (float(self.capacity), now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self.buckets[key] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self.buckets) > self.max_keys:
                self.buckets.popitem(last=False)
        return wait


class ProtectionMiddleware:
    def __init__(self, app: ASGIApp, limits: dict[str, tuple[int, float]] | None = None) -> None:
        self.app = app
        self.buckets = {path: TokenBuckets(*limit) for path, limit in (limits or LIMITED).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        buckets = self.buckets.get(path)
        if buckets is not None and scope["method"] == "POST":
            client = scope.get("client")
            wait = buckets.take(client[0] if client else "unknown")
            if wait > 0:
                await _too_many(wait, send)
                return
        secure = scope.get("scheme") == "https"
        no_store = path.startswith(NO_STORE_PREFIXES) and not path.startswith(CACHEABLE)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if secure:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if no_store:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


async def _too_many(wait: float, send: Send) -> None:
    body = b'{"error":"slow_down","error_description":"too many requests; try again later"}'
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(math.ceil(wait)).encode()),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in HEADERS.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
