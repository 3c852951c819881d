"""History and search result Bundles (http://hl7.org/fhir/R4/http.html#history, search.html).

Stored resource bytes are embedded as they are (orjson.Fragment): nothing is re-parsed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from opengp.fhir.datetimes import instant
from opengp.fhir.errors import BadRequest
from opengp.fhir.references import is_valid_id
from opengp.search.criteria import parse_criteria
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest, FhirResponse, etag
from opengp.store import HistoryQuery, ReadTransaction, StoredResource

DEFAULT_COUNT = 50
MAX_COUNT = 1000
STATUS_TEXT = {
    "POST": "201 Created",
    "PUT": "200 OK",
    "PATCH": "200 OK",
    "DELETE": "204 No Content",
}


def _count(request: FhirRequest) -> int:
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


def _link(relation: str, url: str) -> dict[str, str]:
    return {"relation": relation, "url": url}


def _page_url(base: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{path}" + (f"?{query}" if query else "")


def _bundle(
    kind: str, total: int, links: list[dict[str, str]], entries: list[dict[str, Any]]
) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": instant(datetime.now(UTC))},
            "type": kind,
            "total": total,
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
    count = _count(request)
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
    links = [_link("self", _page_url(ctx.base_url, request.path, request.params))]
    if page.next_before_seq is not None:
        links.append(
            _link(
                "next",
                _page_url(
                    ctx.base_url, request.path, [*keep, ("_cursor", str(page.next_before_seq))]
                ),
            )
        )
    return FhirResponse(200, body=_bundle("history", page.total, links, entries))


def search(
    tx: ReadTransaction, request: FhirRequest, ctx: Context, resource_type: str
) -> FhirResponse:
    """Type search on `_id` and `identifier`, paged by id (the search issue generalises this)."""
    criteria = parse_criteria(request.params)
    count = _count(request)
    after = request.param("_cursor")
    if after is not None and not is_valid_id(after):
        raise BadRequest("_cursor is not one this server made", expression=["_cursor"])
    ids = tx.find(resource_type, criteria, limit=count + 1, after_id=after)
    more = len(ids) > count
    ids = ids[:count]
    entries = [
        {
            "fullUrl": _full_url(ctx, stored),
            "resource": orjson.Fragment(stored.content),
            "search": {"mode": "match"},
        }
        for stored in tx.read_many(resource_type, ids)
        if stored.content is not None
    ]
    keep = [(k, v) for k, v in request.params if k != "_cursor"]
    links = [_link("self", _page_url(ctx.base_url, request.path, request.params))]
    if more:
        links.append(
            _link("next", _page_url(ctx.base_url, request.path, [*keep, ("_cursor", ids[-1])]))
        )
    total = len(ids) if not more and after is None else tx.count(resource_type, criteria)
    return FhirResponse(200, body=_bundle("searchset", total, links, entries))
