"""History and search result Bundles (http://hl7.org/fhir/R4/http.html#history, search.html).

Stored resource bytes are embedded as they are (orjson.Fragment): nothing is re-parsed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from opengp.fhir.datetimes import instant
from opengp.fhir.errors import BadRequest, Issue, NotFound, operation_outcome
from opengp.search.definitions.r4 import COMPARTMENTS
from opengp.search.parse import Include, SearchQuery
from opengp.search.query import DEFAULT_COUNT, MAX_COUNT, parse_query
from opengp.services.fhir import guard
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest, FhirResponse, etag
from opengp.services.fhir.shaping import Shaper, shaper
from opengp.store import HistoryQuery, ReadTransaction, StoredResource

STATUS_TEXT = {
    "POST": "201 Created",
    "PUT": "200 OK",
    "PATCH": "200 OK",
    "DELETE": "204 No Content",
}


def page_size(request: FhirRequest) -> int:
    """`_count` of a history or audit page: the default, or at most MAX_COUNT."""
    raw = request.param("_count")
    if raw is None:
        return DEFAULT_COUNT
    if not raw.isdigit():
        raise BadRequest(f"_count must be a whole number, not {raw!r}", expression=["_count"])
    return min(int(raw), MAX_COUNT)


def _since(request: FhirRequest) -> datetime | None:
    raw = request.param("_since")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or "T" not in raw:
        # _since is an instant: date, time and zone (http://hl7.org/fhir/R4/http.html#history).
        raise BadRequest(
            f"_since must be an instant such as 2026-01-31T09:00:00Z, not {raw!r}",
            expression=["_since"],
        )
    return value


def link(relation: str, url: str) -> dict[str, str]:
    return {"relation": relation, "url": url}


def page_url(base: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{path}" + (f"?{query}" if query else "")


def bundle(
    kind: str, total: int | None, links: list[dict[str, str]], entries: list[dict[str, Any]]
) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": instant(datetime.now(UTC))},
            "type": kind,
            **({} if total is None else {"total": total}),
            "link": links,
            "entry": entries,
        }
    )


def _full_url(ctx: Context, stored: StoredResource) -> str:
    return f"{ctx.base_url}/{stored.resource_type}/{stored.id}"


def history(
    tx: ReadTransaction,
    request: FhirRequest,
    ctx: Context,
    resource_type: str | None = None,
    id: str | None = None,
) -> FhirResponse:
    before = request.param("_cursor")
    if before is not None and not before.isdigit():
        raise BadRequest("_cursor is not one this server made", expression=["_cursor"])
    count = page_size(request)
    query = HistoryQuery(resource_type, id, _since(request), count, int(before) if before else None)
    page = tx.history(query)
    entries = []
    for entry in page.entries:
        stored = entry.resource
        item: dict[str, Any] = {"fullUrl": _full_url(ctx, stored)}
        if stored.content is not None:
            item["resource"] = orjson.Fragment(stored.content)
        url = (
            stored.resource_type
            if entry.method == "POST"
            else f"{stored.resource_type}/{stored.id}"
        )
        item["request"] = {"method": entry.method, "url": url}
        item["response"] = {
            "status": STATUS_TEXT[entry.method],
            "etag": etag(stored.version_id),
            "lastModified": instant(stored.last_updated),
        }
        entries.append(item)
    keep = [(k, v) for k, v in request.params if k in ("_since", "_count")]
    links = [link("self", page_url(ctx.base_url, request.path, request.params))]
    if page.next_before_seq is not None:
        links.append(
            link(
                "next",
                page_url(
                    ctx.base_url, request.path, [*keep, ("_cursor", str(page.next_before_seq))]
                ),
            )
        )
    return FhirResponse(200, body=bundle("history", page.total, links, entries))


def search(
    tx: ReadTransaction, request: FhirRequest, ctx: Context, resource_type: str | None = None
) -> FhirResponse:
    """Type-level (or, without a type, system-level) search: one page of matches, what they
    include, and links to the pages before and after (http://hl7.org/fhir/R4/search.html)."""
    query = parse_query(resource_type, request.params, strict=request.strict)
    if ctx.principal is not None:
        query = replace(query, **guard.search_scope(ctx.principal, resource_type, tx))
    return _results(tx, request, ctx, query)


def compartment_search(
    tx: ReadTransaction,
    request: FhirRequest,
    ctx: Context,
    compartment: str,
    id: str,
    resource_type: str,
) -> FhirResponse:
    """`Patient/123/Observation?...`: the search, within one resource's compartment
    (http://hl7.org/fhir/R4/compartmentdefinition.html)."""
    if compartment not in COMPARTMENTS:
        raise NotFound(f"{compartment} has no compartment; compartments: {', '.join(COMPARTMENTS)}")
    if resource_type != compartment and resource_type not in COMPARTMENTS[compartment]:
        raise NotFound(f"{resource_type} is not in a {compartment}'s compartment")
    query = parse_query(resource_type, request.params, strict=request.strict)
    query = replace(query, compartment=(compartment, (id,)), **_withheld(tx, ctx, id))
    return _results(tx, request, ctx, query)


def _withheld(tx: ReadTransaction, ctx: Context, patient_id: str) -> dict[str, Any]:
    """What is withheld from this principal (patients and proxies: what is labelled
    sensitive, and what was not released to them online). Other limits of `search_scope`
    do not apply once the compartment was authorised."""
    if ctx.principal is None or ctx.principal.kind not in ("patient", "proxy"):
        return {}
    return {
        "withheld": guard.search_scope(ctx.principal, "Patient")["withheld"],
        "released": guard.released_online(ctx.principal, patient_id, tx),
    }


EVERYTHING_PARAMETERS = frozenset({"_since", "_type", "_count", "_cursor", "_format", "_pretty"})


def everything(
    tx: ReadTransaction, request: FhirRequest, ctx: Context, resource_type: str, id: str
) -> FhirResponse:
    """`Patient/123/$everything`: the patient, everything in their compartment and what that
    refers to (practitioners, organisations, medications), paged
    (http://hl7.org/fhir/R4/patient-operation-everything.html)."""
    if resource_type != "Patient":
        raise NotFound(f"$everything is an operation on Patient, not {resource_type}")
    unknown = sorted({k for k, _ in request.params} - EVERYTHING_PARAMETERS)
    if unknown:
        raise BadRequest(f"$everything does not take {', '.join(unknown)}", expression=unknown)
    since = _since(request)
    pairs = [(k, v) for k, v in request.params if k in ("_type", "_count", "_cursor")]
    if since is not None:
        pairs.append(("_lastUpdated", f"ge{instant(since)}"))
    query = parse_query(None, pairs, strict=True)
    query = replace(
        query,
        compartment=("Patient", (id,)),
        **_withheld(tx, ctx, id),
        includes=(Include(None, None, None, iterate=False),),
    )
    current = tx.current("Patient", id)
    if current is None or current.deleted:
        raise NotFound(f"Patient/{id} is not known")
    shown = [(k, v) for k, v in request.params if k in ("_since", "_type", "_count")]
    return _results(tx, request, ctx, query, shown)


def _results(
    tx: ReadTransaction,
    request: FhirRequest,
    ctx: Context,
    query: SearchQuery,
    shown: Sequence[tuple[str, str]] | None = None,
) -> FhirResponse:
    """The searchset Bundle of a query; links carry `shown` (default: the query's own
    parameters, as applied)."""
    principal = ctx.principal
    owner = f"{principal.kind}:{principal.id}" if principal else "-"
    page = tx.search(query, owner)
    shape = shaper(query.summary, query.elements)
    entries = [_entry(ctx, stored, "match", shape) for stored in page.matches]
    refused = set()
    may_see = guard.visibility(principal, tx)
    for stored in page.included:
        if may_see(stored):
            entries.append(_entry(ctx, stored, "include", shape))
        else:
            refused.add(stored.resource_type)
    issues = [p.issue() for p in query.problems]
    issues += [
        Issue("suppressed", f"{t} resources were not included: this access does not cover them")
        for t in sorted(refused)
    ]
    if page.pageable is not None:
        issues.append(
            Issue(
                "too-costly",
                f"only the first {page.pageable} results can be paged through: refine the search",
                severity="warning",
            )
        )
    if issues:
        entries.append({"resource": operation_outcome(issues), "search": {"mode": "outcome"}})
    applied = query.self_link_pairs() if shown is None else shown
    base = [(k, v) for k, v in applied if k != "_cursor"]
    here = [*base, ("_cursor", query.cursor)] if query.cursor else base
    links = [link("self", page_url(ctx.base_url, request.path, here))]
    for relation, at in (("next", page.next_cursor), ("previous", page.previous_cursor)):
        if at is not None:
            url = page_url(ctx.base_url, request.path, [*base, ("_cursor", at)])
            links.append(link(relation, url))
    return FhirResponse(200, body=bundle("searchset", page.total, links, entries))


def _entry(ctx: Context, stored: StoredResource, mode: str, shape: Shaper) -> dict[str, Any]:
    return {
        "fullUrl": _full_url(ctx, stored),
        "resource": shape(stored),
        "search": {"mode": mode},
    }
