"""What patients (and proxies) may do for themselves online: book slots the practice has
opened to them, and cancel until the practice's cut-off (docs/clinical-safety.md A3, A4).

Staff are not bound by these rules: they book any free slot and cancel at any time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import Unprocessable
from opengp.services.appointments import times
from opengp.services.appointments.codes import ONLINE_BOOKING_URL, reference_id, slot_type_text
from opengp.services.appointments.settings import (
    PracticeSettings,
    practice_of_schedule,
    settings_of,
)
from opengp.store import ReadTransaction


def acts_for_patient(principal: Principal | None) -> bool:
    return principal is not None and principal.kind in ("patient", "proxy")


def online_days(slot: dict[str, Any]) -> int | None:
    """How many days ahead the slot's session opened it to online booking (None: never)."""
    for extension in slot.get("extension") or ():
        if extension.get("url") == ONLINE_BOOKING_URL:
            value = extension.get("valueUnsignedInt")
            return value if isinstance(value, int) else None
    return None


def refusal(slot: dict[str, Any], settings: PracticeSettings, now: datetime) -> str | None:
    """Why a patient may not book this slot online, or None when they may."""
    start = times.maybe(slot.get("start"))
    if start is None or start <= now:
        return "it has already started"
    if slot.get("status") != "free":
        return "it is not free"
    opens = online_days(slot)
    slot_type = slot_type_text(slot)
    if opens is None or slot_type is None:
        return "it is not offered for online booking"
    if slot_type not in settings.online_slot_types:
        return f'the practice does not offer "{slot_type}" online'
    ahead = (times.local_day(start) - times.local_day(now)).days
    if ahead > min(opens, settings.online_horizon_days):
        return "it is not yet open to online booking"
    return None


def practice_of_slot(tx: ReadTransaction, slot: dict[str, Any]) -> str | None:
    schedule_id = reference_id(slot.get("schedule"), "Schedule")
    schedule = tx.current("Schedule", schedule_id) if schedule_id else None
    if schedule is None or schedule.content is None:
        return None
    return practice_of_schedule(tx, jsonio.loads(schedule.content))


def settings_for_slot(tx: ReadTransaction, slot: dict[str, Any]) -> PracticeSettings:
    return settings_of(tx, practice_of_slot(tx, slot))


def registered_practice(tx: ReadTransaction, patient_id: str | None) -> str | None:
    """The practice a patient is registered with (Patient.managingOrganization)."""
    stored = tx.current("Patient", patient_id) if patient_id else None
    if stored is None or stored.content is None:
        return None
    return reference_id(jsonio.loads(stored.content).get("managingOrganization"), "Organization")


def check_booking(
    tx: ReadTransaction, patient_id: str | None, slots: list[dict[str, Any]], now: datetime
) -> None:
    """Patients book online only at the practice they are registered with, only slots it
    opened to them."""
    registered = registered_practice(tx, patient_id)
    for slot in slots:
        practice = practice_of_slot(tx, slot)
        why = refusal(slot, settings_of(tx, practice), now)
        if why is None and (registered is None or practice != registered):
            why = "it is not at the practice the patient is registered with"
        if why is not None:
            raise Unprocessable(
                f"Slot/{slot['id']} cannot be booked online: {why}; please contact the practice",
                expression=["Appointment.slot"],
            )


def cancellation_deadline(
    tx: ReadTransaction, appointment: dict[str, Any], slots: list[dict[str, Any]]
) -> datetime | None:
    """Until when a patient may cancel online (None: the appointment has no start)."""
    start = times.maybe(appointment.get("start"))
    if start is None:
        return None
    settings = settings_for_slot(tx, slots[0]) if slots else PracticeSettings()
    return start - timedelta(hours=settings.cancellation_cutoff_hours)


def check_cancellation(
    tx: ReadTransaction, appointment: dict[str, Any], slots: list[dict[str, Any]], now: datetime
) -> None:
    deadline = cancellation_deadline(tx, appointment, slots)
    if deadline is None or now > deadline:
        raise Unprocessable(
            "this appointment can no longer be cancelled or changed online "
            "(the practice's cut-off has passed); please contact the practice",
            expression=["Appointment.status"],
        )
