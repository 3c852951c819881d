"""`GET /fhir/AuditEvent?...`: the audit trail as FHIR AuditEvents, newest first.

For Privacy Officers (any entry) and patients (who accessed their own record, the NHS
commitment that patients can see who looked at it). Parameters: `patient` (Patient/id or
id), `agent` (the principal, as the trail names it: staff/<id>, client/<id>...), `date`
with prefixes ge/gt/le/lt (repeat for a range), `_count`; the Bundle's `next` link pages on.
"""

from __future__ import annotations

from datetime import datetime

from opengp.access.audit import to_audit_event
from opengp.fhir.errors import BadRequest
from opengp.search.ranges import RangeError, date_range
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.listing import bundle, link, page_size, page_url
from opengp.services.fhir.messages import FhirRequest, FhirResponse
from opengp.store import ReadTransaction

PARAMETERS = frozenset({"patient", "agent", "date", "_count", "_cursor", "_format", "_pretty"})


def _dates(values: list[str]) -> tuple[datetime | None, datetime | None]:
    """`date=ge2026-11-01&date=lt2026-12-01` -> [since, until)."""
    since = until = None
    for value in values:
        prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        try:
            low, high = date_range(text)
        except RangeError as exc:
            raise BadRequest(str(exc), expression=["date"]) from None
        if prefix in ("ge", "eq"):
            since = low if since is None else max(since, low)
        if prefix == "gt":
            since = high if since is None else max(since, high)
        if prefix in ("lt",):
            until = low if until is None else min(until, low)
        if prefix in ("le", "eq"):
            until = high if until is None else min(until, high)
        if prefix not in ("ge", "gt", "lt", "le", "eq"):
            raise BadRequest(
                f"date takes eq, ge, gt, le or lt, not {prefix!r}", expression=["date"]
            )
    return since, until


def search(tx: ReadTransaction, request: FhirRequest, ctx: Context) -> FhirResponse:
    unknown = sorted({k for k, _ in request.params} - PARAMETERS)
    if unknown:
        raise BadRequest(
            f"AuditEvent search does not take {', '.join(unknown)}", expression=unknown
        )
    patient = request.param("patient")
    if patient is not None:
        patient = patient.removeprefix("Patient/")
    principal = ctx.principal
    if principal is not None and principal.kind in ("patient", "proxy"):
        if patient not in (None, principal.patient_id):
            raise BadRequest(
                "patients see the audit of their own record only", expression=["patient"]
            )
        patient = principal.patient_id
    cursor = request.param("_cursor")
    if cursor is not None and not cursor.isdigit():
        raise BadRequest("_cursor is not one this server made", expression=["_cursor"])
    since, until = _dates([v for k, v in request.params if k == "date"])
    count = page_size(request)
    rows = tx.audit_trail(
        patient_id=patient,
        principal=request.param("agent"),
        since=since,
        until=until,
        count=count + 1,
        before_seq=int(cursor) if cursor else None,
    )
    entries = [
        {
            "fullUrl": f"{ctx.base_url}/AuditEvent/{row.seq}",
            "resource": to_audit_event(row),
            "search": {"mode": "match"},
        }
        for row in rows[:count]
    ]
    kept = [(k, v) for k, v in request.params if k != "_cursor"]
    links = [link("self", page_url(ctx.base_url, request.path, request.params))]
    if len(rows) > count:
        after = str(rows[count - 1].seq)
        links.append(
            link("next", page_url(ctx.base_url, request.path, [*kept, ("_cursor", after)]))
        )
    return FhirResponse(200, body=bundle("searchset", None, links, entries))
