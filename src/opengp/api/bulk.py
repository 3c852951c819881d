"""HTTP adapter for FHIR Bulk Data: $export and $import kick-offs, job status, file downloads.

The asynchronous request pattern (https://hl7.org/fhir/uv/bulkdata/export.html):
kick-off with `Prefer: respond-async` -> 202 and `Content-Location` (the status URL);
GET status -> 202 with `X-Progress` while it runs, 200 with the manifest when done;
DELETE status -> 202, the job is cancelled (or its files deleted); file URLs need the same
token (`requiresAccessToken: true`).

These are Starlette endpoints of their own, not routes of the FHIR router: uploads and
downloads are streamed (never held in memory), and the kick-off reads `Prefer`. The use
cases, their authorisation and audit are in `opengp.services.bulk.requests`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from email.utils import format_datetime
from typing import IO

import anyio
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from opengp.access.principal import Principal
from opengp.api.fhir import Identify, base_url, error_response, read_body
from opengp.api.negotiation import JSON_TYPES, check_body_type, media_type, response_type
from opengp.config import Settings
from opengp.fhir import jsonio
from opengp.fhir.errors import (
    BadRequest,
    FhirError,
    Issue,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    operation_outcome,
)
from opengp.fhir.references import is_valid_id
from opengp.services.bulk.export import NDJSON, Level
from opengp.services.bulk.importing import MODES
from opengp.services.bulk.jobs import JobRunner, bulk_directory
from opengp.services.bulk.requests import BulkRequests, import_parameters, record_refusal
from opengp.store import ResourceStore
from opengp.store.sql import SqlStore

NDJSON_TYPES = frozenset({NDJSON, "application/ndjson", "application/x-ndjson"})
# An upload is a practice's record: larger than any FHIR request, written straight to disk.
MAX_UPLOAD_BYTES = 8 * 1024**3
CHUNK = 256 * 1024
RETRY_AFTER = "2"


def _preferences(request: Request) -> set[str]:
    """The Prefer header's preferences (RFC 7240): {"respond-async", "handling=lenient"}."""
    header = request.headers.get("prefer", "")
    return {p.strip().lower().replace('"', "") for p in header.replace(";", ",").split(",")}


def _accepted(base: str, job_id: str) -> Response:
    done = Issue(
        "informational", "the request was accepted: poll Content-Location", severity="information"
    )
    return Response(
        orjson.dumps(operation_outcome([done])),
        status_code=202,
        media_type="application/fhir+json",
        headers={"Content-Location": f"{base}/bulk/{job_id}"},
    )


def _file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := handle.read(CHUNK):
            yield chunk
    finally:
        handle.close()


class BulkEndpoints:
    def __init__(self, bulk: BulkRequests, settings: Settings, identify: Identify) -> None:
        self.bulk = bulk
        self.settings = settings
        self.identify = identify

    async def _refused(
        self, error: FhirError, principal: Principal | None, interaction: str
    ) -> Response:
        """The error's answer, audited (a refused token was audited when it was refused)."""
        if not isinstance(error, Unauthorized):
            await run_in_threadpool(record_refusal, self.bulk.store, principal, interaction, error)
        return error_response(error)

    async def _principal(self, request: Request) -> Principal:
        return await run_in_threadpool(self.identify(request))

    async def _kick_off(self, request: Request) -> tuple[Principal, str]:
        """Who asks, and the FHIR base; refuses what is not an asynchronous request."""
        principal = await self._principal(request)
        response_type(None, request.headers.get("accept"))  # 406 unless FHIR JSON is accepted
        if "respond-async" not in _preferences(request):
            raise BadRequest("bulk data requests are asynchronous: send Prefer: respond-async")
        return principal, base_url(request, self.settings)

    # ---- export -------------------------------------------------------------------------

    async def export_system(self, request: Request) -> Response:
        return await self._export(request, "system")

    async def export_type(self, request: Request) -> Response:
        if request.path_params["type"] != "Patient":
            where = request.path_params["type"][:40]
            refusal = NotFound(f"$export is on the system, Patient and Group/[id], not {where!r}")
            return await self._refused(refusal, None, "export")
        return await self._export(request, "patient")

    async def export_group(self, request: Request) -> Response:
        kind, id = request.path_params["type"], request.path_params["id"]
        if kind != "Group":
            refusal: FhirError = NotFound(f"$export is on Group/[id], not {kind[:40]!r}/[id]")
            return await self._refused(refusal, None, "export")
        if not is_valid_id(id):
            refusal = BadRequest(f"{id[:70]!r} is not a valid FHIR id")
            return await self._refused(refusal, None, "export")
        return await self._export(request, "group", id)

    async def _export(
        self, request: Request, level: Level, group_id: str | None = None
    ) -> Response:
        principal: Principal | None = None
        try:
            principal, base = await self._kick_off(request)
            params = list(request.query_params.multi_items())
            if request.method == "POST":
                params += await self._parameters(request)
            job_id = await run_in_threadpool(
                lambda: self.bulk.export(
                    principal,
                    level,
                    params,
                    group_id=group_id,
                    lenient="handling=lenient" in _preferences(request),
                    base=base,
                    url=str(request.url),
                )
            )
            return _accepted(base, job_id)
        except FhirError as error:
            return await self._refused(error, principal, "export")

    async def _parameters(self, request: Request) -> list[tuple[str, str]]:
        """A POST kick-off's Parameters, as (name, value) pairs."""
        raw = await read_body(request, self.settings.max_body_bytes)
        check_body_type(request.headers.get("content-type"), patch=False)
        try:
            body = jsonio.loads(raw)
        except jsonio.JsonError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest("a POST kick-off takes a Parameters resource")
        pairs = []
        for parameter in body.get("parameter") or ():
            values = (
                [v for k, v in parameter.items() if k.startswith("value")]
                if isinstance(parameter, dict)
                else []
            )
            if not values or not isinstance(parameter.get("name"), str):
                raise BadRequest("each parameter needs a name and a value[x]")
            pairs.append((parameter["name"], str(values[0])))
        return pairs

    # ---- import -------------------------------------------------------------------------

    async def import_(self, request: Request) -> Response:
        job_id: str | None = None
        principal: Principal | None = None
        try:
            principal, base = await self._kick_off(request)
            await run_in_threadpool(self.bulk.check_importer, principal)
            mode = request.query_params.get("mode")
            if mode is not None and mode not in MODES:
                raise BadRequest(f"mode must be one of {', '.join(MODES)}, not {mode[:40]!r}")
            kind = media_type(request.headers.get("content-type"))
            if kind in NDJSON_TYPES:
                upload, path = await run_in_threadpool(self.bulk.new_upload)
                job_id = upload
                try:
                    await _save(request, path)
                except BaseException:  # too large, empty, or the client went away
                    await run_in_threadpool(self.bulk.discard_upload, upload)
                    raise
                inputs = [{"name": path.name, "path": str(path)}]
            elif kind in JSON_TYPES:
                raw = await read_body(request, self.settings.max_body_bytes)
                try:
                    given_mode, urls = import_parameters(jsonio.loads(raw))
                except jsonio.JsonError as exc:
                    raise BadRequest(f"the body is not valid JSON: {exc}") from None
                mode = mode or given_mode
                inputs = await run_in_threadpool(self.bulk.inbox_inputs, principal, urls)
            else:
                raise UnsupportedMediaType(
                    f"$import takes {NDJSON} (an upload) or a Parameters resource naming files"
                )
            started = await run_in_threadpool(
                lambda: self.bulk.start_import(
                    principal, mode, inputs, base=base, url=str(request.url), job_id=job_id
                )
            )
            return _accepted(base, started)
        except FhirError as error:
            if job_id is not None:
                await run_in_threadpool(self.bulk.discard_upload, job_id)
            return await self._refused(error, principal, "import")

    # ---- status and files ---------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        principal: Principal | None = None
        try:
            principal = await self._principal(request)
            job_id = request.path_params["job"]
            if request.method == "DELETE":
                await run_in_threadpool(self.bulk.cancel, principal, job_id)
                return Response(status_code=202)
            job = await run_in_threadpool(self.bulk.status, principal, job_id)
            if job.status in ("queued", "running"):
                progress = (job.progress or job.status).encode("ascii", "replace").decode()
                headers = {"X-Progress": progress, "Retry-After": RETRY_AFTER}
                return Response(status_code=202, headers=headers)
            if job.status == "failed":
                # Bulk Data: a failed job answers an error status with an OperationOutcome.
                raise FhirError(f"the bulk job failed: {job.error}", status=500)
            assert job.expires is not None
            headers = {"Expires": format_datetime(job.expires, usegmt=True)}
            return Response(
                orjson.dumps(job.manifest), media_type="application/json", headers=headers
            )
        except FhirError as error:
            return await self._refused(error, principal, "export")

    async def download(self, request: Request) -> Response:
        principal: Principal | None = None
        try:
            principal = await self._principal(request)
            job_id, name = request.path_params["job"], request.path_params["name"]
            path = await run_in_threadpool(self.bulk.output, principal, job_id, name)
            # Opened now: the file stays readable even if the job expires mid-download.
            handle = await run_in_threadpool(path.open, "rb")
        except FhirError as error:
            return await self._refused(error, principal, "export")
        except FileNotFoundError:
            return await self._refused(NotFound("the file has expired"), principal, "export")
        size = os.fstat(handle.fileno()).st_size
        return StreamingResponse(
            _file_chunks(handle), media_type=NDJSON, headers={"Content-Length": str(size)}
        )


async def _save(request: Request, path: anyio.Path | os.PathLike[str]) -> None:
    """Stream an upload to disk, refusing one larger than MAX_UPLOAD_BYTES (413)."""
    size = 0
    async with await anyio.open_file(path, "wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise PayloadTooLarge(f"an upload may be at most {MAX_UPLOAD_BYTES} bytes")
            await out.write(chunk)
    if size == 0:
        raise BadRequest("the upload is empty")


def routes(store: ResourceStore, settings: Settings, identify: Identify) -> list[BaseRoute]:
    """The bulk data endpoints; to go before /fhir/{path} in the app's routes."""
    if not isinstance(store, SqlStore):
        return []
    runner = JobRunner(store, bulk_directory(settings))
    endpoints = BulkEndpoints(BulkRequests(store, runner), settings, identify)
    return [
        Route("/fhir/$export", endpoints.export_system, methods=["GET", "POST"]),
        Route("/fhir/$import", endpoints.import_, methods=["POST"]),
        Route("/fhir/bulk/{job}", endpoints.status, methods=["GET", "DELETE"]),
        Route("/fhir/bulk/{job}/files/{name}", endpoints.download, methods=["GET"]),
        Route("/fhir/{type}/$export", endpoints.export_type, methods=["GET", "POST"]),
        Route("/fhir/{type}/{id}/$export", endpoints.export_group, methods=["GET", "POST"]),
    ]
