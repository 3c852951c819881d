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
from datetime import date, datetime
from enum import Enum
from typing import Any

from opengp.access.principal import Principal
from opengp.search.definitions.r4 import COMPARTMENTS
from opengp.search.extract import index_rows
from opengp.search.model import DateRow
from opengp.search.parse import RelationshipLink
from opengp.search.ranges import date_range
from opengp.search.release import Release

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
# A registration that has ended no longer counts (services/fhir/registration.py also takes
# the practice off the Patient then).
RELATIONSHIP_LINKS: tuple[RelationshipLink, ...] = (
    ("Patient", "organization", ()),
    ("Patient", "general-practitioner", ()),
    ("EpisodeOfCare", "organization", ("finished", "cancelled", "entered-in-error")),
    ("Appointment", "actor", ()),
    ("ServiceRequest", "performer", ()),
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


# Roles that manage the practice's accounts (add staff, reset passwords and second factors,
# disable and enable, set patients' online access): Systems Support. They see no records.
ACCOUNT_MANAGER_ROLES = frozenset({"R8015"})


def may_manage_accounts(principal: Principal) -> bool:
    return principal.kind == "staff" and not ACCOUNT_MANAGER_ROLES.isdisjoint(principal.roles)


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
    dated: datetime | None = None  # the target's date, by ENTRY_DATE (online access)


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


# ---- online record access: what the practice released to a patient online ----------------
# NHS England's GP online record access: per patient, a level of access to the record, and
# whether it covers the whole history or only entries from the day it was given
# (prospective access); a proxy's access may be narrower than the patient's own. The
# level applies to clinical entries; the patient's details, appointments and who accessed
# the record are shown whatever it is. https://www.england.nhs.uk/long-read/
# access-to-patient-records-through-the-nhs-app/ and the GP contract's online services.


class OnlineLevel(Enum):
    NONE = "none"  # no clinical entries online
    SUMMARY = "summary"  # summary information: allergies, medications, immunisations
    DETAILED = "detailed"  # the detailed coded record


LEVEL_NAMES = {
    OnlineLevel.NONE: "No online access to the record",
    OnlineLevel.SUMMARY: "Summary information (allergies, medications, immunisations)",
    OnlineLevel.DETAILED: "The detailed coded record",
}
_RANK = {level: rank for rank, level in enumerate(OnlineLevel)}

# Every type of clinical entry in a patient's record (the Patient compartment, less the
# categories shown whatever the level).
RECORD_TYPES = frozenset(t for t in COMPARTMENTS["Patient"] if t not in CATEGORY_OF)
SUMMARY_TYPES = frozenset(
    {
        "AllergyIntolerance",
        "Immunization",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
    }
)
# Free text, letters and documents: beyond the detailed coded record.
FREE_TEXT_TYPES = frozenset(
    {
        "Communication",
        "CommunicationRequest",
        "Composition",
        "DocumentManifest",
        "DocumentReference",
        "Media",
        "QuestionnaireResponse",
    }
)
RELEASED_TYPES = {
    OnlineLevel.NONE: frozenset[str](),
    OnlineLevel.SUMMARY: SUMMARY_TYPES & RECORD_TYPES,
    OnlineLevel.DETAILED: RECORD_TYPES - FREE_TEXT_TYPES,
}
# The date an entry is dated by, for prospective access: the date search parameter of its
# type (when it was recorded where FHIR says, else when it happened). An entry of a type
# not listed, or without that date, is hidden under prospective access (the safe side).
ENTRY_DATE: dict[str, str] = {
    "AdverseEvent": "date",
    "AllergyIntolerance": "date",  # recordedDate
    "CarePlan": "date",
    "ClinicalImpression": "date",
    "Condition": "recorded-date",
    "Communication": "sent",
    "Composition": "date",
    "Consent": "date",
    "DiagnosticReport": "issued",
    "DocumentReference": "date",
    "Encounter": "date",
    "FamilyMemberHistory": "date",
    "Flag": "date",
    "ImagingStudy": "started",
    "Immunization": "date",
    "MedicationAdministration": "effective-time",
    "MedicationDispense": "whenhandedover",
    "MedicationRequest": "authoredon",
    "MedicationStatement": "effective",
    "Observation": "date",
    "Procedure": "date",
    "RiskAssessment": "date",
    "ServiceRequest": "authored",
    "Specimen": "collected",
}


@dataclass(frozen=True, slots=True)
class OnlineRecordAccess:
    """What of their record a patient (or a proxy) sees online: a level, and for prospective
    access the day from which entries are shown (None: the full history)."""

    level: OnlineLevel
    since: date | None = None

    @property
    def released_types(self) -> frozenset[str]:
        return RELEASED_TYPES[self.level]

    def narrowed(self, other: OnlineRecordAccess) -> OnlineRecordAccess:
        """What both allow: the lower level, the later start."""
        level = min(self.level, other.level, key=_RANK.__getitem__)
        starts = [d for d in (self.since, other.since) if d is not None]
        return OnlineRecordAccess(level, max(starts) if starts else None)

    def since_instant(self) -> datetime | None:
        return None if self.since is None else date_range(self.since.isoformat())[0]

    def covers(self, resource_type: str, dated: datetime | None) -> bool:
        """Whether an entry of this type and date is released."""
        if category(resource_type) is not Category.CLINICAL:
            return True
        if resource_type not in self.released_types:
            return False
        start = self.since_instant()
        return start is None or (dated is not None and dated >= start)

    def release(self) -> Release:
        """The same rule as a search restriction (opengp.search.release)."""
        return Release(
            unrestricted=frozenset(CATEGORY_OF),
            released=self.released_types,
            since=self.since_instant(),
            dated_by=tuple(sorted(ENTRY_DATE.items())),
        )


# When the practice has set no default: the detailed coded record, full history (what a
# practice that has not restricted online access shows). A practice sets its own default
# (opengp.access.online_access), and each patient's level replaces it.
BUILT_IN_DEFAULT = OnlineRecordAccess(OnlineLevel.DETAILED)
NO_ONLINE_ACCESS = OnlineRecordAccess(OnlineLevel.NONE)


def entry_date(resource: dict[str, Any]) -> datetime | None:
    """The latest start of the entry's ENTRY_DATE values (as the search index has them:
    a search matches an entry with any value on or after a date)."""
    param = ENTRY_DATE.get(str(resource.get("resourceType")))
    if param is None:
        return None
    lows = [r.low for r in index_rows(resource) if isinstance(r, DateRow) and r.param == param]
    return max(lows, default=None)


def decide(
    principal: Principal,
    request: Request,
    *,
    scopes_allow: ScopeCheck,
    relationship: Relationship,
    now: datetime,
    proxy_patients: frozenset[str] = frozenset(),
    online: OnlineRecordAccess | None = None,
) -> Decision:
    """Whether `principal` may make `request`. `online`: what the practice released online
    to a patient or proxy, for a read of one entry (their searches carry the same rule as
    a search restriction, `OnlineRecordAccess.release`)."""
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
        return _for_patient(principal, request, cat, permission, proxy_patients, online)
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
    online: OnlineRecordAccess | None,
) -> Decision:
    allowed_patients = proxy_patients if principal.kind == "proxy" else {principal.patient_id}
    if request.patient_id is None or request.patient_id not in allowed_patients:
        return Decision(False, "outside the patient's own record")
    if permission not in PATIENT_TABLE.get(cat, ""):
        return Decision(False, f"patients may not {request.interaction} {cat.value} records")
    if is_sensitive(request.security):
        return Decision(False, "withheld from online access")
    if online is not None and not online.covers(request.resource_type, request.dated):
        return Decision(False, "not released to them online")
    return Decision(True, "the patient's own record")
