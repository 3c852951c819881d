"""The one description of who is asking, whatever way they signed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

PrincipalKind = Literal["staff", "patient", "proxy", "system"]


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """A clinician's stated reason for opening a record without a legitimate relationship."""

    patient_id: str
    reason: str
    until: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    id: str  # user account id, or OAuth2 client id for system clients
    display: str
    # fhirUser (SMART): Practitioner/<id>, Patient/<id>, RelatedPerson/<id>; None for systems.
    fhir_user: str | None = None
    practitioner_role: str | None = None  # PractitionerRole/<id> the staff member acts in
    organization_id: str | None = None  # the organisation a staff member or client acts for
    roles: frozenset[str] = frozenset()  # national RBAC codes, e.g. R8000
    scopes: frozenset[str] = frozenset()  # SMART v2 scopes of this access
    patient_id: str | None = None  # the patient in context (self, proxied, or launch/patient)
    purpose: str | None = None  # system clients: direct-care | migration
    client_id: str | None = None  # the OAuth2 client the access came through
    break_glass: tuple[BreakGlass, ...] = field(default=())

    @property
    def label(self) -> str:
        """How the audit trail names this principal (no patient data)."""
        return f"{self.kind}/{self.id}"
