"""The day list of a clinician (reception: arrived, did not attend, cancel, rebook) and a
clinician's own ("Your appointments today": call in, start, end). Every change is a POST that
redirects back to the list it came from."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import refused, see_other
from opengp.api.web.reception_common import (
    APPOINTMENTS,
    DAY_LIST,
    MY_DAY,
    PATIENTS,
    STATUS_TEXT,
    day_choices,
    nhs_number_text,
    options,
    query,
    render,
    staff_member,
    staff_post,
    today,
)
from opengp.api.web.service_calls import call, day_text, parse_day, time_text
from opengp.api.web.session import SignedIn
from opengp.fhir.references import is_valid_id
from opengp.services import appointments as booking
from opengp.services.appointments import times

# The changes each list offers (the services decide whether each follows from the status).
RECEPTION_CHANGES = {
    "arrived": booking.mark_arrived,
    "did-not-attend": booking.mark_did_not_attend,
}
CLINICIAN_CHANGES = {
    "called-in": booking.call_in,
    "started": booking.start_appointment,
    "ended": booking.end_appointment,
}
DAYS_SHOWN = 14  # days either side of today in the day pick list
SLOT_TEXT = {"free": "Free", "busy-unavailable": "Not available", "busy-tentative": "Held"}


def _row(row: booking.DayListRow, now: Any) -> dict[str, Any]:
    appointment, patient = row.appointment, row.patient
    status = appointment.status if appointment else row.slot.status
    if appointment is None:
        text = SLOT_TEXT.get(status, status.capitalize())
    elif row.in_consultation:
        text = "In consultation"
    else:
        text = STATUS_TEXT.get(status, status.capitalize())
    started = row.slot.start <= now
    return {
        "time": time_text(row.slot.start),
        "type": row.slot.slot_type or "Appointment",
        "status": status,
        "status_text": text,
        "appointment_id": appointment.id if appointment else "",
        "patient": patient.name if patient else ("Unknown patient" if appointment else ""),
        "patient_id": patient.id if patient else "",
        "nhs_number": nhs_number_text(patient.nhs_number) if patient else "",
        "arrive": status == "booked",
        "dna": status in ("booked", "arrived") and started,
        "move": status == "booked",
        "cancel": status in ("booked", "arrived"),
        "call_in": status in ("booked", "arrived"),
        "start": status == "checked-in" and not row.in_consultation,
        "end": row.in_consultation,
    }


async def _list(
    web: Web, signed: SignedIn, role_id: str, day: date
) -> tuple[list[dict[str, Any]], list[dict[str, str]]] | Response:
    principal = signed.principal
    found = await call(
        STAFF,
        signed,
        lambda: booking.day_list(web.store, principal, day, practitioner_role_id=role_id),
    )
    if isinstance(found, Response):
        return found
    now = times.now_utc()
    cancelled = [
        {
            "time": time_text(a.start),
            "patient": p.name if p else "Unknown patient",
            "reason": a.cancellation_reason or "No reason recorded",
        }
        for a, p in found.cancelled
    ]
    return [_row(r, now) for r in found.rows], cancelled


async def day_list(web: Web, request: Request) -> Response:
    signed = await staff_member(web, request)
    if isinstance(signed, Response):
        return signed
    principal = signed.principal
    books = await call(STAFF, signed, lambda: booking.list_schedules(web.store, principal))
    if isinstance(books, Response):
        return books
    clinicians = {b.practitioner_role_id: b.clinician for b in books if b.practitioner_role_id}
    clinician = request.query_params.get("clinician", "")[:100]
    day = parse_day(request.query_params.get("day"), today())
    errors: dict[str, str] = {}
    if clinician and clinician not in clinicians:
        errors["clinician"] = "Choose a clinician from the list"
    if day is None:
        errors["day"] = "Choose a day from the list"
    rows: list[dict[str, Any]] = []
    cancelled: list[dict[str, str]] = []
    if clinician and day is not None and not errors:
        found = await _list(web, signed, clinician, day)
        if isinstance(found, Response):
            return found
        rows, cancelled = found
    shown = day or today()
    days = day_choices(today() - timedelta(days=DAYS_SHOWN), 2 * DAYS_SHOWN + 1)
    days.setdefault(shown.isoformat(), day_text(shown))
    return render(
        "clinic_day_list.jinja",
        "Day list",
        signed,
        back_href=STAFF.home,
        errors=errors,
        chosen=bool(clinician) and not errors,
        clinician=clinician,
        clinician_name=clinicians.get(clinician, ""),
        day=shown.isoformat(),
        day_text=day_text(shown),
        clinician_items=options(clinicians, clinician, "Choose a clinician"),
        day_items=options(dict(sorted(days.items())), shown.isoformat()),
        rows=rows,
        cancelled=cancelled,
        patients=PATIENTS,
        appointments=APPOINTMENTS,
    )


async def my_day(web: Web, request: Request) -> Response:
    signed = await staff_member(web, request)
    if isinstance(signed, Response):
        return signed
    role = (signed.principal.practitioner_role or "").removeprefix("PractitionerRole/")
    day = parse_day(request.query_params.get("day"), today())
    if day is None:
        return refused(STAFF, "That is not a day. Go back and try again.", 400, signed)
    rows: list[dict[str, Any]] = []
    if role:
        found = await _list(web, signed, role, day)
        if isinstance(found, Response):
            return found
        rows = found[0]
    title = "Your appointments today" if day == today() else f"Your appointments: {day_text(day)}"
    return render(
        "clinic_my_day.jinja",
        title,
        signed,
        back_href=STAFF.home,
        has_book=bool(role),
        rows=[r for r in rows if r["appointment_id"]],
        day=day.isoformat(),
        day_text=day_text(day),
        appointments=APPOINTMENTS,
    )


async def change_status(web: Web, request: Request) -> Response:
    posted = await staff_post(web, request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    appointment_id = request.path_params["appointment"]
    change, mine = form.get("change", ""), form.get("list") == "mine"
    steps = CLINICIAN_CHANGES if mine else RECEPTION_CHANGES
    if change not in steps or not is_valid_id(appointment_id):
        return refused(STAFF, "Choose one of the buttons on the list.", 400, signed)
    day = parse_day(form.get("day"), today())
    clinician = form.get("clinician", "")
    if day is None or not (mine or is_valid_id(clinician)):
        return refused(STAFF, "Go back to the list and try again.", 400, signed)
    principal = signed.principal
    step = steps[change]
    done = await call(STAFF, signed, lambda: step(web.store, principal, appointment_id))
    if isinstance(done, Response):
        return done
    if mine:
        return see_other(f"{MY_DAY}?{query(day=day.isoformat())}")
    return see_other(f"{DAY_LIST}?{query(clinician=clinician, day=day.isoformat())}")
