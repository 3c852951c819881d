"""The one FHIR route table: URL shape and method -> interaction.

Used for HTTP requests and for Bundle entries alike; the CapabilityStatement is generated
from it, so /metadata states exactly what is implemented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from opengp.access.principal import Principal
from opengp.fhir.definitions.r4 import RESOURCE_TYPES
from opengp.fhir.errors import (
    BadRequest,
    Concealed,
    Conflict,
    FhirError,
    Forbidden,
    Gone,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
)
from opengp.fhir.references import is_valid_id
from opengp.services.fhir import (
    auditing,
    bundles,
    capabilities,
    emergency,
    guard,
    interactions,
    listing,
    provenance,
)
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest, FhirResponse
from opengp.store import ResourceStore, WriteConflict

# Each handler gets (transaction or store, request, context, *path arguments).
Handler = Callable[..., FhirResponse]
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    shape: str  # path segments: "{type}", "{id}", "{vid}" or a literal
    interaction: str  # the CapabilityStatement code (http://hl7.org/fhir/R4/valueset-restful-interaction.html)
    handler: Handler
    access: str  # "read", "write" (one store transaction) or "own" (manages its transactions)
    conditional: bool = False


def _metadata(store: ResourceStore, request: FhirRequest, ctx: Context) -> FhirResponse:
    return FhirResponse(200, body=capabilities.statement(ROUTES, ctx.base_url))


def _bundle(store: ResourceStore, request: FhirRequest, ctx: Context) -> FhirResponse:
    kind, entries = bundles.parse_entries(request.body, request.prefer_return)
    prefer = request.prefer_return

    def execute(entry: FhirRequest) -> FhirResponse:
        if not entry.path:
            raise BadRequest("a Bundle entry cannot itself be a batch or transaction")
        return dispatch(store, entry, ctx)

    if kind == "batch":
        results = bundles.run_batch(entries, execute, ctx, prefer)
    else:
        results = _retrying(
            store,
            lambda tx: bundles.run_transaction(
                tx, entries, lambda r: _run(tx, r, ctx), ctx, prefer
            ),
        )
    body = {"resourceType": "Bundle", "type": f"{kind}-response", "entry": results}
    return FhirResponse(200, body=orjson.dumps(body))


def _create(tx: Any, request: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    return interactions.create(tx, request, ctx, resource_type)


ROUTES: tuple[Route, ...] = (
    Route("GET", "metadata", "capabilities", _metadata, "own"),
    Route("POST", "", "transaction", _bundle, "own"),
    Route("GET", "", "search-system", listing.search, "read"),
    Route("GET", "AuditEvent", "search-audit", auditing.search, "read"),
    Route("GET", "_history", "history-system", listing.history, "read"),
    Route("GET", "{type}", "search-type", listing.search, "read"),
    Route("POST", "{type}", "create", _create, "write"),
    Route("PUT", "{type}", "update", interactions.conditional_update, "write", conditional=True),
    Route("PATCH", "{type}", "patch", interactions.conditional_patch, "write", conditional=True),
    Route(
        "DELETE",
        "{type}",
        "delete",
        lambda tx, r, c, t: interactions.conditional_delete(tx, r, t),
        "write",
        conditional=True,
    ),
    Route("GET", "{type}/_history", "history-type", listing.history, "read"),
    Route(
        "GET", "{type}/{id}", "read", lambda tx, r, c, t, i: interactions.read(tx, r, t, i), "read"
    ),
    Route("PUT", "{type}/{id}", "update", interactions.update, "write"),
    Route("PATCH", "{type}/{id}", "patch", interactions.patch, "write"),
    Route(
        "DELETE",
        "{type}/{id}",
        "delete",
        lambda tx, r, c, t, i: interactions.delete(tx, r, t, i),
        "write",
    ),
    Route("GET", "{type}/{id}/_history", "history-instance", listing.history, "read"),
    Route("GET", "{type}/{id}/$everything", "everything", listing.everything, "read"),
    Route("POST", "{type}/{id}/$break-glass", "break-glass", emergency.break_glass, "own"),
    Route("GET", "{type}/{id}/{type}", "search-compartment", listing.compartment_search, "read"),
    Route(
        "GET",
        "{type}/{id}/_history/{vid}",
        "vread",
        lambda tx, r, c, t, i, v: interactions.vread(tx, r, t, i, v),
        "read",
    ),
)


def _matches(shape: str, segments: list[str]) -> list[str] | None:
    parts = shape.split("/") if shape else []
    if len(parts) != len(segments):
        return None
    args = []
    for part, segment in zip(parts, segments, strict=True):
        if part.startswith("{"):
            if not segment or segment.startswith("_") or segment == "metadata":
                return None
            args.append(segment)
        elif part != segment:
            return None
    return args


def route(request: FhirRequest) -> tuple[Route, list[str]]:
    segments = request.path.split("/") if request.path else []
    allowed = []
    for candidate in ROUTES:
        args = _matches(candidate.shape, segments)
        if args is None:
            continue
        if candidate.shape.startswith("{type}") and args[0] not in RESOURCE_TYPES:
            raise NotFound(f"{args[0]!r} is not a resource type this server supports")
        bad = [a for a in args[1:] if not is_valid_id(a)]
        if bad:
            # http://hl7.org/fhir/R4/datatypes.html#id: [A-Za-z0-9\-\.]{1,64}
            raise BadRequest(f"{bad[0][:70]!r} is not a valid FHIR id", expression=["id"])
        # A bare type with criteria is conditional; without, it is create or search.
        if candidate.conditional and not request.params:
            continue
        if candidate.method == request.method:
            return candidate, args
        allowed.append(candidate.method)
    if allowed:
        methods = ", ".join(sorted(set(allowed)))
        where = request.path or "the base"
        raise MethodNotAllowed(f"{request.method} is not allowed on {where}; use {methods}")
    raise NotFound(f"no FHIR endpoint at {request.path!r}")


def _run(tx: Any, request: FhirRequest, ctx: Context) -> FhirResponse:
    """Run a request inside an already-open transaction (a transaction Bundle's entries)."""
    found, args = route(request)
    if found.access == "own":
        raise MethodNotAllowed("a Bundle entry cannot itself be a batch or transaction")
    principal = _who(ctx, found)
    related = guard.relationships(tx)
    after = guard.checks_after_reading(principal, found.interaction)
    written = guard.checks_after_writing(principal, found.interaction)
    if written and found.conditional:
        raise Forbidden("conditional writes are for staff and systems")
    if not (after or written):
        guard.authorize_route(principal, found.interaction, args, related)
    if found.interaction in ("delete", "update", "patch") and len(args) == 2:
        # What is there now: nobody moves an entry out of a record they may not change.
        guard.authorize_change(principal, found.interaction, tx.current(*args), related)
    response = found.handler(tx, request, ctx, *args)
    if after:
        guard.authorize_read(principal, found.interaction, response, related)
    elif found.interaction in ("create", "update", "patch"):
        guard.authorize_change(principal, found.interaction, response.resource, related)
    provenance.record(tx, principal, found.interaction, response.status, response.resource)
    entry = guard.success(principal, found.interaction, args, request, response)
    if entry is not None:
        tx.audit(entry)
    return response


def _retrying(store: ResourceStore, work: Callable[[Any], Any]) -> Any:
    """Run `work` in a write transaction, again from the start if a concurrent write won."""
    for _ in range(MAX_ATTEMPTS):
        try:
            with store.writing() as tx:
                return work(tx)
        except WriteConflict:
            continue
    raise Conflict("the resource is being changed by others; try again")


def _who(ctx: Context, found: Route) -> Principal:
    if ctx.principal is None:
        # Only the CapabilityStatement is public; the HTTP adapter authenticates the rest.
        raise Unauthorized("this needs an access token")
    return ctx.principal


def dispatch(store: ResourceStore, request: FhirRequest, ctx: Context) -> FhirResponse:
    """Route, authorise, run and audit one request (http://hl7.org/fhir/R4/http.html)."""
    found: Route | None = None
    args: list[str] = []
    try:
        found, args = route(request)
        if found.interaction == "capabilities":
            return found.handler(store, request, ctx, *args)
        principal = _who(ctx, found)
        if found.access == "own":
            return found.handler(store, request, ctx, *args)
        after = guard.checks_after_reading(principal, found.interaction)
        if found.access == "read":
            try:
                with store.reading() as tx:
                    related = guard.relationships(tx)
                    if not after:
                        guard.authorize_route(principal, found.interaction, args, related)
                    response: FhirResponse = found.handler(tx, request, ctx, *args)
                    if after:
                        guard.authorize_read(principal, found.interaction, response, related)
            except Gone:
                if after and principal.kind != "staff":
                    # A deletion says the record existed: not for other patients.
                    raise Concealed(f"{request.path} is not known") from None
                raise
            entry = guard.success(principal, found.interaction, args, request, response)
            if entry is not None:
                # Recorded before the response is sent.
                with store.auditing() as trail:
                    trail.audit(entry)
            return response
        return _retrying(store, lambda tx: _run(tx, request, ctx))  # type: ignore[no-any-return]
    except FhirError as error:
        with store.auditing() as trail:
            interaction = found.interaction if found else None
            trail.audit(guard.failure(ctx.principal, interaction, args, error))
        raise
