"""Every FHIR interaction is authorised by the policy and recorded in the audit trail.

One place for both, so no route can be added that skips either: the router calls
`authorize` before a handler runs and `record` after it (or after it failed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from opengp.access import online_access, policy
from opengp.access.audit import AuditEntry, Outcome, entry_for, parameter_names
from opengp.access.principal import Principal
from opengp.access.scopes import allows
from opengp.fhir.errors import Concealed, FhirError, Forbidden
from opengp.search.definitions.r4 import COMPARTMENTS
from opengp.search.extract import compartment_owners
from opengp.search.release import Release
from opengp.services.fhir.messages import FhirRequest, FhirResponse
from opengp.store import ReadTransaction, ResourceStore, StoredResource

# Route interaction (CapabilityStatement code) -> policy interaction and audit action.
ACTIONS: dict[str, str] = {
    "read": "read",
    "vread": "vread",
    "search-type": "search",
    "search-system": "search",
    "search-compartment": "search",
    "everything": "search",
    "search-audit": "search",
    "history-instance": "history",
    "history-type": "history",
    "history-system": "history",
    "create": "create",
    "update": "update",
    "patch": "patch",
    "delete": "delete",
    # Bulk data (opengp.services.bulk): $export reads; $import creates and updates.
    "export": "export",
    "import": "create",
}


def unrelated(principal: Principal, patient_id: str) -> bool:
    """The relationship check when none can be made: no relationship (refuse)."""
    return False


class Records:
    """What the policy needs to know from the records, on `tx`, each answer looked up once:
    as a `policy.Relationship`, the legitimate-relationship check of
    policy.RELATIONSHIP_LINKS; and what a patient or proxy was released online."""

    def __init__(self, tx: ReadTransaction) -> None:
        self.tx = tx
        self._related: dict[tuple[str, str], bool] = {}
        self._online: dict[tuple[str, str], policy.OnlineRecordAccess] = {}

    def __call__(self, principal: Principal, patient_id: str) -> bool:
        key = (principal.label, patient_id)
        if key not in self._related:
            targets = policy.relationship_targets(principal)
            self._related[key] = self.tx.is_related(patient_id, policy.RELATIONSHIP_LINKS, targets)
        return self._related[key]

    def online(self, principal: Principal, patient_id: str) -> policy.OnlineRecordAccess:
        key = (principal.label, patient_id)
        if key not in self._online:
            self._online[key] = online_access.online_access(self.tx, principal, patient_id)
        return self._online[key]


def relationships(tx: ReadTransaction) -> policy.Relationship:
    """The legitimate-relationship check of policy.RELATIONSHIP_LINKS, on `tx` (and, for
    patients' reads, what they were released online: `Records`)."""
    return Records(tx)


# Reads by id by patients, proxies and staff: the resource is fetched first, because whose
# record it is (and whether it is withheld) is only known from the resource itself.
AFTER_READING = frozenset({"read", "vread"})


PATIENT_COMPARTMENT = COMPARTMENTS["Patient"]
SEARCHES = frozenset({"search-type", "search-compartment"})


def authorize_route(
    principal: Principal,
    interaction: str,
    args: list[str],
    relationship: policy.Relationship = unrelated,
) -> None:
    """`authorize` for a routed request: `args` are the path's (type, id, ...) arguments."""
    resource_type = args[0] if args else None
    patient_id = None
    if interaction == "search-compartment":
        resource_type = args[2]
        patient_id = args[1] if args[0] == "Patient" else None
    elif interaction == "everything":
        resource_type, patient_id = "*", args[1]
    elif interaction == "search-audit":
        resource_type = "AuditEvent"
        if principal.kind in ("patient", "proxy"):
            patient_id = principal.patient_id  # their own record's trail (auditing.search)
    elif interaction == "search-type" and principal.kind in ("patient", "proxy"):
        # A patient's searches run inside their own record (see `search_scope`).
        patient_id = principal.patient_id
    authorize(
        principal, interaction, resource_type, patient_id=patient_id, relationship=relationship
    )


def search_scope(
    principal: Principal, resource_type: str | None, tx: ReadTransaction | None = None
) -> dict[str, Any]:
    """What a search by `principal` is limited to, as SearchQuery fields. Patients and
    proxies search only their own record, without what is withheld from them online, and
    only what the practice released to them online (looked up on `tx`; without it, no
    clinical entries); staff only the records of patients they have a legitimate
    relationship with."""
    in_records = resource_type is None or resource_type == "Patient"
    in_records = in_records or resource_type in PATIENT_COMPARTMENT
    if principal.kind == "staff":
        if not in_records:
            return {}
        targets = policy.relationship_targets(principal)
        return {"related": (policy.RELATIONSHIP_LINKS, targets)}
    if principal.kind not in ("patient", "proxy") or principal.patient_id is None:
        return {}
    if not in_records:
        raise Forbidden(f"{resource_type} is not part of a patient's record")
    return {
        "compartment": ("Patient", (principal.patient_id,)),
        "withheld": policy.SENSITIVE_LABELS,
        "released": released_online(principal, principal.patient_id, tx),
    }


def released_online(principal: Principal, patient_id: str, tx: ReadTransaction | None) -> Release:
    """The search restriction of what `principal` was released online of `patient_id`'s
    record (without `tx` to look it up: no clinical entries)."""
    if tx is None:
        return policy.NO_ONLINE_ACCESS.release()
    return online_access.online_access(tx, principal, patient_id).release()


def checks_after_reading(principal: Principal, interaction: str) -> bool:
    return principal.kind in ("patient", "proxy", "staff") and interaction in AFTER_READING


# Patients and proxies write in their own record only (e.g. book an Appointment): whose record
# a write lands in is known from the resource, so the check follows the write, in its
# transaction (`authorize_change`).
PATIENT_WRITES = frozenset({"create", "update", "patch", "delete"})


def checks_after_writing(principal: Principal, interaction: str) -> bool:
    return principal.kind in ("patient", "proxy") and interaction in PATIENT_WRITES


def authorize(
    principal: Principal,
    interaction: str,
    resource_type: str | None,
    *,
    patient_id: str | None = None,
    security: frozenset[tuple[str, str]] = frozenset(),
    relationship: policy.Relationship = unrelated,
    dated: datetime | None = None,
    online: policy.OnlineRecordAccess | None = None,
) -> None:
    action = ACTIONS.get(interaction)
    if action is None:
        return  # capabilities, Bundles (their entries are authorised one by one)
    request = policy.Request(action, resource_type or "*", patient_id, security, dated)
    proxied = frozenset({principal.patient_id}) if principal.patient_id else frozenset()
    decision = policy.decide(
        principal,
        request,
        scopes_allow=allows,
        relationship=relationship,
        now=datetime.now(UTC),
        proxy_patients=proxied if principal.kind == "proxy" else frozenset(),
        online=online,
    )
    if not decision:
        raise Forbidden(f"not allowed: {decision.reason}")


def visibility(
    principal: Principal | None, tx: ReadTransaction
) -> Callable[[StoredResource], bool]:
    """Whether `principal` may see a resource a search brings in besides its matches
    (`_include`, `_revinclude`): checked one by one, like a read, relationships memoised."""
    if principal is None:
        return lambda stored: False
    related = Records(tx)

    def may_see(stored: StoredResource) -> bool:
        try:
            authorize_read(principal, "read", FhirResponse(200, stored), related)
        except (Forbidden, Concealed):
            return False
        return True

    return may_see


def authorize_read(
    principal: Principal,
    interaction: str,
    response: FhirResponse,
    relationship: policy.Relationship = unrelated,
) -> None:
    """The check of a read, once the resource is known. For patients and proxies anything
    outside their record, or withheld from online access, is concealed (404, not 403);
    staff are told they have no legitimate relationship (403)."""
    stored = response.resource
    if stored is None:
        return
    patient_id, security = _record_of(stored.resource_type, stored.id, stored.content, principal)
    dated, online = None, None
    if principal.kind in ("patient", "proxy") and patient_id is not None:
        # What the practice released online: looked up on the request's transaction (no
        # transaction to look it up on: nothing clinical).
        records = relationship if isinstance(relationship, Records) else None
        online = records.online(principal, patient_id) if records else policy.NO_ONLINE_ACCESS
        if stored.content is not None:
            dated = policy.entry_date(orjson.loads(stored.content))
    try:
        authorize(
            principal,
            interaction,
            stored.resource_type,
            patient_id=patient_id,
            security=security,
            relationship=relationship,
            dated=dated,
            online=online,
        )
    except Forbidden:
        if principal.kind == "staff":
            raise
        raise Concealed(f"{stored.resource_type}/{stored.id} is not known") from None


def authorize_change(
    principal: Principal,
    interaction: str,
    stored: StoredResource | None,
    relationship: policy.Relationship = unrelated,
) -> None:
    """The check of a write against the record it lands in: the resource as written (create,
    update, patch; inside the write transaction, so a refusal rolls it back) or as it was
    (delete). Staff need a legitimate relationship with that patient too."""
    patient_like = principal.kind in ("patient", "proxy")
    if stored is None or stored.content is None:
        return
    if interaction == "create" and stored.resource_type == "Patient" and not patient_like:
        return  # staff registering a new patient: no record to protect yet
    patient_id, security = _record_of(stored.resource_type, stored.id, stored.content, principal)
    if patient_id is None and not patient_like:
        return  # not in a patient's record: the role check before the write decided
    authorize(
        principal,
        interaction,
        stored.resource_type,
        patient_id=patient_id,
        security=security,
        relationship=relationship,
    )


def _record_of(
    resource_type: str, id: str, content: bytes | None, principal: Principal | None = None
) -> tuple[str | None, frozenset[tuple[str, str]]]:
    """Whose record a resource is in (by the Patient CompartmentDefinition) and its
    meta.security labels. A resource in several patients' records (an Appointment with two
    patients) is judged as `principal`'s own when it is in theirs, else as the first's."""
    if content is None:
        return (id if resource_type == "Patient" else None), frozenset()
    body: dict[str, Any] = orjson.loads(content)
    labels = frozenset(
        (str(c.get("system", "")), str(c.get("code", "")))
        for c in body.get("meta", {}).get("security", ())
        if isinstance(c, dict)
    )
    owners = compartment_owners(body, "Patient")
    if principal is not None and principal.patient_id in owners:
        return principal.patient_id, labels
    return (owners[0] if owners else None), labels


def patient_of(resource_type: str, id: str, content: bytes | None) -> str | None:
    """The patient whose record a resource belongs to."""
    return _record_of(resource_type, id, content)[0]


def success(
    principal: Principal,
    interaction: str,
    args: list[str],
    request: FhirRequest,
    response: FhirResponse,
) -> AuditEntry | None:
    action = ACTIONS.get(interaction)
    if action is None:
        return None
    stored = response.resource
    resource_type = args[0] if args else None
    resource_id = stored.id if stored is not None else (args[1] if len(args) > 1 else None)
    detail: dict[str, Any] = {}
    patient_id = None
    if interaction in ("search-compartment", "everything"):
        patient_id = args[1] if args[0] == "Patient" else None
        resource_type, resource_id = (args[2] if len(args) > 2 else None), None
    if action in ("search", "history"):
        detail["parameters"] = parameter_names(request.params)
    elif stored is not None:
        patient_id = patient_of(stored.resource_type, stored.id, stored.content)
    if patient_id is not None and any(g.patient_id == patient_id for g in principal.break_glass):
        detail["break_glass"] = True  # opened under break-glass: for the Privacy Officer
    return entry_for(
        principal,
        action,  # type: ignore[arg-type]
        patient_id=patient_id,
        resource_type=resource_type,
        resource_id=resource_id,
        detail=detail,
    )


def failure(
    principal: Principal | None, interaction: str | None, args: list[str], error: FhirError
) -> AuditEntry:
    action = ACTIONS.get(interaction or "", "failure")
    denied = error.status in (401, 403) or isinstance(error, Concealed)
    outcome: Outcome = "denied" if denied else "failed"
    return entry_for(
        principal,
        action,  # type: ignore[arg-type]
        outcome,
        resource_type=args[0] if args else None,
        resource_id=args[1] if len(args) > 1 else None,
        detail={"status": error.status, "issue": error.issues[0].code if error.issues else ""},
    )


def record_failure(store: ResourceStore, error: FhirError) -> None:
    """Audit a request refused before anyone was identified (a missing or bad token)."""
    with store.auditing() as trail:
        trail.audit(failure(None, None, [], error))
