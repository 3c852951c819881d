"""Booking, amending, cancelling and rebooking appointments (reception, clinicians, patients
and proxies alike; what each may do is the policy's and `online`'s to say).

Every change goes through `save_appointment`, which runs `holding.hold_slots` — the one place
slots change hands — then validates and saves the Appointment in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import NotFound, Unprocessable
from opengp.fhir.validation import validate_resource
from opengp.services.appointments import recording, times
from opengp.services.appointments.codes import (
    CANCELLATION_SYSTEM,
    DELIVERY_CHANNEL_URL,
    HOME_VISIT_CATEGORY,
    category_key,
    reference_id,
)
from opengp.services.appointments.holding import hold_slots, patient_of
from opengp.services.appointments.online import acts_for_patient
from opengp.services.appointments.reads import live_resource
from opengp.services.appointments.views import AppointmentView, appointment_view
from opengp.store import ResourceStore, WriteConflict, WriteTransaction

APPOINTMENT_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Appointment"
# http://hl7.org/fhir/R4/codesystem-appointment-cancellation-reason.html (those a GP
# practice uses), for pick lists; "pat-cpp" is what a patient's own online cancellation is.
CANCELLATION_REASONS = {
    "pat": "Patient",
    "pat-crs": "Patient: Canceled via automated reminder system",
    "pat-cpp": "Patient: Canceled via Patient Portal",
    "pat-dec": "Patient: Deceased",
    "pat-fb": "Patient: Feeling Better",
    "pat-mv": "Patient: Moved",
    "prov": "Provider",
    "prov-pers": "Provider: Personal",
    "oth-err": "Other: Error",
}
ONLINE_CANCELLATION = "pat-cpp"
CANCELLABLE = frozenset({"proposed", "pending", "booked", "arrived", "checked-in", "waitlist"})


def save_appointment(
    tx: WriteTransaction,
    principal: Principal,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    *,
    now: datetime,
    use_case: str,
) -> AppointmentView:
    """Authorise, hold the slots, validate and save one Appointment, with its Provenance and
    audit entry."""
    interaction: Literal["create", "update"] = "create" if before is None else "update"
    patient_id = patient_of(after)
    recording.authorise(tx, principal, interaction, "Appointment", patient_id)
    previous = None
    if before is not None:
        previous = tx.current("Appointment", before["id"], for_update=True)
        if previous is None or previous.version_id != int(before["meta"]["versionId"]):
            raise WriteConflict(f"Appointment/{before['id']} was changed meanwhile")
    fitted = hold_slots(tx, principal, before, after, now=now)
    assert fitted is not None
    body = {k: v for k, v in fitted.items() if k != "meta"} | {"meta": _meta(fitted)}
    validate_resource(body)
    stored = tx.save(
        "Appointment", body["id"], body, method="PUT" if previous else "POST", previous=previous
    )
    recording.recorded(tx, principal, interaction, stored, patient_id=patient_id, use_case=use_case)
    return appointment_view(jsonio.loads(stored.content or b"{}"))


def current_appointment(tx: WriteTransaction, appointment_id: str) -> dict[str, Any]:
    stored = tx.current("Appointment", appointment_id, for_update=True)
    if stored is None or stored.content is None:
        raise NotFound(f"Appointment/{appointment_id} is not known")
    body: dict[str, Any] = jsonio.loads(stored.content)
    return body


def book_appointment(
    store: ResourceStore,
    principal: Principal,
    *,
    patient_id: str,
    slot_ids: Sequence[str],
    description: str | None = None,
    comment: str | None = None,
    now: datetime | None = None,
) -> AppointmentView:
    """Book free slot(s) (adjacent, of one book) for a patient: the slots become busy and the
    Appointment is created together, or neither (409 if a slot is no longer free)."""
    moment = now or times.now_utc()

    def work(tx: WriteTransaction) -> AppointmentView:
        body = _new_booking(tx, patient_id, slot_ids, description, comment)
        return save_appointment(tx, principal, None, body, now=moment, use_case="book-appointment")

    return recording.writing(store, principal, "Appointment", work, action="create")


def amend_appointment(
    store: ResourceStore,
    principal: Principal,
    appointment_id: str,
    *,
    description: str | None = None,
    comment: str | None = None,
    move_to: Sequence[str] | None = None,
    now: datetime | None = None,
) -> AppointmentView:
    """Change the description or comment, and/or move to other free slot(s): the old slots
    are released and the new ones taken in one transaction (or nothing changes)."""
    moment = now or times.now_utc()

    def work(tx: WriteTransaction) -> AppointmentView:
        before = current_appointment(tx, appointment_id)
        after = dict(before)
        for element, value in (("description", description), ("comment", comment)):
            if value is not None:
                if value:
                    after[element] = value
                else:
                    after.pop(element, None)
        if move_to is not None:
            if not move_to:
                raise Unprocessable("choose a slot to move to", expression=["Appointment.slot"])
            if before.get("status") != "booked":
                raise Unprocessable(
                    f"only a booked appointment can be moved (this one is {before.get('status')})",
                    expression=["Appointment.status"],
                )
            after["slot"] = [{"reference": f"Slot/{id}"} for id in move_to]
            for element in ("start", "end"):
                after.pop(element, None)
            after = _from_slot(tx, after, live_resource(tx, "Slot", move_to[0]))
        return save_appointment(
            tx, principal, before, after, now=moment, use_case="amend-appointment"
        )

    return recording.writing(store, principal, "Appointment", work)


def cancel_appointment(
    store: ResourceStore,
    principal: Principal,
    appointment_id: str,
    *,
    reason: str | None = None,
    reason_text: str | None = None,
    now: datetime | None = None,
) -> AppointmentView:
    """Cancel with a reason (`CANCELLATION_REASONS`; patients' own default to "pat-cpp"): the
    slots are freed. Patients and proxies only before the practice's cut-off."""
    moment = now or times.now_utc()
    code = _reason(principal, reason)

    def work(tx: WriteTransaction) -> AppointmentView:
        before = current_appointment(tx, appointment_id)
        after = _cancelled(before, code, reason_text)
        return save_appointment(
            tx, principal, before, after, now=moment, use_case="cancel-appointment"
        )

    return recording.writing(store, principal, "Appointment", work)


def rebook_appointment(
    store: ResourceStore,
    principal: Principal,
    appointment_id: str,
    *,
    slot_ids: Sequence[str],
    reason: str,
    reason_text: str | None = None,
    now: datetime | None = None,
) -> tuple[AppointmentView, AppointmentView]:
    """Cancel an appointment and book the same patient into other slot(s), atomically:
    (the cancelled one, the new one)."""
    moment = now or times.now_utc()
    code = _reason(principal, reason)

    def work(tx: WriteTransaction) -> tuple[AppointmentView, AppointmentView]:
        before = current_appointment(tx, appointment_id)
        after = _cancelled(before, code, reason_text)
        cancelled = save_appointment(
            tx, principal, before, after, now=moment, use_case="rebook-appointment"
        )
        patient_id = patient_of(before)
        if patient_id is None:
            raise Unprocessable("the appointment names no patient to rebook")
        body = _new_booking(
            tx, patient_id, slot_ids, before.get("description"), before.get("comment")
        )
        booked = save_appointment(
            tx, principal, None, body, now=moment, use_case="rebook-appointment"
        )
        return cancelled, booked

    return recording.writing(store, principal, "Appointment", work)


def _reason(principal: Principal, reason: str | None) -> str:
    """The cancellation reason code; a patient's or proxy's own is always a patient's."""
    if acts_for_patient(principal) and not (reason or "").startswith("pat"):
        reason = ONLINE_CANCELLATION
    if reason is None or reason not in CANCELLATION_REASONS:
        choices = ", ".join(CANCELLATION_REASONS)
        raise Unprocessable(
            f"give a cancellation reason, one of {choices}",
            expression=["Appointment.cancelationReason"],
        )
    return reason


def _cancelled(before: dict[str, Any], code: str, text: str | None) -> dict[str, Any]:
    if before.get("status") not in CANCELLABLE:
        raise Unprocessable(
            f"a {before.get('status')} appointment cannot be cancelled",
            expression=["Appointment.status"],
        )
    coding = {"system": CANCELLATION_SYSTEM, "code": code, "display": CANCELLATION_REASONS[code]}
    cancellation: dict[str, Any] = {"coding": [coding]}
    if text:
        cancellation["text"] = text
    return dict(before, status="cancelled", cancelationReason=cancellation)


def _new_booking(
    tx: WriteTransaction,
    patient_id: str,
    slot_ids: Sequence[str],
    description: str | None,
    comment: str | None,
) -> dict[str, Any]:
    if not slot_ids:
        raise Unprocessable("choose a slot to book", expression=["Appointment.slot"])
    body: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(uuid.uuid4()),
        "status": "booked",
        "slot": [{"reference": f"Slot/{id}"} for id in slot_ids],
        "participant": [_patient(patient_id)],
    }
    body |= {k: v for k, v in (("description", description), ("comment", comment)) if v}
    return _from_slot(tx, body, live_resource(tx, "Slot", slot_ids[0]))


def _patient(patient_id: str) -> dict[str, Any]:
    return {
        "actor": {"reference": f"Patient/{patient_id}"},
        "required": "required",
        "status": "accepted",
    }


def _from_slot(tx: WriteTransaction, body: dict[str, Any], slot: dict[str, Any]) -> dict[str, Any]:
    """What an appointment copies from its (first) slot and that slot's Schedule: the National
    Slot Type Category, the practice slot type, the delivery channel, the clinician and the
    place (none for a home visit), as the synthetic practice's appointments do."""
    channel = [e for e in slot.get("extension") or () if e.get("url") == DELIVERY_CHANNEL_URL]
    others = [e for e in body.get("extension") or () if e.get("url") != DELIVERY_CHANNEL_URL]
    patient = [p for p in body.get("participant") or () if reference_id(p.get("actor"), "Patient")]
    schedule_id = reference_id(slot.get("schedule"), "Schedule")
    if schedule_id is None:
        raise NotFound(f"Slot/{slot['id']} belongs to no Schedule")
    schedule = live_resource(tx, "Schedule", schedule_id)
    staff = []
    for actor in schedule.get("actor") or ():
        if reference_id(actor, "PractitionerRole") or (
            reference_id(actor, "Location") and category_key(slot) != HOME_VISIT_CATEGORY
        ):
            staff.append({"actor": dict(actor), "required": "required", "status": "accepted"})
    changed = {k: v for k, v in body.items() if k not in ("extension", "participant")}
    if others or channel:
        changed["extension"] = others + channel
    for element in ("serviceCategory", "serviceType"):
        if slot.get(element):
            changed[element] = slot[element]
        else:
            changed.pop(element, None)
    changed["participant"] = patient + staff
    return changed


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")
    }
    meta.setdefault("profile", [APPOINTMENT_PROFILE])
    return meta
