"""The policy decision: the role table, scopes, relationships, break-glass, patients, proxies.

The matrix test is generated from the table itself: every role x category x interaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opengp.access.policy import (
    PERMISSION,
    ROLE_TABLE,
    Category,
    Decision,
    Request,
    decide,
)
from opengp.access.principal import BreakGlass, Principal
from opengp.access.scopes import allows

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
EXAMPLE_TYPE = {
    Category.DEMOGRAPHICS: "Patient",
    Category.APPOINTMENTS: "Appointment",
    Category.CLINICAL: "Observation",
    Category.AUDIT: "AuditEvent",
}
SENSITIVE = frozenset({("http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY")})


def staff(
    *roles: str, scopes: str = "user/*.cruds", glass: tuple[BreakGlass, ...] = ()
) -> Principal:
    return Principal(
        "staff",
        "u1",
        "Dr Test",
        roles=frozenset(roles),
        scopes=frozenset(scopes.split()),
        break_glass=glass,
    )


def run(
    principal: Principal,
    request: Request,
    related: bool = True,
    proxied: frozenset[str] = frozenset(),
) -> Decision:
    return decide(
        principal,
        request,
        scopes_allow=allows,
        relationship=lambda _p, _patient: related,
        now=NOW,
        proxy_patients=proxied,
    )


@pytest.mark.parametrize("role", sorted(ROLE_TABLE))
@pytest.mark.parametrize("cat", list(Category))
@pytest.mark.parametrize("interaction", sorted(PERMISSION))
def test_matrix_follows_the_table(role: str, cat: Category, interaction: str) -> None:
    request = Request(interaction, EXAMPLE_TYPE[cat], patient_id="p1")
    expected = PERMISSION[interaction] in ROLE_TABLE[role].get(cat, "")
    assert run(staff(role), request).allowed is expected


def test_receptionist_books_appointments_but_never_sees_clinical_entries() -> None:
    receptionist = staff("R8009")
    assert run(receptionist, Request("create", "Appointment", "p1"))
    assert run(receptionist, Request("read", "Patient", "p1"))
    refused = run(receptionist, Request("read", "Observation", "p1"))
    assert not refused
    assert "clinical" in refused.reason


def test_scopes_narrow_what_the_role_allows() -> None:
    gp = staff("R8000", scopes="user/Patient.rs")
    assert run(gp, Request("read", "Patient", "p1"))
    assert not run(gp, Request("read", "Observation", "p1"))
    assert not run(gp, Request("update", "Patient", "p1"))


def test_staff_need_a_legitimate_relationship_or_broken_glass() -> None:
    gp = staff("R8000")
    assert not run(gp, Request("read", "Condition", "p1"), related=False)
    glass = (BreakGlass("p1", "unconscious in A&E", NOW + timedelta(minutes=30)),)
    broken = run(staff("R8000", glass=glass), Request("read", "Condition", "p1"), related=False)
    assert broken.allowed
    assert broken.break_glass
    other_patient = run(
        staff("R8000", glass=glass), Request("read", "Condition", "p2"), related=False
    )
    assert not other_patient


def test_break_glass_expires_and_is_for_clinicians_only() -> None:
    expired = (BreakGlass("p1", "reason", NOW - timedelta(seconds=1)),)
    assert not run(staff("R8000", glass=expired), Request("read", "Condition", "p1"), related=False)
    current = (BreakGlass("p1", "reason", NOW + timedelta(minutes=5)),)
    assert not run(staff("R8009", glass=current), Request("read", "Patient", "p1"), related=False)


def patient(scopes: str = "patient/*.cruds") -> Principal:
    return Principal(
        "patient",
        "u2",
        "Jo",
        fhir_user="Patient/p1",
        patient_id="p1",
        scopes=frozenset(scopes.split()),
    )


def test_a_patient_sees_only_their_own_released_record() -> None:
    me = patient()
    assert run(me, Request("read", "Observation", "p1"))
    assert not run(me, Request("read", "Observation", "p2"))
    assert not run(me, Request("read", "Observation", None))
    withheld = run(me, Request("read", "Condition", "p1", security=SENSITIVE))
    assert not withheld
    assert "withheld" in withheld.reason
    assert run(me, Request("create", "Appointment", "p1"))
    assert not run(me, Request("create", "Observation", "p1"))
    assert run(me, Request("search", "AuditEvent", "p1"))  # who opened my record


def test_a_proxy_acts_only_for_the_patients_granted() -> None:
    parent = Principal(
        "proxy",
        "u3",
        "Parent",
        fhir_user="RelatedPerson/r1",
        scopes=frozenset({"patient/*.rs", "patient/Appointment.cruds"}),
    )
    granted = frozenset({"child"})
    assert run(parent, Request("read", "Immunization", "child"), proxied=granted)
    assert run(parent, Request("create", "Appointment", "child"), proxied=granted)
    assert not run(parent, Request("read", "Immunization", "stranger"), proxied=granted)


def test_system_clients_get_what_their_scopes_allow() -> None:
    hospital = Principal(
        "system",
        "c1",
        "Hospital",
        scopes=frozenset({"system/Patient.rs", "system/Observation.rs"}),
        purpose="direct-care",
    )
    assert run(hospital, Request("read", "Observation", "p1"))
    assert not run(hospital, Request("create", "Observation", "p1"))
    assert not run(hospital, Request("read", "MedicationRequest", "p1"))


def test_unknown_interactions_are_refused() -> None:
    assert not run(staff("R8000"), Request("teleport", "Patient", "p1"))


def test_the_documented_table_is_the_one_in_force() -> None:
    from pathlib import Path

    from opengp.access.policy import TABLE

    docs = Path(__file__).resolve().parents[2] / "docs" / "security.md"
    assert TABLE.strip() in docs.read_text(encoding="utf-8")
