"""A tiny practice for the appointment tests: one GP with a rota at one site, a nurse at
another practice, patients, and the principals who act on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from opengp.access.principal import Principal
from opengp.services import appointments as booking
from opengp.services.appointments import Session
from opengp.store import ResourceStore

ORG = "practice-1"
OTHER_ORG = "practice-2"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
# A Monday in winter (UK time is UTC), at 08:00.
MONDAY = date(2030, 1, 7)
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)

ROUTINE = Session(
    days=("mon", "tue", "wed", "thu", "fri"),
    start=time(9, 0),
    end=time(10, 0),
    slot_minutes=15,
    slot_type="Routine GP appointment",
    category="slot_general_consultation_routine",
    channel="channel_in_person",
    online_days_ahead=14,
    name="GP surgery",
)
TRIAGE = Session(
    days=("mon", "wed"),
    start=time(14, 0),
    end=time(14, 30),
    slot_minutes=10,
    slot_type="Duty doctor telephone triage",
    category="slot_clinical_triage",
    channel="channel_telephone",
    name="Triage",
)


def resources() -> list[dict[str, Any]]:
    def org(id: str, ods: str) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "id": id,
            "identifier": [
                {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}
            ],
            "name": f"Practice {ods}",
        }

    return [
        org(ORG, "Y00001"),
        org(OTHER_ORG, "Y00002"),
        {"resourceType": "Location", "id": "site-1", "name": "Main surgery",
         "managingOrganization": {"reference": f"Organization/{ORG}"}},
        {"resourceType": "Location", "id": "site-2", "name": "Elsewhere",
         "managingOrganization": {"reference": f"Organization/{OTHER_ORG}"}},
        {"resourceType": "HealthcareService", "id": "gp-service", "name": "GP appointments",
         "providedBy": {"reference": f"Organization/{ORG}"}},
        {"resourceType": "Practitioner", "id": "dr-a",
         "name": [{"family": "Able", "prefix": ["Dr"]}]},
        {"resourceType": "PractitionerRole", "id": "role-gp",
         "practitioner": {"reference": "Practitioner/dr-a", "display": "Dr A Able"},
         "organization": {"reference": f"Organization/{ORG}"}},
        {"resourceType": "PractitionerRole", "id": "role-other",
         "practitioner": {"reference": "Practitioner/dr-a", "display": "Dr A Able"},
         "organization": {"reference": f"Organization/{OTHER_ORG}"}},
        patient("pat-1", "9434765919", "Smith", "Jo", "1970-05-01"),
        patient("pat-2", "9434765870", "Jones", "Sam", "1985-11-30"),
        patient("child-1", "9990000026", "Smith", "Kit", "2020-02-02"),
    ]  # fmt: skip


def patient(id: str, nhs: str, family: str, given: str, born: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": id,
        "identifier": [{"system": NHS, "value": nhs}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": born,
        "address": [{"postalCode": "ZX1 1AA"}],
        "managingOrganization": {"reference": f"Organization/{ORG}"},
    }


def staff(roles: str, id: str = "staff-1", role: str | None = None) -> Principal:
    return Principal(
        "staff",
        id,
        f"staff {roles}",
        fhir_user="Practitioner/dr-a",
        practitioner_role=f"PractitionerRole/{role}" if role else None,
        organization_id=ORG,
        roles=frozenset(roles.split()),
        scopes=frozenset({"user/*.cruds"}),
    )


RECEPTION = staff("R8009", "reception-1")
ADMIN = staff("R8008", "manager-1")
GP = staff("R8000", "gp-1", "role-gp")
PATIENT = Principal(
    "patient",
    "pat-account",
    "Jo Smith",
    fhir_user="Patient/pat-1",
    patient_id="pat-1",
    scopes=frozenset({"patient/*.cruds"}),
)
PARENT = Principal(
    "proxy",
    "parent-account",
    "Jo Smith (parent)",
    fhir_user="RelatedPerson/parent-1",
    patient_id="child-1",
    scopes=frozenset({"patient/*.cruds"}),
)


@dataclass(frozen=True)
class Practice:
    schedule_id: str


def seed(store: ResourceStore, *, weeks: int = 2, now: datetime = NOW) -> Practice:
    """The practice, a GP's book with ROUTINE and TRIAGE sessions, slots `weeks` ahead."""
    with store.writing() as tx:
        tx.create_many(resources())
    book = booking.create_schedule(
        store,
        ADMIN,
        practitioner_role_id="role-gp",
        location_id="site-1",
        healthcare_service_id="gp-service",
        sessions=(ROUTINE, TRIAGE),
    )
    booking.generate_slots(store, ADMIN, book.id, weeks=weeks, first_day=now.date(), now=now)
    return Practice(book.id)


def slots_on(store: ResourceStore, day: date, status: str = "free") -> list[booking.SlotView]:
    found = booking.day_list(store, ADMIN, day, practitioner_role_id="role-gp").rows
    return [row.slot for row in found if row.slot.status == status]
