"""Reception books and moves (rebooks) a patient's appointments.

Booking: choose a free slot (by day, clinician and type) -> check, with the patient's NHS
number and date of birth, that it is the right person -> booked. Rebooking is the same choice,
then a check page with the reason; the old slot is freed in the same transaction
(`rebook_appointment`). A slot taken meanwhile (409 from the service) shows the choice again
with a plain message, never a 500.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import see_other
from opengp.api.web.reception_common import (
    CHANNEL_TEXT,
    PATIENTS,
    REASONS,
    Person,
    appointment_in_path,
    day_choices,
    one_appointment,
    options,
    patient_in_path,
    query,
    render,
    today,
    write_for_patient,
)
from opengp.api.web.service_calls import call, day_text, parse_day, time_text, when_text
from opengp.api.web.session import SignedIn
from opengp.fhir.references import is_valid_id
from opengp.services import appointments as booking
from opengp.services.appointments import times
from opengp.services.appointments.slots import MAX_DAYS

TAKEN = "That time has just been booked by someone else. Choose another time."


def _offer(choice: booking.SlotChoice) -> dict[str, str]:
    slot = choice.slot
    details = [choice.clinician or "", slot.slot_type or "Appointment"]
    details.append(CHANNEL_TEXT.get(slot.channel or "", ""))
    return {
        "id": slot.id,
        "time": time_text(slot.start),
        "when": when_text(slot.start),
        "clinician": choice.clinician or "A member of the practice team",
        "type": slot.slot_type or "Appointment",
        "channel": CHANNEL_TEXT.get(slot.channel or "", "Not recorded"),
        "details": ", ".join(d for d in details if d),
    }


def _filters(request: Request) -> tuple[dict[str, str], dict[str, str], date | None]:
    """The day, clinician and type asked for, what is wrong with them, and the day."""
    asked = {k: request.query_params.get(k, "")[:100] for k in ("day", "clinician", "type")}
    errors: dict[str, str] = {}
    day = parse_day(asked["day"], today())
    if day is None or not (today() <= day < today() + timedelta(days=MAX_DAYS)):
        errors["day"] = "Choose a day from the list"
        day = None
    if asked["clinician"] and not is_valid_id(asked["clinician"]):
        errors["clinician"] = "Choose a clinician from the list"
    return asked, errors, day


async def _choice(
    web: Web,
    signed: SignedIn,
    patient: Person,
    asked: dict[str, str],
    errors: dict[str, str],
    day: date | None,
    *,
    moving: dict[str, Any] | None = None,
    status: int | None = None,
) -> Response:
    """The page to choose a free slot (for a new booking, or to move `moving` to)."""
    principal = signed.principal
    now = times.now_utc()

    def work() -> tuple[list[booking.ScheduleSummary], list[booking.SlotChoice]]:
        books = booking.list_schedules(web.store, principal)
        if day is None or errors:
            return books, []
        chosen = [b.id for b in books if b.practitioner_role_id == asked["clinician"]]
        if asked["clinician"] and not chosen:
            return books, []
        low, high = times.day_bounds(day)
        found = booking.free_slots(
            web.store,
            principal,
            start=max(low, now),
            end=high,
            schedule_ids=chosen,
            slot_type=asked["type"] or None,
            now=now,
        )
        return books, found

    found = await call(STAFF, signed, work)
    if isinstance(found, Response):
        return found
    books, slots = found
    clinicians = {b.practitioner_role_id: b.clinician for b in books if b.practitioner_role_id}
    if asked["clinician"] and asked["clinician"] not in clinicians:
        errors = errors | {"clinician": "Choose a clinician from the list"}
    if status == 409:
        errors = errors | {"slot": TAKEN}
    kinds = sorted({t for b in books for t in b.slot_types} | ({asked["type"]} - {""}))
    base = f"{PATIENTS}/{patient.id}"
    here = f"{base}/appointments/{moving['id']}/rebook" if moving else f"{base}/book"
    return render(
        "reception_book_time.jinja",
        "Choose a new time" if moving else "Choose a time",
        signed,
        status=status,
        back_href=base,
        patient=patient,
        moving=moving,
        action=here,
        check_action=f"{here}/check",
        asked=asked,
        errors=errors,
        day_items=options(day_choices(today(), MAX_DAYS), asked["day"] or today().isoformat()),
        clinician_items=options(clinicians, asked["clinician"], "Any clinician"),
        type_items=options({k: k for k in kinds}, asked["type"], "Any type"),
        day_text=day_text(day) if day else "",
        offers=[_offer(s) for s in slots],
    )


async def _moving(
    web: Web, request: Request, signed: SignedIn, patient: Person
) -> dict[str, Any] | Response | None:
    """The appointment being moved (rebooking), None when booking a new one."""
    if "appointment" not in request.path_params:
        return None
    return await one_appointment(web, signed, patient, request.path_params["appointment"])


async def choose_slot(web: Web, request: Request) -> Response:
    found = await patient_in_path(web, request)
    if isinstance(found, Response):
        return found
    signed, patient = found
    asked, errors, day = _filters(request)
    moving = await _moving(web, request, signed, patient)
    if isinstance(moving, Response):
        return moving
    return await _choice(web, signed, patient, asked, errors, day, moving=moving)


async def _chosen(
    web: Web,
    signed: SignedIn,
    patient: Person,
    fields: dict[str, str],
    moving: dict[str, Any] | None,
) -> dict[str, str] | Response:
    """The free slot chosen on `fields`'s day, or the choice again (with why)."""
    asked = {k: fields.get(k, "")[:100] for k in ("day", "clinician", "type")}
    day = parse_day(asked["day"], today())
    slot_id = fields.get("slot", "")
    if day is None:
        errors = {"day": "Choose a day from the list"}
        return await _choice(web, signed, patient, asked, errors, None, moving=moving)
    if not slot_id:
        errors = {"slot": "Choose a time"}
        return await _choice(web, signed, patient, asked, errors, day, moving=moving)
    principal = signed.principal
    low, high = times.day_bounds(day)
    now = times.now_utc()
    slots = await call(
        STAFF,
        signed,
        lambda: booking.free_slots(web.store, principal, start=max(low, now), end=high, now=now),
    )
    if isinstance(slots, Response):
        return slots
    offer = next((_offer(s) for s in slots if s.slot.id == slot_id), None)
    if offer is None:
        return await _choice(web, signed, patient, asked, {}, day, moving=moving, status=409)
    asked_for = {"clinician_id": asked["clinician"], "type_asked": asked["type"]}
    return offer | asked_for | {"day": day.isoformat()}


async def check_booking(web: Web, request: Request) -> Response:
    found = await patient_in_path(web, request)
    if isinstance(found, Response):
        return found
    signed, patient = found
    moving = await _moving(web, request, signed, patient)
    if isinstance(moving, Response):
        return moving
    return await _check_page(web, signed, patient, dict(request.query_params), moving, {})


async def _check_page(
    web: Web,
    signed: SignedIn,
    patient: Person,
    fields: dict[str, str],
    moving: dict[str, Any] | None,
    errors: dict[str, str],
) -> Response:
    """The check page of the chosen slot (with `errors`: the form again, 400)."""
    offer = await _chosen(web, signed, patient, fields, moving)
    if isinstance(offer, Response):
        return offer
    base = f"{PATIENTS}/{patient.id}"
    here = f"{base}/appointments/{moving['id']}/rebook" if moving else f"{base}/book"
    chosen = query(day=offer["day"], clinician=offer["clinician_id"], type=offer["type_asked"])
    back = f"{here}?{chosen}"
    return render(
        "reception_book_check.jinja",
        "Check the details before moving" if moving else "Check the details before booking",
        signed,
        back_href=back,
        change_href=back,
        patient=patient,
        offer=offer,
        moving=moving,
        action=here,
        reasons=REASONS,
        errors=errors,
    )


async def book(web: Web, request: Request) -> Response:
    async def work(signed: SignedIn, patient: Person, form: dict[str, str]) -> Response:
        offer = await _chosen(web, signed, patient, form, None)
        if isinstance(offer, Response):
            return offer
        principal = signed.principal
        made = await call(
            STAFF,
            signed,
            lambda: booking.book_appointment(
                web.store, principal, patient_id=patient.id, slot_ids=[offer["id"]]
            ),
        )
        if isinstance(made, Response):
            return await _taken_again(web, signed, patient, form, made, None)
        return see_other(f"{PATIENTS}/{patient.id}/appointments/{made.id}/booked")

    return await write_for_patient(web, request, work)


async def _taken_again(
    web: Web,
    signed: SignedIn,
    patient: Person,
    form: dict[str, str],
    refusal: Response,
    moving: dict[str, Any] | None,
) -> Response:
    """A slot someone else took between the check page and now: the choice again."""
    if refusal.status_code != 409:
        return refusal
    asked = {k: form.get(k, "")[:100] for k in ("day", "clinician", "type")}
    day = parse_day(asked["day"], today())
    return await _choice(web, signed, patient, asked, {}, day, moving=moving, status=409)


async def rebook(web: Web, request: Request) -> Response:
    async def work(signed: SignedIn, patient: Person, form: dict[str, str]) -> Response:
        appointment_id = request.path_params["appointment"]
        reason = form.get("reason", "")
        moving = await _moving(web, request, signed, patient)
        if isinstance(moving, Response):
            return moving
        if reason not in REASONS:
            errors = {"reason": "Choose why the appointment is moving"}
            return await _check_page(web, signed, patient, form, moving, errors)
        offer = await _chosen(web, signed, patient, form, moving)
        if isinstance(offer, Response):
            return offer
        principal = signed.principal
        moved = await call(
            STAFF,
            signed,
            lambda: booking.rebook_appointment(
                web.store, principal, appointment_id, slot_ids=[offer["id"]], reason=reason
            ),
        )
        if isinstance(moved, Response):
            return await _taken_again(web, signed, patient, form, moved, moving)
        return see_other(f"{PATIENTS}/{patient.id}/appointments/{moved[1].id}/booked?moved=1")

    return await write_for_patient(web, request, work)


async def booked(web: Web, request: Request) -> Response:
    found = await appointment_in_path(web, request)
    if isinstance(found, Response):
        return found
    signed, patient, shown = found
    moved = request.query_params.get("moved") == "1"
    return render(
        "reception_booked.jinja",
        "Appointment moved" if moved else "Appointment booked",
        signed,
        patient=patient,
        appointment=shown,
        patient_href=f"{PATIENTS}/{patient.id}",
    )
