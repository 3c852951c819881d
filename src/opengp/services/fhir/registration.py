"""Ending a GP registration ends what the Patient says about it.

A registration is an EpisodeOfCare managed by the practice (`policy.RELATIONSHIP_LINKS`).
When one ends (its status becomes finished, cancelled or entered-in-error: the patient left,
moved to another practice, or it was a mistake) and the patient has no other open one at
that practice, the Patient stops naming the practice, in the same transaction: its
`managingOrganization` when that is the practice, and the `generalPractitioner` entries for
the practice or one of its PractitionerRoles. That change is a new version of the Patient
with its own Provenance. The practice's staff then have no legitimate relationship through
the registration; the record stays (it is kept, not deleted), and break-glass still opens it.
"""

from __future__ import annotations

from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.search.query import conditional_query
from opengp.services.fhir import provenance
from opengp.store import StoredResource, WriteTransaction

ENDED = frozenset({"finished", "cancelled", "entered-in-error"})
OPEN = "planned,waitlist,active,onhold"


def episode_of_care(
    tx: WriteTransaction,
    principal: Principal | None,
    previous: StoredResource | None,
    resource: dict[str, Any] | None,
) -> dict[str, Any] | None:
    if principal is None or previous is None or previous.content is None or resource is None:
        return resource  # a new episode, or a deletion: no registration ends here
    before = jsonio.loads(previous.content)
    if before.get("status") in ENDED or resource.get("status") not in ENDED:
        return resource
    practice = _reference(resource.get("managingOrganization"))
    patient_ref = _reference(resource.get("patient"))
    if not practice.startswith("Organization/") or not patient_ref.startswith("Patient/"):
        return resource
    patient_id = patient_ref.removeprefix("Patient/")
    still_open = conditional_query(
        "EpisodeOfCare",
        [("patient", patient_ref), ("organization", practice), ("status", OPEN)],
    )
    if set(tx.find(still_open, 2)) - {previous.id}:
        return resource  # registered there still, through another episode
    _unregister(tx, principal, patient_id, practice)
    return resource


def _unregister(tx: WriteTransaction, principal: Principal, patient_id: str, practice: str) -> None:
    current = tx.current("Patient", patient_id, for_update=True)
    if current is None or current.deleted or current.content is None:
        return
    patient: dict[str, Any] = jsonio.loads(current.content)
    changed = False
    if _reference(patient.get("managingOrganization")) == practice:
        del patient["managingOrganization"]
        changed = True
    doctors = patient.get("generalPractitioner") or []
    kept = [gp for gp in doctors if not _of_practice(tx, _reference(gp), practice)]
    if len(kept) != len(doctors):
        changed = True
        if kept:
            patient["generalPractitioner"] = kept
        else:
            patient.pop("generalPractitioner", None)
    if changed:
        stored = tx.save("Patient", patient_id, patient, method="PUT", previous=current)
        provenance.record(tx, principal, "update", 200, stored)


def _of_practice(tx: WriteTransaction, reference: str, practice: str) -> bool:
    """Whether a general practitioner reference is the practice or one of its roles."""
    if reference == practice:
        return True
    kind, _, id = reference.partition("/")
    if kind != "PractitionerRole" or not id:
        return False
    role = tx.current("PractitionerRole", id)
    if role is None or role.deleted or role.content is None:
        return False
    body: dict[str, Any] = jsonio.loads(role.content)
    return _reference(body.get("organization")) == practice


def _reference(value: Any) -> str:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else ""
