"""The HTTP floor: uvicorn + Starlette answering fixed ~1 KB bytes, run like `opengp serve` runs.

python -m benchmarks.minimal_http --port P
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.payloads import patient

BODY = orjson.dumps({"id": "0b7c4f4e-3f0a-4f9c-9a38-5b1a1d0c6d2e", **patient(0)})
MEDIA = "application/fhir+json; charset=utf-8"


async def fixed(request: Request) -> Response:
    if request.method == "POST":
        await request.body()
    return Response(BODY, media_type=MEDIA)


async def ready(request: Request) -> Response:
    return Response(b"ready", media_type="text/plain")


app = Starlette(routes=[Route("/readyz", ready), Route("/fixed", fixed, methods=["GET", "POST"])])

if __name__ == "__main__":
    args = argparse.ArgumentParser()
    args.add_argument("--port", type=int, required=True)
    port = args.parse_args().port
    # The same server settings as `opengp serve --workers 1` (in-process, no access log).
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)
