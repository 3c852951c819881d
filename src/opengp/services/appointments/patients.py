"""Finding the patient to book for, their alerts, and their past and future appointments."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from opengp.access import policy
from opengp.access.principal import Principal
from opengp.fhir.errors import Forbidden, Unprocessable
from opengp.fhir.nhs_number import is_valid_nhs_number as valid_nhs_number
from opengp.search.query import parse_query
from opengp.services.appointments import online, recording, times
from opengp.services.appointments.holding import slot_ids
from opengp.services.appointments.reads import read_all
from opengp.services.appointments.views import (
    NHS_NUMBER,
    AppointmentView,
    PatientSummary,
    appointment_view,
    patient_summary,
)
from opengp.services.fhir import guard
from opengp.store import ReadTransaction, ResourceStore

# Flag categories (http://terminology.hl7.org/CodeSystem/flag-category) shown to staff who
# may not read clinical records, when booking: what reception needs to know to book safely.
BOOKING_FLAG_CATEGORIES = frozenset({"admin", "behavioral", "safety"})
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
MATCHES = 200  # patients a search reads at most before choosing the first in name order


@dataclass(frozen=True, slots=True)
class PatientAppointments:
    upcoming: tuple[AppointmentView, ...]  # soonest first, cancelled ones included
    past: tuple[AppointmentView, ...]  # latest first


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    text: str
    category: str | None  # flag-category code
    since: str | None


def patient_appointments(
    store: ResourceStore, principal: Principal, patient_id: str, *, now: datetime | None = None
) -> PatientAppointments:
    """One view of a patient's appointments (staff, the patient, or their proxy). For
    patients and proxies, each upcoming one says until when they may cancel it online."""
    moment = now or times.now_utc()

    def work(tx: ReadTransaction) -> PatientAppointments:
        recording.authorise(tx, principal, "search", "Appointment", patient_id)
        query = parse_query("Appointment", [("patient", f"Patient/{patient_id}")], strict=True)
        if online.acts_for_patient(principal):
            # Without what is withheld from them online. (Staff: the relationship with this
            # patient was checked above, so the per-row relationship scope would only cost.)
            query = replace(query, **guard.search_scope(principal, "Appointment"))
        bodies = read_all(tx, "Appointment", tx.find(query, limit=10_000))
        upcoming, past = [], []
        # Sorted here rather than with _sort=date, which costs more in the store (measured).
        for body in sorted(
            bodies, key=lambda b: (times.maybe(b.get("start")) or times.EARLIEST, b["id"])
        ):
            view = appointment_view(body)
            if view.start is not None and view.start >= moment:
                if online.acts_for_patient(principal) and view.status == "booked":
                    slots = list(read_all(tx, "Slot", slot_ids(body)))
                    until = online.cancellation_deadline(tx, body, slots)
                    view = replace(view, cancel_online_until=until)
                upcoming.append(view)
            else:
                past.append(view)
        return PatientAppointments(tuple(upcoming), tuple(reversed(past)))

    return recording.reading(store, principal, "Appointment", work, patient_id=patient_id)


def find_patients(
    store: ResourceStore,
    principal: Principal,
    *,
    name: str | None = None,
    birth_date: date | None = None,
    nhs_number: str | None = None,
    postcode: str | None = None,
    limit: int = 20,
) -> list[PatientSummary]:
    """Reception's patient search: any of name (from the start of any name), date of birth,
    NHS number and postcode; only patients the user has a relationship with."""
    pairs: list[tuple[str, str]] = []
    if nhs_number:
        digits = "".join(nhs_number.split())
        if not valid_nhs_number(digits):
            raise Unprocessable("that is not a valid NHS number", expression=["nhs_number"])
        pairs.append(("identifier", f"{NHS_NUMBER}|{digits}"))
    for word in (name or "").split():
        pairs.append(("name", word))
    if birth_date is not None:
        pairs.append(("birthdate", birth_date.isoformat()))
    if postcode and postcode.strip():
        pairs.append(("address-postalcode", postcode.strip()))
    if not pairs:
        raise Unprocessable("give a name, date of birth, NHS number or postcode")

    def work(tx: ReadTransaction) -> list[PatientSummary]:
        recording.authorise(tx, principal, "search", "Patient")
        query = replace(
            parse_query("Patient", pairs, strict=True), **guard.search_scope(principal, "Patient")
        )
        # The first MATCHES found, in name order: sorting in the store (_sort=family,given)
        # costs seconds at 10,000 patients on SQLite (measured); a user refines a wide search.
        found = [patient_summary(p) for p in read_all(tx, "Patient", tx.find(query, MATCHES))]
        return sorted(found, key=lambda p: (p.family.lower(), p.name.lower(), p.id))[:limit]

    return recording.reading(store, principal, "Patient", work, detail={"view": "find-patient"})


def patient_alerts(store: ResourceStore, principal: Principal, patient_id: str) -> list[Alert]:
    """Active alerts (Flag) to show while booking. Staff who may read clinical records see
    all; those who may only book (reception) see the administrative, behavioural and safety
    ones, which are what booking needs (C5: patient alerts shown when booking)."""
    if principal.kind != "staff":
        raise Forbidden("alerts are shown to practice staff")

    def work(tx: ReadTransaction) -> list[Alert]:
        recording.authorise(tx, principal, "search", "Appointment", patient_id)
        # R4 defines no `status` search parameter for Flag: active ones are picked here.
        query = parse_query("Flag", [("patient", f"Patient/{patient_id}")], strict=True)
        clinical = policy.role_allows(principal.roles, policy.Category.CLINICAL, "s")
        alerts = []
        for flag in read_all(tx, "Flag", tx.find(query, limit=200)):
            codes = {
                c.get("code")
                for concept in flag.get("category") or ()
                for c in concept.get("coding") or ()
                if c.get("system") == FLAG_CATEGORY
            }
            if flag.get("status") != "active":
                continue
            if not clinical and not codes & BOOKING_FLAG_CATEGORIES:
                continue
            code = flag.get("code") or {}
            text = code.get("text") or next(
                (c.get("display") for c in code.get("coding") or ()), ""
            )
            since = (flag.get("period") or {}).get("start")
            alerts.append(
                Alert(flag["id"], str(text or "Alert"), next(iter(sorted(codes)), None), since)
            )
        return alerts

    return recording.reading(store, principal, "Flag", work, patient_id=patient_id)
