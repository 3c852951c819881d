"""Reception cancels an appointment: confirmed on its own page, naming the patient (NHS
number, date of birth) and the time, with a reason from the R4 cancellation reasons; then
back to the day list the cancelling started from, or to the patient's appointments."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import see_other
from opengp.api.web.reception_common import (
    DAY_LIST,
    PATIENTS,
    REASONS,
    Person,
    appointment_in_path,
    one_appointment,
    query,
    render,
    today,
    write_for_patient,
)
from opengp.api.web.service_calls import call, parse_day
from opengp.api.web.session import SignedIn
from opengp.fhir.references import is_valid_id
from opengp.services import appointments as booking

MAX_REASON_TEXT = 200


def _day_list_back(fields: dict[str, str], patient: Person) -> str:
    """Back to the day list the action came from, or to the patient's appointments."""
    clinician, day = fields.get("clinician", ""), fields.get("day", "")
    if is_valid_id(clinician) and parse_day(day, today()) is not None and day:
        return f"{DAY_LIST}?{query(clinician=clinician, day=day)}"
    return f"{PATIENTS}/{patient.id}"


async def confirm_cancel(web: Web, request: Request) -> Response:
    found = await appointment_in_path(web, request)
    if isinstance(found, Response):
        return found
    signed, patient, shown = found
    return _cancel_page(signed, patient, shown, dict(request.query_params), {})


def _cancel_page(
    signed: SignedIn,
    patient: Person,
    shown: dict[str, Any],
    fields: dict[str, str],
    errors: dict[str, str],
) -> Response:
    """Are you sure, and why (with `errors`: the form again, 400)."""
    return render(
        "reception_cancel.jinja",
        "Are you sure you want to cancel this appointment?",
        signed,
        back_href=_day_list_back(fields, patient),
        keep_href=_day_list_back(fields, patient),
        patient=patient,
        appointment=shown,
        reasons=REASONS,
        errors=errors,
        clinician=fields.get("clinician", "")[:100],
        day=fields.get("day", "")[:10],
        reason=fields.get("reason", ""),
        reason_text=fields.get("reason_text", ""),
    )


async def cancel(web: Web, request: Request) -> Response:
    async def work(signed: SignedIn, patient: Person, form: dict[str, str]) -> Response:
        appointment_id = request.path_params["appointment"]
        reason, text = form.get("reason", ""), form.get("reason_text", "").strip()
        shown = await one_appointment(web, signed, patient, appointment_id)  # theirs, or 404
        if isinstance(shown, Response):
            return shown
        errors = {}
        if reason not in REASONS:
            errors["reason"] = "Choose why the appointment is cancelled"
        if len(text) > MAX_REASON_TEXT:
            errors["reason_text"] = f"Notes must be {MAX_REASON_TEXT} characters or fewer"
        if errors:
            return _cancel_page(signed, patient, shown, form, errors)
        principal = signed.principal
        done = await call(
            STAFF,
            signed,
            lambda: booking.cancel_appointment(
                web.store, principal, appointment_id, reason=reason, reason_text=text or None
            ),
        )
        if isinstance(done, Response):
            return done
        return see_other(_day_list_back(form, patient))

    return await write_for_patient(web, request, work)
