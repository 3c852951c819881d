"""`POST /fhir/Patient/{id}/$break-glass`: a clinician opens a record they have no legitimate
relationship with, stating why (opengp.access.break_glass).

The body is a Parameters resource with a `reason` (valueString). The access lasts an hour;
the answer says until when. The audit trail gets a security alert carrying the reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from opengp.access.audit import entry_for
from opengp.access.break_glass import BreakGlassRefused, open_record
from opengp.fhir.datetimes import instant
from opengp.fhir.errors import BadRequest, Forbidden, NotFound
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest, FhirResponse
from opengp.store.sql import SqlStore


def _reason(body: Any) -> str:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("the body must be a Parameters resource with a reason")
    for parameter in body.get("parameter") or ():
        if isinstance(parameter, dict) and parameter.get("name") == "reason":
            value = parameter.get("valueString")
            if isinstance(value, str):
                return value
    raise BadRequest("state the reason: a parameter named reason with a valueString")


def break_glass(
    store: SqlStore, request: FhirRequest, ctx: Context, resource_type: str, id: str
) -> FhirResponse:
    principal = ctx.principal
    if resource_type != "Patient":
        raise NotFound(f"$break-glass is an operation on Patient, not {resource_type}")
    assert principal is not None  # the router lets no one through unidentified
    reason = _reason(request.body)
    with store.writing() as tx:
        current = tx.current("Patient", id)
        if current is None or current.deleted:
            raise NotFound(f"Patient/{id} is not known")
        try:
            grant = open_record(tx.conn, principal, id, reason, tx.clock())
        except BreakGlassRefused as refused:
            raise Forbidden(str(refused)) from None
        detail = {"reason": grant.reason, "until": instant(grant.until)}
        tx.audit(
            entry_for(
                principal,
                "break-glass",
                patient_id=id,
                resource_type="Patient",
                resource_id=id,
                detail=detail,
            )
        )
    answer = {
        "resourceType": "Parameters",
        "parameter": [{"name": "until", "valueInstant": instant(grant.until)}],
    }
    return FhirResponse(200, body=orjson.dumps(answer))
