"""One function per FHIR instance/type interaction (http://hl7.org/fhir/R4/http.html).

Each takes an open store transaction, so a transaction Bundle can run many of them
atomically; `router.dispatch` opens the transaction for a single request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import jsonpatch

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import (
    BadRequest,
    Gone,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from opengp.fhir.validation import validate_resource
from opengp.search.parse import SearchQuery
from opengp.search.query import conditional_query, conditional_query_string
from opengp.services.fhir import write_rules
from opengp.services.fhir.messages import FhirRequest, FhirResponse, etag, parse_etag
from opengp.store import ReadTransaction, StoredResource, WriteConflict, WriteTransaction


@dataclass(frozen=True, slots=True)
class Context:
    base_url: str  # absolute FHIR base, e.g. http://127.0.0.1:8000/fhir
    # Who is asking; None only for what is public (the CapabilityStatement).
    principal: Principal | None = None

    def location(self, stored: StoredResource) -> str:
        return f"{self.base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"


def _live(stored: StoredResource | None, resource_type: str, id: str) -> StoredResource:
    if stored is None:
        raise NotFound(f"{resource_type}/{id} is not known")
    if stored.deleted:
        raise Gone(f"{resource_type}/{id} was deleted (version {stored.version_id})")
    return stored


def _check_if_match(request: FhirRequest, current: StoredResource | None) -> None:
    if request.if_match is None:
        return
    wanted = parse_etag(request.if_match)
    if wanted is None:
        raise BadRequest(f'If-Match {request.if_match!r} is not a version ETag such as W/"3"')
    if current is None or current.deleted or current.version_id != wanted:
        have = "none" if current is None or current.deleted else etag(current.version_id)
        raise PreconditionFailed(
            f"If-Match {request.if_match} does not match the current version ({have})"
        )


def resource_body(body: Any, resource_type: str) -> dict[str, Any]:
    """The request body as a resource of the URL's type (http://hl7.org/fhir/R4/http.html#create)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource")
    found = body.get("resourceType")
    if not isinstance(found, str):
        raise BadRequest("the body has no resourceType", expression=["resourceType"])
    if found != resource_type:
        raise BadRequest(
            f"the body is a {found} but the URL is for {resource_type}", expression=["resourceType"]
        )
    return body


def _validated(body: dict[str, Any], resource_type: str, id: str) -> dict[str, Any]:
    resource = dict(body, id=id)
    validate_resource(resource)
    return resource


def conditional_targets(
    tx: WriteTransaction, resource_type: str, criteria: SearchQuery
) -> list[str]:
    """The one resource (or none) that conditional criteria select; 412 when more match."""
    # Conditional writes of one type are serialised, so two identical requests can never both
    # see "no match" and both create (a constraint-like step, not check-then-insert).
    tx.serialise(f"conditional:{resource_type}")
    matches = tx.find(criteria, limit=2)
    if len(matches) > 1:
        raise PreconditionFailed(f"the criteria match more than one {resource_type}")
    return matches


def criteria_of(request: FhirRequest, resource_type: str) -> SearchQuery:
    return conditional_query(resource_type, request.params)


# --- reads -------------------------------------------------------------------------------


def read(tx: ReadTransaction, request: FhirRequest, resource_type: str, id: str) -> FhirResponse:
    stored = _live(tx.current(resource_type, id), resource_type, id)
    if request.if_none_match is not None and parse_etag(request.if_none_match) == stored.version_id:
        return FhirResponse(304, stored)
    since = request.if_modified_since
    # HTTP dates have whole seconds (RFC 9110 §13.1.3).
    if since is not None and stored.last_updated.replace(microsecond=0) <= since:
        return FhirResponse(304, stored)
    return FhirResponse(200, stored)


def vread(
    tx: ReadTransaction, request: FhirRequest, resource_type: str, id: str, version: str
) -> FhirResponse:
    stored = tx.version(resource_type, id, int(version)) if version.isdigit() else None
    if stored is None:
        raise NotFound(f"{resource_type}/{id} has no version {version}")
    if stored.deleted:
        raise Gone(f"version {version} of {resource_type}/{id} is its deletion")
    return FhirResponse(200, stored)


# --- writes ------------------------------------------------------------------------------


def create(
    tx: WriteTransaction, request: FhirRequest, ctx: Context, resource_type: str
) -> FhirResponse:
    body = resource_body(request.body, resource_type)
    if request.if_none_exist:
        criteria = conditional_query_string(resource_type, request.if_none_exist)
        matches = conditional_targets(tx, resource_type, criteria)
        if matches:
            # http://hl7.org/fhir/R4/http.html#ccreate: one match -> the POST is ignored, 200 OK.
            return FhirResponse(200, tx.current(resource_type, matches[0]), is_write=True)
    # The server assigns the id; one in the body is ignored (http://hl7.org/fhir/R4/http.html#create).
    new_id = request.new_id or str(uuid.uuid4())
    resource = _validated(body, resource_type, new_id)
    resource = write_rules.before_save(tx, ctx.principal, None, resource)
    stored = tx.save(resource_type, new_id, resource, method="POST", previous=None)
    return FhirResponse(201, stored, location=ctx.location(stored), is_write=True)


def update(
    tx: WriteTransaction, request: FhirRequest, ctx: Context, resource_type: str, id: str
) -> FhirResponse:
    body = resource_body(request.body, resource_type)
    body_id = body.get("id")
    if body_id is None:
        raise BadRequest("an update must carry the resource id in the body", expression=["id"])
    if body_id != id:
        raise BadRequest(
            f"the body id {body_id!r} differs from the URL id {id!r}", expression=["id"]
        )
    return _save_over(tx, request, ctx, resource_type, id, body, method="PUT")


def _save_over(
    tx: WriteTransaction,
    request: FhirRequest,
    ctx: Context,
    resource_type: str,
    id: str,
    body: dict[str, Any],
    *,
    method: str,
) -> FhirResponse:
    resource = _validated(body, resource_type, id)
    previous = tx.current(resource_type, id, for_update=True)
    _check_if_match(request, previous)
    resource = write_rules.before_save(tx, ctx.principal, previous, resource)
    try:
        stored = tx.save(resource_type, id, resource, method=method, previous=previous)
    except WriteConflict:
        if request.if_match is not None:
            raise PreconditionFailed(f"{resource_type}/{id} was changed by someone else") from None
        raise
    created = previous is None or previous.deleted
    # Update as create (http://hl7.org/fhir/R4/http.html#upsert) answers 201 with a Location.
    return FhirResponse(
        201 if created else 200,
        stored,
        location=ctx.location(stored) if created else None,
        is_write=True,
    )


def conditional_update(
    tx: WriteTransaction, request: FhirRequest, ctx: Context, resource_type: str
) -> FhirResponse:
    """http://hl7.org/fhir/R4/http.html#cond-update"""
    body = resource_body(request.body, resource_type)
    matches = conditional_targets(tx, resource_type, criteria_of(request, resource_type))
    body_id = body.get("id")
    if matches:
        if body_id is not None and body_id != matches[0]:
            raise BadRequest(
                f"the body id {body_id!r} differs from the matching resource {matches[0]!r}",
                expression=["id"],
            )
        return _save_over(tx, request, ctx, resource_type, matches[0], body, method="PUT")
    if body_id is not None:
        return _save_over(tx, request, ctx, resource_type, body_id, body, method="PUT")
    return create(tx, FhirRequest("POST", resource_type, body=body), ctx, resource_type)


def delete(tx: WriteTransaction, request: FhirRequest, resource_type: str, id: str) -> FhirResponse:
    previous = tx.current(resource_type, id, for_update=True)
    if previous is None or previous.deleted:
        # Deleting what is absent succeeds and writes nothing (http://hl7.org/fhir/R4/http.html#delete).
        return FhirResponse(204, is_write=True)
    _check_if_match(request, previous)
    write_rules.before_delete(tx, previous)
    return FhirResponse(204, tx.delete(previous), is_write=True)


def conditional_delete(
    tx: WriteTransaction, request: FhirRequest, resource_type: str
) -> FhirResponse:
    matches = conditional_targets(tx, resource_type, criteria_of(request, resource_type))
    if not matches:
        return FhirResponse(204, is_write=True)
    return delete(tx, request, resource_type, matches[0])


def patch(
    tx: WriteTransaction, request: FhirRequest, ctx: Context, resource_type: str, id: str
) -> FhirResponse:
    """JSON Patch (RFC 6902) of the current version (http://hl7.org/fhir/R4/http.html#patch)."""
    operations = request.body
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise BadRequest("a JSON Patch body is an array of operation objects")
    current = _live(tx.current(resource_type, id, for_update=True), resource_type, id)
    _check_if_match(request, current)
    assert current.content is not None
    try:
        patched = jsonpatch.JsonPatch(operations).apply(jsonio.loads(current.content))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Unprocessable(f"JSON Patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise Unprocessable(f"the JSON Patch cannot be applied: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise BadRequest(f"the JSON Patch is malformed: {exc}") from None
    if (
        not isinstance(patched, dict)
        or patched.get("resourceType") != resource_type
        or patched.get("id") != id
    ):
        raise Unprocessable("a patch may not change resourceType or id")
    return _save_over(tx, request, ctx, resource_type, id, patched, method="PATCH")


def conditional_patch(
    tx: WriteTransaction, request: FhirRequest, ctx: Context, resource_type: str
) -> FhirResponse:
    matches = conditional_targets(tx, resource_type, criteria_of(request, resource_type))
    if not matches:
        raise NotFound(f"no {resource_type} matches the criteria")
    return patch(tx, request, ctx, resource_type, matches[0])
