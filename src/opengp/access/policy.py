"""Who may do what: one declarative table and a few named rules (docs/security.md).

Every access — FHIR API, screens, jobs — is decided by `decide`. It combines three things:
1. the **role table**: what a national RBAC role may do with each category of record;
2. the **scopes** of the access (SMART v2), which can only narrow what the role allows;
3. the **relationship** to the patient: a patient sees their own record (and a proxy the
   records they were granted), staff see patients they have a legitimate relationship with
   (or have broken the glass for), system clients see what their scopes and purpose allow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from opengp.access.principal import Principal

# Interactions by the SMART v2 permission they need (c r u d s).
PERMISSION = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history": "r",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "search": "s",
    "export": "r",
}


class Category(Enum):
    DEMOGRAPHICS = "demographics"  # who the patient is, and the practice's people and places
    APPOINTMENTS = "appointments"
    CLINICAL = "clinical"  # everything else in a patient's record
    AUDIT = "audit"


CATEGORY_OF = {
    **dict.fromkeys(
        (
            "Patient",
            "RelatedPerson",
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Location",
            "HealthcareService",
            "Endpoint",
            "EpisodeOfCare",
        ),
        Category.DEMOGRAPHICS,
    ),
    **dict.fromkeys(
        ("Appointment", "AppointmentResponse", "Slot", "Schedule"), Category.APPOINTMENTS
    ),
    "AuditEvent": Category.AUDIT,
}

# THE TABLE: what each national RBAC role may do with each category of record, as SMART
# permissions (c create, r read, u update, d delete, s search; - nothing). Receptionists see
# demographics and appointments, not clinical entries; Privacy Officers read the audit trail.
# The PATIENT row is what a patient (or a proxy, within their grant) may do in their own
# record. https://digital.nhs.uk/developer/guides-and-documentation/security-and-authorisation
TABLE = """
role     demographics  appointments  clinical  audit   who
R8000    cruds         cruds         cruds     -       Clinical Practitioner
R8001    cruds         cruds         cruds     -       Nurse
R8003    rs            crus          crus      -       Health Professional
R8006    rs            crus          rs        -       Medical Secretary
R8008    crus          crus          rs        -       Admin/Clinical Support
R8009    crus          cruds         -         -       Receptionist
R8015    -             -             -         -       Systems Support (runs the system)
R0001    rs            -             -         rs      Privacy Officer
PATIENT  rs            crus          rs        rs      the patient, or a proxy
"""


def _parse(table: str) -> dict[str, dict[Category, str]]:
    lines = [line.split() for line in table.strip().splitlines()]
    columns = [Category(name) for name in lines[0][1:5]]
    return {
        row[0]: {c: p for c, p in zip(columns, row[1:5], strict=True) if p != "-"}
        for row in lines[1:]
    }


ROLE_TABLE = _parse(TABLE)
PATIENT_TABLE = ROLE_TABLE.pop("PATIENT")
# A legitimate relationship: a resource in the patient's record of one of these types refers,
# through this search parameter, to the member of staff's organisation, themselves or the
# role they act in. Registered at the practice (the patient's managing organisation or
# general practitioner, or a registration EpisodeOfCare), booked with them (Appointment), or
# referred to them (ServiceRequest).
RELATIONSHIP_LINKS: tuple[tuple[str, str], ...] = (
    ("Patient", "organization"),
    ("Patient", "general-practitioner"),
    ("EpisodeOfCare", "organization"),
    ("Appointment", "actor"),
    ("ServiceRequest", "performer"),
)


def relationship_targets(principal: Principal) -> tuple[tuple[str, str], ...]:
    """What a member of staff is, for RELATIONSHIP_LINKS: (type, id) of their organisation,
    practitioner and practitioner role."""
    refs = [("Organization", principal.organization_id)] if principal.organization_id else []
    for reference in (principal.fhir_user, principal.practitioner_role):
        kind, _, id = (reference or "").partition("/")
        if kind in ("Practitioner", "PractitionerRole") and id:
            refs.append((kind, id))
    return tuple(refs)


# Roles that may break the glass: registered clinicians acting in direct care.
BREAK_GLASS_ROLES = frozenset({"R8000", "R8001", "R8003"})
# meta.security labels that withhold an item from patients and proxies online
# (http://terminology.hl7.org/CodeSystem/v3-Confidentiality R and V; ActCode sensitivity).
SENSITIVE_LABELS = frozenset(
    {
        ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"),
        ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "V"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "SDV"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIV"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "ETH"),
    }
)


@dataclass(frozen=True, slots=True)
class Request:
    """One access to decide: an interaction on a resource type, maybe in a patient's record."""

    interaction: str
    resource_type: str
    patient_id: str | None = None  # whose compartment the target is in, when known
    security: frozenset[tuple[str, str]] = frozenset()  # the target's meta.security labels


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    break_glass: bool = False  # allowed only because the glass was broken: flag and notify

    def __bool__(self) -> bool:
        return self.allowed


# Whether a member of staff has a legitimate relationship with a patient (registered at
# their organisation, referred to or booked with their service); supplied by the caller,
# who can look it up.
Relationship = Callable[[Principal, str], bool]
ScopeCheck = Callable[[Iterable[str], str, str, str], bool]


def category(resource_type: str) -> Category:
    return CATEGORY_OF.get(resource_type, Category.CLINICAL)


def role_allows(roles: Iterable[str], cat: Category, permission: str) -> bool:
    return any(permission in ROLE_TABLE.get(role, {}).get(cat, "") for role in roles)


def is_sensitive(labels: frozenset[tuple[str, str]]) -> bool:
    return not labels.isdisjoint(SENSITIVE_LABELS)


def may_break_glass(principal: Principal) -> bool:
    return principal.kind == "staff" and not BREAK_GLASS_ROLES.isdisjoint(principal.roles)


def glass_broken(principal: Principal, patient_id: str, now: datetime) -> bool:
    """A clinician stated a reason to open this record, and the time allowed has not run out."""
    return may_break_glass(principal) and any(
        g.patient_id == patient_id and g.until > now for g in principal.break_glass
    )


def decide(
    principal: Principal,
    request: Request,
    *,
    scopes_allow: ScopeCheck,
    relationship: Relationship,
    now: datetime,
    proxy_patients: frozenset[str] = frozenset(),
) -> Decision:
    permission = PERMISSION.get(request.interaction)
    if permission is None:
        return Decision(False, f"unknown interaction {request.interaction!r}")
    cat = category(request.resource_type)
    context = {"patient": "patient", "proxy": "patient", "staff": "user", "system": "system"}
    if not scopes_allow(
        principal.scopes, context[principal.kind], request.resource_type, permission
    ):
        return Decision(False, "the access token's scopes do not cover this")
    if principal.kind in ("patient", "proxy"):
        return _for_patient(principal, request, cat, permission, proxy_patients)
    if principal.kind == "system":
        # Scopes and purpose are the whole grant of a system client (checked above).
        return Decision(True, f"system client ({principal.purpose or 'direct-care'})")
    if not role_allows(principal.roles, cat, permission):
        return Decision(
            False, f"no role of this user may {request.interaction} {cat.value} records"
        )
    if request.patient_id is None or cat is Category.AUDIT:
        return Decision(True, "role allows it; not in a patient's record")
    if relationship(principal, request.patient_id):
        return Decision(True, "legitimate relationship")
    if glass_broken(principal, request.patient_id, now):
        return Decision(True, "break-glass", break_glass=True)
    return Decision(False, "no legitimate relationship with this patient")


def _for_patient(
    principal: Principal,
    request: Request,
    cat: Category,
    permission: str,
    proxy_patients: frozenset[str],
) -> Decision:
    allowed_patients = proxy_patients if principal.kind == "proxy" else {principal.patient_id}
    if request.patient_id is None or request.patient_id not in allowed_patients:
        return Decision(False, "outside the patient's own record")
    if permission not in PATIENT_TABLE.get(cat, ""):
        return Decision(False, f"patients may not {request.interaction} {cat.value} records")
    if is_sensitive(request.security):
        return Decision(False, "withheld from online access")
    return Decision(True, "the patient's own record")
