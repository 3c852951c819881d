"""Operational endpoints: /healthz (process alive), /readyz (database reachable and migrated)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from opengp.store import ResourceStore


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readyz(store: ResourceStore):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> JSONResponse:
        ready, detail = await run_in_threadpool(store.is_ready)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "detail": detail},
            status_code=200 if ready else 503,
        )

    return endpoint
