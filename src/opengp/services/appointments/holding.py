"""The one place where slots change hands.

Every write of an Appointment — booked on a screen, through `/fhir` (POST, PUT, PATCH,
DELETE, inside a transaction Bundle) — passes through `hold_slots` in its own transaction
before the Appointment is saved:

- an appointment *holds* its slots unless it is cancelled or entered in error;
- the slots it comes to hold must be free: each is locked (`tx.serialise("slot:<id>")`,
  then read `FOR UPDATE` on PostgreSQL; SQLite has one writer) and read again inside the
  lock, so two bookings of one slot can never both see it free (docs/clinical-safety.md A1);
  they become busy in the same transaction as the Appointment;
- the slots it stops holding (cancelled, entered in error, moved, deleted) become free again
  (A2), unless blocked meanwhile;
- slots booked together are adjacent in one Schedule, and the appointment's start and end
  are theirs (GP Connect "Booking multiple adjacent slots");
- the appointment names exactly one patient, who exists;
- a patient or proxy books only what the practice opened to them online, and cancels or
  moves only before the practice's cut-off (A3, A4).

Locks are taken in id order, so two moves in opposite directions cannot deadlock.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.datetimes import instant
from opengp.fhir.errors import Conflict, Forbidden, Unprocessable
from opengp.search.query import parse_query
from opengp.services.appointments import online, times
from opengp.services.appointments.codes import RELEASING_STATUSES, holds_slots, reference_id
from opengp.store import ReadTransaction, StoredResource, WriteTransaction


def slot_ids(appointment: dict[str, Any] | None) -> list[str]:
    if appointment is None:
        return []
    ids = (reference_id(ref, "Slot") for ref in appointment.get("slot") or ())
    return list(dict.fromkeys(i for i in ids if i))


def held(appointment: dict[str, Any] | None) -> set[str]:
    return set(slot_ids(appointment)) if holds_slots(appointment) else set()


def patient_of(appointment: dict[str, Any]) -> str | None:
    """The one patient among the participants (None when there is not exactly one)."""
    found = [
        i
        for p in appointment.get("participant") or ()
        if (i := reference_id(p.get("actor"), "Patient"))
    ]
    return found[0] if len(set(found)) == 1 else None


def hold_slots(
    tx: WriteTransaction,
    principal: Principal | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    now: datetime,
) -> dict[str, Any] | None:
    """Make the slots agree with an Appointment going from `before` to `after` (None: it
    does not exist); returns `after`, its start, end and created filled in when taking."""
    _check_slot_references(after)
    old, new = held(before), held(after)
    taking, releasing = new - old, old - new
    if online.acts_for_patient(principal):
        _own_only(principal, before, after)
    if not taking and not releasing:
        return after
    for id in sorted(taking | releasing):
        tx.serialise(f"slot:{id}")
    if taking:
        assert after is not None
        after = _take(tx, principal, after, taking, now)
    if releasing:
        assert before is not None
        if online.acts_for_patient(principal):
            slots = [s for _, s in _current(tx, sorted(releasing))]
            online.check_cancellation(tx, before, slots, now)
        _release(tx, before["id"], releasing)
    return after


def _take(
    tx: WriteTransaction,
    principal: Principal | None,
    after: dict[str, Any],
    taking: set[str],
    now: datetime,
) -> dict[str, Any]:
    taken = _current(tx, sorted(taking), for_update=True)
    for _, slot in taken:
        if slot.get("status") != "free":
            raise Conflict(
                f"Slot/{slot['id']} is not free ({slot.get('status')}): it cannot be booked",
                expression=["Appointment.slot"],
            )
    already = [s for _, s in _current(tx, [i for i in slot_ids(after) if i not in taking])]
    slots = sorted([s for _, s in taken] + already, key=lambda s: times.parse(s["start"], ""))
    after = _fitted(after, slots, now)
    _check_patient(tx, after)
    if online.acts_for_patient(principal):
        online.check_booking(tx, patient_of(after), [s for _, s in taken], now)
    for stored, slot in taken:
        tx.save("Slot", slot["id"], dict(slot, status="busy"), method="PUT", previous=stored)
    return after


def _release(tx: WriteTransaction, appointment_id: str, releasing: set[str]) -> None:
    for stored, slot in _current(tx, sorted(releasing), for_update=True, missing_ok=True):
        if slot.get("status") == "busy" and holder(tx, slot["id"], appointment_id) is None:
            tx.save("Slot", slot["id"], dict(slot, status="free"), method="PUT", previous=stored)


def holder(tx: ReadTransaction, slot_id: str, other_than: str | None = None) -> str | None:
    """An appointment (other than `other_than`) that holds the slot, if any."""
    pairs = [("slot", f"Slot/{slot_id}")]
    pairs += [("status:not", status) for status in sorted(RELEASING_STATUSES)]
    ids = tx.find(parse_query("Appointment", pairs, strict=True), limit=2)
    return next((i for i in ids if i != other_than), None)


def _current(
    tx: ReadTransaction, ids: list[str], *, for_update: bool = False, missing_ok: bool = False
) -> list[tuple[StoredResource, dict[str, Any]]]:
    found = []
    for id in ids:
        stored = tx.current("Slot", id, for_update=for_update)
        if stored is None or stored.content is None:
            if missing_ok:
                continue
            raise Unprocessable(
                f"Appointment.slot refers to Slot/{id}, which is not known",
                expression=["Appointment.slot"],
            )
        found.append((stored, jsonio.loads(stored.content)))
    return found


def _fitted(after: dict[str, Any], slots: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Slots of one Schedule, end to end; the appointment spans them exactly."""
    schedules = {reference_id(s.get("schedule"), "Schedule") for s in slots}
    if len(schedules) != 1:
        raise Unprocessable(
            "the slots of one appointment must belong to one Schedule",
            expression=["Appointment.slot"],
        )
    for first, second in itertools.pairwise(slots):
        if times.parse(first["end"], "") != times.parse(second["start"], ""):
            raise Unprocessable(
                "the slots of one appointment must be adjacent (each starting as the last ends)",
                expression=["Appointment.slot"],
            )
    start, end = slots[0]["start"], slots[-1]["end"]
    for element, value in (("start", start), ("end", end)):
        given = after.get(element)
        if given is not None and times.maybe(given) != times.parse(value, ""):
            raise Unprocessable(
                f"Appointment.{element} ({given}) must be that of its slots ({value})",
                expression=[f"Appointment.{element}"],
            )
    return {**after, "start": after.get("start", start), "end": after.get("end", end)} | (
        {} if after.get("created") else {"created": instant(now)}
    )


def _check_slot_references(appointment: dict[str, Any] | None) -> None:
    """Every slot named by its local reference, so none can slip past the rules."""
    for index, ref in enumerate((appointment or {}).get("slot") or ()):
        if reference_id(ref, "Slot") is None:
            raise Unprocessable(
                "an appointment names its slots as references Slot/<id> on this server",
                expression=[f"Appointment.slot[{index}]"],
            )


def _check_patient(tx: ReadTransaction, appointment: dict[str, Any]) -> None:
    patient_id = patient_of(appointment)
    if patient_id is None:
        raise Unprocessable(
            "a booked appointment names exactly one patient among its participants",
            expression=["Appointment.participant"],
        )
    stored = tx.current("Patient", patient_id)
    if stored is None or stored.content is None:
        raise Unprocessable(
            f"Appointment.participant refers to Patient/{patient_id}, which is not known",
            expression=["Appointment.participant.actor"],
        )


def _own_only(
    principal: Principal | None, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """A patient or proxy changes only appointments of the patient they act for."""
    assert principal is not None
    for appointment in (before, after):
        if appointment is not None and patient_of(appointment) != principal.patient_id:
            raise Forbidden("patients may book and change only their own appointments")
