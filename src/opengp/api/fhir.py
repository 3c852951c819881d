"""HTTP adapter for the FHIR REST API at /fhir: Starlette request -> FhirRequest -> response."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opengp.access.principal import Principal
from opengp.api.negotiation import check_body_type, response_type
from opengp.config import Settings
from opengp.fhir import jsonio
from opengp.fhir.errors import (
    BadRequest,
    FhirError,
    Issue,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    operation_outcome,
)
from opengp.search.parse import form_pairs
from opengp.services.fhir.guard import record_failure
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest, FhirResponse, etag
from opengp.services.fhir.router import dispatch
from opengp.store import ResourceStore

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PREFER_RETURN = ("minimal", "representation", "OperationOutcome")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _http_date(value: str | None, header: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{header} is not an HTTP date: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


FORM = "application/x-www-form-urlencoded"


def _prefer(header: str | None, preference: str, allowed: Iterable[str]) -> str | None:
    """A preference of the Prefer header (RFC 7240), if set to one of `allowed`."""
    for part in (header or "").replace(",", ";").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == preference and value.strip().strip('"') in allowed:
            return value.strip().strip('"')
    return None


def base_url(request: Request, settings: Settings) -> str:
    return settings.fhir_base_url or str(request.base_url).rstrip("/") + "/fhir"


async def to_fhir_request(request: Request, settings: Settings) -> FhirRequest:
    method = "GET" if request.method == "HEAD" else request.method
    headers = request.headers
    path = request.path_params.get("path", "").strip("/")
    params = tuple(request.query_params.multi_items())
    body = None
    is_patch = method == "PATCH"
    if method == "POST" and (path == "_search" or path.endswith("/_search")):
        # POST [base]/[type]/_search: the same search, parameters in a form body too.
        if not (headers.get("content-type") or "").startswith(FORM):
            raise UnsupportedMediaType(f"POST _search takes a form body ({FORM})")
        raw = await read_body(request, settings.max_body_bytes)
        params = tuple(form_pairs(raw, params))
        method, path = "GET", path.removesuffix("_search").rstrip("/")
    elif method in BODY_METHODS:
        raw = await read_body(request, settings.max_body_bytes)
        check_body_type(headers.get("content-type"), patch=is_patch)
        try:
            body = jsonio.loads(raw)
        except jsonio.JsonError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
    return FhirRequest(
        method=method,
        path=path,
        params=params,
        body=body,
        is_patch=is_patch,
        if_match=headers.get("if-match"),
        if_none_match=headers.get("if-none-match"),
        if_none_exist=headers.get("if-none-exist"),
        if_modified_since=_http_date(headers.get("if-modified-since"), "If-Modified-Since"),
        prefer_return=_prefer(headers.get("prefer"), "return", PREFER_RETURN),
        strict=_prefer(headers.get("prefer"), "handling", ("strict", "lenient")) == "strict",
    )


def to_http_response(
    result: FhirResponse, request: FhirRequest, media: str, head: bool
) -> Response:
    headers = dict(result.headers)
    stored = result.resource
    if stored is not None:
        headers["ETag"] = etag(stored.version_id)
        headers["Last-Modified"] = format_datetime(stored.last_updated, usegmt=True)
    if result.location:
        headers["Location"] = result.location
    body = result.body
    if body is None and stored is not None and stored.content is not None:
        chosen = request.prefer_return if result.is_write else None
        if chosen == "OperationOutcome":
            done = Issue("informational", f"{request.method} succeeded", severity="information")
            body = orjson.dumps(result.outcome or operation_outcome([done]))
        elif chosen != "minimal":
            body = stored.content
    if result.status in (204, 304) or body is None:
        return Response(status_code=result.status, headers=headers)
    headers["Content-Type"] = f"{media}; charset=utf-8"
    return Response(b"" if head else body, status_code=result.status, headers=headers)


def error_response(error: FhirError, media: str = "application/fhir+json") -> Response:
    headers = {"WWW-Authenticate": error.challenge} if isinstance(error, Unauthorized) else None
    return Response(
        orjson.dumps(error.outcome()),
        status_code=error.status,
        media_type=f"{media}; charset=utf-8",
        headers=headers,
    )


# From a request, a function (run on a worker thread, with the request's other work) that
# says who is asking; it raises Unauthorized, after auditing the refusal, without good
# credentials.
Identify = Callable[[Request], Callable[[], Principal]]
PUBLIC_PATHS = frozenset({"metadata"})  # the CapabilityStatement (SMART App Launch §2.1)


class FhirEndpoint:
    """The one Starlette endpoint for every FHIR URL and method."""

    def __init__(self, store: ResourceStore, settings: Settings, identify: Identify) -> None:
        self.store = store
        self.settings = settings
        self.identify = identify

    def _serve(
        self, identify: Callable[[], Principal] | None, request: FhirRequest, base: str
    ) -> FhirResponse:
        """Identify, authorise, run and audit: one worker-thread hop for all of it."""
        principal = identify() if identify is not None else None
        return dispatch(self.store, request, Context(base, principal))

    async def handle(self, request: Request) -> Response:
        media = "application/fhir+json"
        served = False  # once the router has the request, it audits what happens
        try:
            media = response_type(
                request.query_params.get("_format"), request.headers.get("accept")
            )
            path = request.path_params.get("path", "").strip("/")
            identify = None if path in PUBLIC_PATHS else self.identify(request)
            if identify is not None and "authorization" not in request.headers:
                await run_in_threadpool(identify)  # refuses (401) before reading any body
            fhir_request = await to_fhir_request(request, self.settings)
            base = base_url(request, self.settings)
            served = True
            result = await run_in_threadpool(self._serve, identify, fhir_request, base)
            return to_http_response(result, fhir_request, media, request.method == "HEAD")
        except FhirError as error:
            if not served and not isinstance(error, Unauthorized):  # (refusals: audited)
                await run_in_threadpool(record_failure, self.store, error)  # e.g. a bad body
            return error_response(error, media)
        except Exception:
            failed = FhirError("the server failed unexpectedly", status=500)
            await run_in_threadpool(record_failure, self.store, failed)
            raise
