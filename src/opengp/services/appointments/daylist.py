"""The day list: reception marks arrivals and did-not-attends; the clinician calls the
patient in, starts and ends the appointment.

Statuses are R4's (http://hl7.org/fhir/R4/valueset-appointmentstatus.html): arrived;
checked-in ("the encounter may begin": called in); fulfilled; noshow. R4 has no "in
progress" for an Appointment: starting one creates its Encounter (status in-progress,
`Encounter.appointment`), and ending it finishes the Encounter and fulfils the Appointment.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.datetimes import instant
from opengp.fhir.errors import Unprocessable
from opengp.fhir.validation import validate_resource
from opengp.search.query import parse_query
from opengp.services.appointments import recording, times
from opengp.services.appointments.booking import current_appointment, save_appointment
from opengp.services.appointments.codes import HOME_VISIT_CATEGORY, category_key, channel_key
from opengp.services.appointments.holding import patient_of
from opengp.services.appointments.views import AppointmentView
from opengp.store import ResourceStore, StoredResource, WriteTransaction
from opengp.terminology import concept

# change -> (statuses it may follow, the status it sets)
CHANGES: dict[str, tuple[frozenset[str], str]] = {
    "arrived": (frozenset({"booked"}), "arrived"),
    "did-not-attend": (frozenset({"booked", "arrived"}), "noshow"),
    "called-in": (frozenset({"booked", "arrived"}), "checked-in"),
    "started": (frozenset({"booked", "arrived", "checked-in"}), "checked-in"),
    "ended": (frozenset({"booked", "arrived", "checked-in"}), "fulfilled"),
    "undo": (frozenset({"arrived", "noshow", "checked-in"}), "booked"),
}
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CLASSES = {
    "home": ({"system": _ACT_CODE, "code": "HH", "display": "home health"}, "home_visit"),
    "channel_in_person": (
        {"system": _ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "consultation_face_to_face",
    ),
    "channel_telephone": (
        {"system": _ACT_CODE, "code": "VR", "display": "virtual"},
        "telephone_consultation",
    ),
    "channel_video": (
        {"system": _ACT_CODE, "code": "VR", "display": "virtual"},
        "video_consultation",
    ),
}


def mark_arrived(
    store: ResourceStore, principal: Principal, appointment_id: str, *, now: datetime | None = None
) -> AppointmentView:
    return change_status(store, principal, appointment_id, "arrived", now=now)


def mark_did_not_attend(
    store: ResourceStore, principal: Principal, appointment_id: str, *, now: datetime | None = None
) -> AppointmentView:
    return change_status(store, principal, appointment_id, "did-not-attend", now=now)


def call_in(
    store: ResourceStore, principal: Principal, appointment_id: str, *, now: datetime | None = None
) -> AppointmentView:
    return change_status(store, principal, appointment_id, "called-in", now=now)


def start_appointment(
    store: ResourceStore, principal: Principal, appointment_id: str, *, now: datetime | None = None
) -> AppointmentView:
    return change_status(store, principal, appointment_id, "started", now=now)


def end_appointment(
    store: ResourceStore, principal: Principal, appointment_id: str, *, now: datetime | None = None
) -> AppointmentView:
    return change_status(store, principal, appointment_id, "ended", now=now)


def change_status(
    store: ResourceStore,
    principal: Principal,
    appointment_id: str,
    change: str,
    *,
    now: datetime | None = None,
) -> AppointmentView:
    """One step of the day list (`CHANGES`); 422 when it does not follow from the status."""
    if change not in CHANGES:
        raise Unprocessable(f"{change!r} is not one of {', '.join(CHANGES)}")
    after_statuses, status = CHANGES[change]
    moment = now or times.now_utc()

    def work(tx: WriteTransaction) -> AppointmentView:
        before = current_appointment(tx, appointment_id)
        if before.get("status") not in after_statuses:
            raise Unprocessable(
                f"a {before.get('status')} appointment cannot be marked {change}",
                expression=["Appointment.status"],
            )
        start = times.maybe(before.get("start"))
        if change == "did-not-attend" and (start is None or moment < start):
            raise Unprocessable(
                "a patient cannot miss an appointment that has not yet begun",
                expression=["Appointment.status"],
            )
        if change in ("started", "ended"):
            _encounter(tx, principal, before, moment, finished=change == "ended")
        after = dict(before, status=status)
        return save_appointment(
            tx, principal, before, after, now=moment, use_case=f"appointment-{change}"
        )

    return recording.writing(store, principal, "Appointment", work)


def encounter_of(tx: WriteTransaction, appointment_id: str) -> StoredResource | None:
    pairs = [("appointment", f"Appointment/{appointment_id}")]
    ids = tx.find(parse_query("Encounter", pairs, strict=True), limit=1)
    return tx.current("Encounter", ids[0], for_update=True) if ids else None


def _encounter(
    tx: WriteTransaction,
    principal: Principal,
    appointment: dict[str, Any],
    now: datetime,
    *,
    finished: bool,
) -> None:
    """Start the appointment's Encounter, or finish it (starting it first if need be)."""
    interaction: Literal["create", "update"]
    patient_id = patient_of(appointment)
    previous = encounter_of(tx, appointment["id"])
    if previous is not None and previous.content is not None:
        body = jsonio.loads(previous.content)
        if not finished:
            return  # already started
        body["status"] = "finished"
        body["period"] = dict(body.get("period") or {}, end=instant(now))
        interaction = "update"
    else:
        body = _new_encounter(appointment, patient_id, now)
        if finished:
            body["status"] = "finished"
            body["period"]["end"] = instant(now)
        interaction = "create"
    recording.authorise(tx, principal, interaction, "Encounter", patient_id)
    body.pop("meta", None)
    validate_resource(body)
    stored = tx.save(
        "Encounter", body["id"], body, method="PUT" if previous else "POST", previous=previous
    )
    recording.recorded(
        tx, principal, interaction, stored, patient_id=patient_id, use_case="appointment-encounter"
    )


def _new_encounter(
    appointment: dict[str, Any], patient_id: str | None, now: datetime
) -> dict[str, Any]:
    mode = "home" if category_key(appointment) == HOME_VISIT_CATEGORY else channel_key(appointment)
    encounter_class, kind = _CLASSES.get(mode or "", _CLASSES["channel_in_person"])
    participants = [
        {"individual": dict(p["actor"])}
        for p in appointment.get("participant") or ()
        if str((p.get("actor") or {}).get("reference", "")).startswith("PractitionerRole/")
    ]
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": str(uuid.uuid4()),
        "status": "in-progress",
        "class": encounter_class,
        "type": [concept(kind).codeable()],
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": participants,
        "appointment": [{"reference": f"Appointment/{appointment['id']}"}],
        "period": {"start": instant(now)},
    }
    if appointment.get("serviceType"):
        body["serviceType"] = appointment["serviceType"][0]
    return body
