"""Every write through the FHIR API records its provenance: who wrote which version, when,
on whose behalf, through which app (http://hl7.org/fhir/R4/provenance.html).

A Provenance resource is saved in the same transaction as the version it describes, so the
two are committed (or rolled back) together; `Provenance?target=Observation/1` finds them.
"""

from __future__ import annotations

import uuid
from typing import Any

from opengp.access.audit import CLIENT_SYSTEM, PRINCIPAL_SYSTEM
from opengp.access.principal import Principal
from opengp.fhir.datetimes import instant
from opengp.store import StoredResource, WriteTransaction

WRITES = frozenset({"create", "update", "patch", "delete"})
_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_ACTIVITY = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE"}
_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _who(principal: Principal) -> dict[str, Any]:
    if principal.fhir_user:
        return {"reference": principal.fhir_user, "display": principal.display}
    identifier = {"system": PRINCIPAL_SYSTEM, "value": principal.label}
    return {"identifier": identifier, "display": principal.display}


def provenance_of(principal: Principal, interaction: str, stored: StoredResource) -> dict[str, Any]:
    author: dict[str, Any] = {
        "type": {"coding": [{"system": _PARTICIPANT, "code": "author"}]},
        "who": _who(principal),
    }
    if principal.kind == "proxy" and principal.patient_id:
        author["onBehalfOf"] = {"reference": f"Patient/{principal.patient_id}"}
    agents = [author]
    if principal.client_id and principal.kind != "system":
        app = {"identifier": {"system": CLIENT_SYSTEM, "value": principal.client_id}}
        agents.append(
            {"type": {"coding": [{"system": _PARTICIPANT, "code": "performer"}]}, "who": app}
        )
    target = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": instant(stored.last_updated),
        "activity": {"coding": [{"system": _OPERATION, "code": _ACTIVITY[interaction]}]},
        "agent": agents,
    }


def record(
    tx: WriteTransaction,
    principal: Principal,
    interaction: str,
    status: int,
    stored: StoredResource | None,
) -> None:
    """Save the Provenance of a write that happened (not of a conditional create that found
    its match, nor of a delete of what was absent)."""
    if interaction not in WRITES or stored is None or stored.resource_type == "Provenance":
        return
    if interaction == "create" and status == 200:
        return
    new_id = str(uuid.uuid4())
    body = {"id": new_id, **provenance_of(principal, interaction, stored)}
    tx.save("Provenance", new_id, body, method="POST", previous=None)
