"""Plain, typed views of slots, appointments and patients for the screens to present."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from opengp.services.appointments import times
from opengp.services.appointments.codes import (
    category_key,
    channel_key,
    reference_id,
    slot_type_text,
)
from opengp.services.appointments.holding import patient_of, slot_ids

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"


@dataclass(frozen=True, slots=True)
class SlotView:
    id: str
    status: str  # free | busy | busy-unavailable | ...
    start: datetime
    end: datetime
    schedule_id: str | None
    slot_type: str | None  # practice-defined slot type
    category: str | None  # National Slot Type Category key
    channel: str | None  # delivery channel key
    comment: str | None  # e.g. why it is blocked


@dataclass(frozen=True, slots=True)
class AppointmentView:
    id: str
    version: int
    status: str
    start: datetime | None
    end: datetime | None
    patient_id: str | None
    clinician: str | None  # the PractitionerRole's display
    practitioner_role_id: str | None
    location_id: str | None
    slot_ids: tuple[str, ...]
    slot_type: str | None
    category: str | None
    channel: str | None
    created: datetime | None  # when it was booked
    description: str | None
    comment: str | None
    cancellation_reason: str | None
    cancel_online_until: datetime | None = None  # for patients: their cut-off


@dataclass(frozen=True, slots=True)
class PatientSummary:
    id: str
    name: str
    family: str
    birth_date: date | None
    nhs_number: str | None
    gender: str | None
    postcode: str | None


def slot_view(body: dict[str, Any]) -> SlotView:
    return SlotView(
        id=body["id"],
        status=str(body.get("status")),
        start=times.parse(body.get("start"), "Slot.start"),
        end=times.parse(body.get("end"), "Slot.end"),
        schedule_id=reference_id(body.get("schedule"), "Schedule"),
        slot_type=slot_type_text(body),
        category=category_key(body),
        channel=channel_key(body),
        comment=body.get("comment"),
    )


def appointment_view(body: dict[str, Any]) -> AppointmentView:
    participants = [p.get("actor") or {} for p in body.get("participant") or ()]
    role = next((a for a in participants if reference_id(a, "PractitionerRole")), {})
    reason = body.get("cancelationReason") or {}
    reason_text = reason.get("text") or next(
        (c.get("display") or c.get("code") for c in reason.get("coding") or ()), None
    )
    return AppointmentView(
        id=body["id"],
        version=int((body.get("meta") or {}).get("versionId", 0)),
        status=str(body.get("status")),
        start=times.maybe(body.get("start")),
        end=times.maybe(body.get("end")),
        patient_id=patient_of(body),
        clinician=role.get("display"),
        practitioner_role_id=reference_id(role, "PractitionerRole"),
        location_id=next((i for a in participants if (i := reference_id(a, "Location"))), None),
        slot_ids=tuple(slot_ids(body)),
        slot_type=slot_type_text(body),
        category=category_key(body),
        channel=channel_key(body),
        created=times.maybe(body.get("created")),
        description=body.get("description"),
        comment=body.get("comment"),
        cancellation_reason=reason_text,
    )


def patient_summary(body: dict[str, Any]) -> PatientSummary:
    names = body.get("name") or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
    nhs = next(
        (i.get("value") for i in body.get("identifier") or () if i.get("system") == NHS_NUMBER),
        None,
    )
    addresses = body.get("address") or [{}]
    birth = body.get("birthDate")
    return PatientSummary(
        id=body["id"],
        name=text or "(no name)",
        family=str(name.get("family", "")),
        birth_date=date.fromisoformat(birth)
        if isinstance(birth, str) and len(birth) == 10
        else None,
        nhs_number=nhs,
        gender=body.get("gender"),
        postcode=addresses[0].get("postalCode"),
    )
