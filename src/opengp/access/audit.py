"""The audit trail: one entry per access, and its view as FHIR AuditEvent.

Every access — read, search, create, update, delete, export, sign-in, failure, denial —
appends one `AuditEntry`: a write's in the write's own transaction (`WriteTransaction.audit`),
a read's in a short transaction of its own before the response is sent
(`ResourceStore.auditing`). A search or export that returns many resources is one entry.
The chain, its verification and its queries live with the tables
(`opengp.store.sql.audit`, re-exported here).

What an entry holds is chosen so the trail is useful without holding clinical content:
who (principal label, client, on whose behalf, purpose), whose record (the patient's logical
id), which resource, and a small `detail` — search parameter *names* (never their values,
which may be an NHS number or a name), a break-glass reason, a failure reason.

AuditEvent rendering follows FHIR R4 (http://hl7.org/fhir/R4/auditevent.html) and, where it
is easy, the IHE Basic Audit Log Patterns (BALP,
https://profiles.ihe.net/ITI/BALP/): type `rest` with the FHIR interaction as subtype, or
DICOM `110114` User Authentication for sign-in; the patient as an entity with role Patient,
the resource as a Domain Resource entity, the user as the requesting agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import orjson

from opengp.access.principal import Principal
from opengp.fhir.datetimes import instant
from opengp.store.sql.audit import (
    AuditRow,
    VerifyReport,
    canonical_bytes,
    chain_hash,
    parse_head,
    query_audit,
    verify,
)

__all__ = [
    "AuditEntry",
    "AuditRow",
    "VerifyReport",
    "canonical_bytes",
    "chain_hash",
    "entry_for",
    "parameter_names",
    "parse_head",
    "query_audit",
    "to_audit_event",
    "verify",
]

Action = Literal[
    "read",
    "vread",
    "search",
    "history",
    "create",
    "update",
    "patch",
    "delete",
    "export",
    "signin",
    "signout",
    "token",
    "failure",
    "denial",
    "break-glass",
]
Outcome = Literal["success", "denied", "failed"]
ACTIONS: Final = frozenset(get_args(Action))
OUTCOMES: Final = frozenset(get_args(Outcome))
ANONYMOUS: Final = "anonymous"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One access, as the caller knows it; the store adds seq, recorded time and hashes."""

    action: Action
    outcome: Outcome
    principal: str  # Principal.label, or "anonymous"
    on_behalf_of: str | None = None  # a proxy's patient (Patient/<id>)
    client_id: str | None = None
    purpose: str | None = None
    patient_id: str | None = None  # whose record, when known
    resource_type: str | None = None
    resource_id: str | None = None
    # Names and reasons only: never a value that may be patient data.
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"audit action {self.action!r} is not one of {sorted(ACTIONS)}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome {self.outcome!r} is not one of {sorted(OUTCOMES)}")


def entry_for(
    principal: Principal | None,
    action: Action,
    outcome: Outcome = "success",
    *,
    patient_id: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The entry for an access by `principal` (None: not signed in)."""
    if principal is None:
        return AuditEntry(
            action,
            outcome,
            ANONYMOUS,
            patient_id=patient_id,
            resource_type=resource_type,
            resource_id=resource_id,
            detail=detail or {},
        )
    proxied = principal.patient_id if principal.kind == "proxy" else None
    return AuditEntry(
        action,
        outcome,
        principal.label,
        on_behalf_of=f"Patient/{proxied}" if proxied else None,
        client_id=principal.client_id,
        purpose=principal.purpose,
        patient_id=patient_id,
        resource_type=resource_type,
        resource_id=resource_id,
        detail=detail or {},
    )


def parameter_names(query: Iterable[tuple[str, str]]) -> list[str]:
    """The distinct search parameter names of a query (with modifiers), without values."""
    return sorted({name for name, _value in query})


# FHIR AuditEvent -------------------------------------------------------------------------

# Identifies the principal label (kind/account id) in AuditEvent.agent.who.identifier.
# Local to a deployment; `to_audit_event` takes another system when one is configured.
PRINCIPAL_SYSTEM: Final = "https://opengp.example/Id/principal"
CLIENT_SYSTEM: Final = "https://opengp.example/Id/oauth-client"

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
_LOGIN = {"system": _DCM, "code": "110114", "display": "User Authentication"}
_SECURITY_ALERT = {"system": _DCM, "code": "110113", "display": "Security Alert"}
_INTERACTION = "http://hl7.org/fhir/restful-interaction"

# action -> (type, subtype, AuditEvent.action); the subtype is the FHIR interaction code
# (http://hl7.org/fhir/R4/codesystem-restful-interaction.html) or the DICOM login/logout.
_KINDS: Final[dict[str, tuple[dict[str, str], dict[str, str] | None, str]]] = {
    "read": (_REST, {"system": _INTERACTION, "code": "read"}, "R"),
    "vread": (_REST, {"system": _INTERACTION, "code": "vread"}, "R"),
    "history": (_REST, {"system": _INTERACTION, "code": "history"}, "R"),
    # R4: E is "perform a query/search operation"
    "search": (_REST, {"system": _INTERACTION, "code": "search"}, "E"),
    "create": (_REST, {"system": _INTERACTION, "code": "create"}, "C"),
    "update": (_REST, {"system": _INTERACTION, "code": "update"}, "U"),
    "patch": (_REST, {"system": _INTERACTION, "code": "patch"}, "U"),
    "delete": (_REST, {"system": _INTERACTION, "code": "delete"}, "D"),
    "export": (_REST, {"system": _INTERACTION, "code": "operation"}, "E"),
    "signin": (_LOGIN, {"system": _DCM, "code": "110122", "display": "Login"}, "E"),
    "token": (_LOGIN, {"system": _DCM, "code": "110122", "display": "Login"}, "E"),
    "signout": (_LOGIN, {"system": _DCM, "code": "110123", "display": "Logout"}, "E"),
    "failure": (_REST, None, "E"),
    "denial": (_REST, None, "E"),
    "break-glass": (_SECURITY_ALERT, None, "E"),
}
# http://hl7.org/fhir/R4/valueset-audit-event-outcome.html
_OUTCOMES: Final = {"success": "0", "denied": "4", "failed": "8"}
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_PURPOSES: Final = {
    "direct-care": {"system": _ACT_REASON, "code": "TREAT", "display": "treatment"},
    "break-glass": {"system": _ACT_REASON, "code": "ETREAT", "display": "Emergency Treatment"},
}
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_PATIENT_ENTITY: Final = {
    "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
    "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
}
_RESOURCE_ENTITY: Final = {
    "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
    "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
}
_QUERY_ENTITY: Final = {
    "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
    "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
}
_SOURCE: Final = {
    "observer": {"display": "OpenGP"},
    "type": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
            "code": "4",
            "display": "Application Server",
        }
    ],
}


def to_audit_event(
    row: AuditRow,
    *,
    who_display: str | None = None,
    principal_system: str = PRINCIPAL_SYSTEM,
) -> dict[str, Any]:
    """An entry as a FHIR R4 AuditEvent; `who_display`: the principal's name, if looked up."""
    type_coding, subtype, action = deepcopy(_KINDS.get(row.action, (_REST, None, "E")))
    detail: dict[str, Any] = orjson.loads(row.detail) if row.detail else {}
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row.seq),
        "type": type_coding,
    }
    if subtype is not None:
        event["subtype"] = [subtype]
    event["action"] = action
    event["recorded"] = instant(row.recorded)
    event["outcome"] = _OUTCOMES.get(row.outcome, "8")
    reason = detail.get("reason")
    if row.outcome != "success" and isinstance(reason, str) and reason:
        event["outcomeDesc"] = reason
    urgent = row.action == "break-glass" or detail.get("break_glass") is True
    purpose = _PURPOSES.get("break-glass" if urgent else row.purpose or "")
    if purpose is not None:
        event["purposeOfEvent"] = [{"coding": [dict(purpose)]}]
        if row.action == "break-glass" and isinstance(reason, str):
            event["purposeOfEvent"][0]["text"] = reason  # the clinician's stated reason
    event["agent"] = _agents(row, who_display, principal_system)
    event["source"] = deepcopy(_SOURCE)
    entities = _entities(row, detail)
    if entities:
        event["entity"] = entities
    return event


def _agents(row: AuditRow, who_display: str | None, system: str) -> list[dict[str, Any]]:
    who: dict[str, Any] = {"display": who_display or row.principal}
    if row.principal != ANONYMOUS:
        who["identifier"] = {"system": system, "value": row.principal}
    agents: list[dict[str, Any]] = [{"who": who, "requestor": True}]
    if row.client_id:
        agents.append(
            {
                "type": {"coding": [{"system": _DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": CLIENT_SYSTEM, "value": row.client_id}},
                "requestor": False,
            }
        )
    if row.on_behalf_of:
        # R4 has no agent.onBehalfOf (R5 does): the represented party is an agent of its own.
        represented: dict[str, Any] = (
            {"reference": row.on_behalf_of}
            if "/" in row.on_behalf_of
            else {"identifier": {"system": system, "value": row.on_behalf_of}}
        )
        agents.append({"type": {"text": "on behalf of"}, "who": represented, "requestor": False})
    return agents


def _entities(row: AuditRow, detail: Mapping[str, Any]) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if row.patient_id:
        entities.append(
            {"what": {"reference": f"Patient/{row.patient_id}"}, **deepcopy(_PATIENT_ENTITY)}
        )
    if row.resource_type and row.resource_id:
        reference = f"{row.resource_type}/{row.resource_id}"
        if reference != f"Patient/{row.patient_id}":
            entities.append({"what": {"reference": reference}, **deepcopy(_RESOURCE_ENTITY)})
    if row.action == "search":
        names = detail.get("parameters")
        query: dict[str, Any] = deepcopy(_QUERY_ENTITY)
        if row.resource_type:
            query["name"] = row.resource_type
        if isinstance(names, list) and names:
            query["detail"] = [{"type": "parameters", "valueString": ",".join(map(str, names))}]
        entities.append(query)
    return entities
