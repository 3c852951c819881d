"""Sign-in accounts for the demo practice: a GP, a nurse, a receptionist, the practice
manager, a patient and a parent acting as proxy for a child.

Each gets a random one-time password, shown once when the practice is seeded and changed at
first sign-in; staff also get an authenticator (TOTP) secret. Nothing is fixed: a demo
database copied elsewhere has no password anyone could look up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection

from opengp.access.accounts import CreatedUser, create_user, grant_proxy
from opengp.demo.dates import age_on
from opengp.demo.model import DemoConfig, PatientSummary, Practice
from opengp.demo.people import demographics, patient_summary

# Which staff member of each kind gets an account, and the username it gets.
STAFF_ACCOUNTS = (
    ("gp-partner", "demo.gp", "GP"),
    ("nurse", "demo.nurse", "Practice nurse"),
    ("receptionist", "demo.reception", "Receptionist"),
    ("practice-manager", "demo.manager", "Practice manager"),
)
PROXY_SCOPES = "patient/Patient.rs patient/Appointment.cruds patient/Slot.rs"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    who: str  # "GP: Dr Amira Shah"
    created: CreatedUser


def create_demo_accounts(
    conn: Connection, config: DemoConfig, practice: Practice
) -> list[DemoAccount]:
    """Create the accounts in the caller's transaction (the seed's: all or nothing)."""
    out = []
    for kind, username, label in STAFF_ACCOUNTS:
        member = next(s for s in practice.staff if s.kind == kind)
        created = create_user(
            conn,
            username=username,
            kind="staff",
            display_name=member.name,
            roles=[member.sds_role],
            fhir_user=f"Practitioner/{member.practitioner_id}",
            practitioner_role=f"PractitionerRole/{member.role_id}",
            organization_id=practice.organization_id,
            with_totp=True,
        )
        out.append(DemoAccount(f"{label}: {member.name}", created))
    adult, proxy = patient_and_proxy(config, practice)
    if adult is not None:
        patient_id, name = adult
        created = create_user(
            conn,
            username="demo.patient",
            kind="patient",
            display_name=name,
            fhir_user=f"Patient/{patient_id}",
            with_totp=False,
        )
        out.append(DemoAccount(f"Patient: {name}", created))
    if proxy is not None:
        (child_id, child_name), parent_id, parent_name = proxy
        created = create_user(
            conn,
            username="demo.parent",
            kind="proxy",
            display_name=parent_name,
            fhir_user=f"RelatedPerson/{parent_id}",
            with_totp=False,
        )
        grant_proxy(conn, created.user_id, child_id, PROXY_SCOPES, granted_by="opengp-demo")
        out.append(DemoAccount(f"Parent acting for {child_name}: {parent_name}", created))
    return out


Named = tuple[str, str]  # (id, display name)


def patient_and_proxy(
    config: DemoConfig, practice: Practice
) -> tuple[Named | None, tuple[Named, str, str] | None]:
    """The first living adult patient, and the first child with a parent holding proxy
    access as (child, RelatedPerson id, parent's name); None where a small practice has none."""
    adult: Named | None = None
    for summary, person, proxies in _patients(config, practice):
        age = age_on(summary.birth_date, config.as_of)
        if adult is None and age >= 18 and summary.death_date is None:
            adult = (summary.patient_id, person)
        if proxies and age < 16 and adult is not None:
            parent_id, parent_name = proxies[0]
            return adult, ((summary.patient_id, person), parent_id, parent_name)
    return adult, None


def _patients(
    config: DemoConfig, practice: Practice
) -> Iterator[tuple[PatientSummary, str, list[tuple[str, str]]]]:
    for index in range(config.patients):
        summary = patient_summary(config, index, practice)
        person, resources = demographics(config, practice, summary)
        proxies = [
            (r["id"], " ".join([*r["name"][0].get("given", []), r["name"][0]["family"]]))
            for r in resources
            if r["resourceType"] == "RelatedPerson"
        ]
        yield summary, person.display, proxies
