"""Batch and transaction Bundles (http://hl7.org/fhir/R4/http.html#transaction).

A transaction runs every entry in one store transaction: all succeed or nothing is written.
Entries run in the order the specification gives (DELETE, POST, PUT/PATCH, GET/HEAD);
`urn:uuid:` (and other) fullUrls are mapped to the ids the server assigns, and every reference
to them is rewritten; conditional references (`Patient?identifier=...`) are resolved to the
single resource they match.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from opengp.fhir import jsonio
from opengp.fhir.datetimes import instant
from opengp.fhir.errors import BadRequest, FhirError, PreconditionFailed
from opengp.fhir.references import parse_conditional, parse_relative, rewrite_references
from opengp.search.query import conditional_query_string
from opengp.services.fhir import interactions
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest, FhirResponse, etag
from opengp.store import WriteTransaction

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")
# http://hl7.org/fhir/R4/http.html#trules: processing order within a transaction.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified"}

Execute = Callable[[FhirRequest], FhirResponse]


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    full_url: str | None
    request: FhirRequest


def _in_entry(index: int, expression: str) -> str:
    """`Patient.gender` of entry 1 -> `Bundle.entry[1].resource.gender`."""
    head, _, rest = expression.partition(".")
    inner = rest if head[:1].isupper() and rest else expression
    return f"Bundle.entry[{index}].resource.{inner}"


def _entry_error(index: int, error: FhirError) -> FhirError:
    """The same error, its expressions and message prefixed with the failing entry."""
    issues = tuple(
        replace(
            i,
            diagnostics=f"Bundle.entry[{index}]: {i.diagnostics}",
            expression=tuple(_in_entry(index, e) for e in i.expression)
            or (f"Bundle.entry[{index}]",),
        )
        for i in error.issues
    )
    return type(error)(issues=issues, status=error.status)


def _patch_body(resource: Any, index: int) -> Any:
    """A PATCH entry carries its JSON Patch as a Binary (http://hl7.org/fhir/R4/http.html#patch)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        raise BadRequest(
            f"Bundle.entry[{index}]: a PATCH entry needs a Binary holding a JSON Patch"
        )
    if resource.get("contentType") != "application/json-patch+json":
        raise BadRequest(
            f"Bundle.entry[{index}]: only application/json-patch+json patches are supported"
        )
    try:
        return jsonio.loads(base64.b64decode(resource.get("data", ""), validate=True))
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"Bundle.entry[{index}]: the Binary data is not a base64 JSON Patch"
        ) from None


def parse_entries(bundle: Any, prefer_return: str | None) -> tuple[str, list[Entry]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base needs a Bundle", expression=["resourceType"])
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise BadRequest(
            f"Bundle.type must be batch or transaction, not {kind!r}", expression=["Bundle.type"]
        )
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be an array", expression=["Bundle.entry"])
    entries = []
    for index, raw in enumerate(raw_entries):
        where = f"Bundle.entry[{index}]"
        request = raw.get("request") if isinstance(raw, dict) else None
        if not isinstance(request, dict):
            raise BadRequest(f"{where} has no request", expression=[f"{where}.request"])
        method, url = request.get("method"), request.get("url")
        if method not in METHODS:
            raise BadRequest(
                f"{where}.request.method {method!r} is not one of {', '.join(METHODS)}",
                expression=[f"{where}.request.method"],
            )
        if not isinstance(url, str) or not url:
            raise BadRequest(f"{where}.request.url is missing", expression=[f"{where}.request.url"])
        split = urlsplit(url)
        body = raw.get("resource")
        if method == "PATCH":
            body = _patch_body(body, index)
        elif method in ("POST", "PUT") and not isinstance(body, dict):
            raise BadRequest(
                f"{where} needs a resource for {method}", expression=[f"{where}.resource"]
            )
        full_url = raw.get("fullUrl")
        entries.append(
            Entry(
                index,
                full_url if isinstance(full_url, str) else None,
                FhirRequest(
                    method="GET" if method == "HEAD" else method,
                    path=split.path.strip("/"),
                    params=tuple(parse_qsl(split.query, keep_blank_values=True)),
                    body=body,
                    is_patch=method == "PATCH",
                    if_match=request.get("ifMatch"),
                    if_none_match=request.get("ifNoneMatch"),
                    if_none_exist=request.get("ifNoneExist"),
                    prefer_return=prefer_return,
                ),
            )
        )
    return kind, entries


def response_entry(
    response: FhirResponse, ctx: Context, prefer_return: str | None
) -> dict[str, Any]:
    status = f"{response.status} {REASONS.get(response.status, '')}".strip()
    result: dict[str, Any] = {"status": status}
    stored = response.resource
    if response.location:
        result["location"] = response.location
    if stored is not None:
        result["etag"] = etag(stored.version_id)
        result["lastModified"] = instant(stored.last_updated)
    entry: dict[str, Any] = {}
    body = response.body
    if body is None and stored is not None and stored.content is not None:
        if not response.is_write or prefer_return in (None, "representation"):
            body = stored.content
        entry["fullUrl"] = f"{ctx.base_url}/{stored.resource_type}/{stored.id}"
    if body is not None and response.status != 304:
        entry["resource"] = orjson.Fragment(body)
    if response.outcome is not None:
        result["outcome"] = response.outcome
    entry["response"] = result
    return entry


def error_entry(error: FhirError) -> dict[str, Any]:
    return {"response": {"status": str(error.status), "outcome": error.outcome()}}


def run_batch(
    entries: list[Entry], execute: Execute, ctx: Context, prefer: str | None
) -> list[dict[str, Any]]:
    """Each entry on its own: one failing does not stop the others."""
    results = []
    for entry in entries:
        try:
            results.append(response_entry(execute(entry.request), ctx, prefer))
        except FhirError as error:
            results.append(error_entry(_entry_error(entry.index, error)))
    return results


def run_transaction(
    tx: WriteTransaction, entries: list[Entry], execute: Execute, ctx: Context, prefer: str | None
) -> list[dict[str, Any]]:
    plan = _resolve_identities(tx, entries)
    results: dict[int, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: ORDER[e.request.method]):
        request = plan.get(entry.index, entry.request)
        try:
            results[entry.index] = response_entry(execute(request), ctx, prefer)
        except FhirError as error:
            raise _entry_error(entry.index, error) from None
    return [results[i] for i in range(len(entries))]


def _resolve_identities(tx: WriteTransaction, entries: list[Entry]) -> dict[int, FhirRequest]:
    """Give every created resource its id, then rewrite references to the new identities.

    Returns the entries' requests rewritten to plain interactions on known ids.
    """
    identities: dict[str, str] = {}  # fullUrl -> Type/id
    plan: dict[int, FhirRequest] = {}
    claimed: set[str] = set()
    for entry in entries:
        request = entry.request
        if request.method not in ("POST", "PUT"):
            continue
        resource_type, _, rest = request.path.partition("/")
        try:
            target = _target(tx, request, resource_type, rest)
        except FhirError as error:
            raise _entry_error(entry.index, error) from None
        if target is None:
            continue
        identity = f"{resource_type}/{target[0]}"
        if identity in claimed:
            raise BadRequest(
                f"Bundle.entry[{entry.index}]: {identity} appears twice in the transaction"
            )
        claimed.add(identity)
        if entry.full_url:
            if entry.full_url in identities:
                raise BadRequest(
                    f"Bundle.entry[{entry.index}]: fullUrl {entry.full_url} appears twice"
                )
            identities[entry.full_url] = identity
        plan[entry.index] = target[1]

    def rewrite(reference: str) -> str | None:
        if reference in identities:
            return identities[reference]
        if reference.startswith("urn:uuid:"):
            raise BadRequest(f"reference {reference} names no entry of this transaction")
        conditional = parse_conditional(reference)
        if conditional is not None:
            query = conditional_query_string(conditional[0], conditional[1])
            matches = tx.find(query, limit=2)
            if len(matches) != 1:
                raise PreconditionFailed(
                    f"conditional reference {reference} matches {len(matches)} resources,"
                    " not exactly one"
                )
            return f"{conditional[0]}/{matches[0]}"
        return None

    for entry in entries:
        request = plan.get(entry.index, entry.request)
        if isinstance(request.body, dict) and request.method in ("POST", "PUT"):
            body = jsonio.loads(jsonio.dumps(request.body))  # never mutate the caller's Bundle
            try:
                rewrite_references(body, rewrite)
            except FhirError as error:
                raise _entry_error(entry.index, error) from None
            plan[entry.index] = replace(request, body=body)
    return plan


def _target(
    tx: WriteTransaction, request: FhirRequest, resource_type: str, rest: str
) -> tuple[str, FhirRequest] | None:
    """The id a POST or PUT entry will write, and the plain request that writes it."""
    if request.method == "PUT":
        if rest:
            literal = parse_relative(request.path)
            if literal is None:
                raise BadRequest(f"PUT url {request.path!r} is not Type/id")
            return literal.id, request
        matches = interactions.conditional_targets(
            tx, resource_type, interactions.criteria_of(request, resource_type)
        )
        body_id = request.body.get("id") if isinstance(request.body, dict) else None
        chosen = matches[0] if matches else body_id or str(uuid.uuid4())
        body = dict(request.body, id=chosen)
        return chosen, replace(request, path=f"{resource_type}/{chosen}", params=(), body=body)
    if rest:
        raise BadRequest(f"POST url {request.path!r} must be a resource type")
    if request.if_none_exist:
        criteria = conditional_query_string(resource_type, request.if_none_exist)
        matches = interactions.conditional_targets(tx, resource_type, criteria)
        if matches:
            # One match: the POST is ignored; references to it point at the existing resource.
            return matches[0], replace(
                request, method="GET", path=f"{resource_type}/{matches[0]}", body=None
            )
    new_id = str(uuid.uuid4())
    return new_id, replace(request, if_none_exist=None, new_id=new_id)
