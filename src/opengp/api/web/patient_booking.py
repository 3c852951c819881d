"""The patient's appointments (C1 Appointments - Citizen): their upcoming and past ones, and
booking and cancelling online, one question per page (NHS.UK service manual).

Booking: the type of appointment (only the types the practice offers online: those of the
free slots `free_slots` gives a patient) -> a time (grouped by day) -> check your answers ->
booked. Cancelling: are you sure, and why -> cancelled. The questions before the last step
are GET forms (nothing changes); the last step is a POST with the session's CSRF token. What
a patient may book and until when they may cancel is the services' to say (services/
appointments/online.py); a refusal is shown as the problem page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from itertools import groupby
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opengp.access.principal import Principal
from opengp.api.web import pages
from opengp.api.web.areas import PATIENT, Web
from opengp.api.web.guard import refused, see_other, signed_in, signed_in_post, web_endpoint
from opengp.api.web.service_calls import call, day_text, time_text, when_text
from opengp.api.web.session import SignedIn
from opengp.services import appointments as booking
from opengp.services.appointments import times
from opengp.services.appointments.slots import MAX_DAYS

BASE = "/patient/appointments"
# What a patient may say when cancelling (R4 appointment-cancellation-reason, the patient's).
REASONS = {
    "pat-cpp": "I cannot make it, or another reason",
    "pat-fb": "I am feeling better",
    "pat-mv": "I have moved away",
}
MAX_REASON_TEXT = 200


@dataclass(frozen=True, slots=True)
class Offer:
    """A free slot, in the words of the page."""

    id: str
    slot_type: str
    day: str
    time: str
    when: str
    clinician: str


def routes(web: Web) -> list[BaseRoute]:
    bind = partial(web_endpoint, web)

    return [
        Route(BASE, bind(appointments)),
        Route(f"{BASE}/book", bind(choose_type)),
        Route(f"{BASE}/book", bind(book), methods=["POST"]),
        Route(f"{BASE}/book/time", bind(choose_time)),
        Route(f"{BASE}/book/check", bind(check_answers)),
        Route(f"{BASE}/{{id}}/booked", bind(booked)),
        Route(f"{BASE}/{{id}}/cancel", bind(confirm_cancel)),
        Route(f"{BASE}/{{id}}/cancel", bind(cancel), methods=["POST"]),
        Route(f"{BASE}/{{id}}/cancelled", bind(cancelled)),
    ]


def _row(view: booking.AppointmentView, now: Any) -> dict[str, Any]:
    until = view.cancel_online_until
    return {
        "id": view.id,
        "when": when_text(view.start),
        "type": view.slot_type or "Appointment",
        "clinician": view.clinician or "",
        "status": view.status,
        "cancellable": view.status == "booked" and until is not None and now <= until,
        "until": when_text(until) if until else "",
    }


async def _patient(web: Web, request: Request) -> SignedIn | Response:
    signed = await signed_in(web, PATIENT, request)
    if isinstance(signed, Response):
        return signed
    if signed.principal.patient_id is None:
        return refused(PATIENT, "Your account is not linked to a patient record.", 403, signed)
    return signed


async def appointments(web: Web, request: Request) -> Response:
    signed = await _patient(web, request)
    if isinstance(signed, Response):
        return signed
    principal = signed.principal
    patient_id = principal.patient_id or ""
    found = await call(
        PATIENT,
        signed,
        lambda: booking.patient_appointments(web.store, principal, patient_id),
    )
    if isinstance(found, Response):
        return found
    now = times.now_utc()
    context = PATIENT.page(
        "Your appointments",
        signed,
        back_href=PATIENT.home,
        upcoming=[_row(a, now) for a in found.upcoming if a.status != "cancelled"],
        past=[_row(a, now) for a in found.past],
        cancelled=[_row(a, now) for a in found.upcoming if a.status == "cancelled"],
    )
    return pages.render("patient_appointments.jinja", context)


def _offers(web: Web, principal: Principal) -> list[Offer]:
    now = times.now_utc()
    found = booking.free_slots(
        web.store, principal, start=now, end=now + timedelta(days=MAX_DAYS), now=now
    )
    return [
        Offer(
            c.slot.id,
            c.slot.slot_type or "Appointment",
            day_text(times.local_day(c.slot.start)),
            time_text(c.slot.start),
            when_text(c.slot.start),
            c.clinician or "",
        )
        for c in found
    ]


async def _offered(web: Web, request: Request) -> tuple[SignedIn, list[Offer]] | Response:
    """The signed-in patient and the times they may book, or the page saying why not."""
    signed = await _patient(web, request)
    if isinstance(signed, Response):
        return signed
    principal = signed.principal
    offers = await call(PATIENT, signed, lambda: _offers(web, principal))
    return offers if isinstance(offers, Response) else (signed, offers)


async def choose_type(web: Web, request: Request) -> Response:
    offered = await _offered(web, request)
    if isinstance(offered, Response):
        return offered
    signed, offers = offered
    types = sorted({o.slot_type for o in offers})
    errors = {"type": "Select the type of appointment"} if request.query_params.get("e") else {}
    context = PATIENT.page(
        "What type of appointment do you need?",
        signed,
        back_href=BASE,
        types=types,
        errors=errors,
    )
    return pages.render("patient_book_type.jinja", context, status=400 if errors else 200)


async def choose_time(web: Web, request: Request) -> Response:
    wanted = request.query_params.get("type", "")
    if not wanted:
        return see_other(f"{BASE}/book?e=1")
    offered = await _offered(web, request)
    if isinstance(offered, Response):
        return offered
    signed, offers = offered
    mine = [o for o in offers if o.slot_type == wanted]
    days = [(day, list(items)) for day, items in groupby(mine, key=lambda o: o.day)]
    errors = {"slot": "Select a time"} if request.query_params.get("e") else {}
    context = PATIENT.page(
        "Choose a time",
        signed,
        back_href=f"{BASE}/book",
        slot_type=wanted,
        days=days,
        errors=errors,
    )
    return pages.render("patient_book_time.jinja", context, status=400 if errors else 200)


async def check_answers(web: Web, request: Request) -> Response:
    slot_id = request.query_params.get("slot", "")
    wanted = request.query_params.get("type", "")
    if not slot_id:
        return see_other(f"{BASE}/book/time?{_query(type=wanted, e='1')}")
    offered = await _offered(web, request)
    if isinstance(offered, Response):
        return offered
    signed, offers = offered
    offer = next((o for o in offers if o.id == slot_id), None)
    if offer is None:
        message = "That time is no longer available. Go back and choose another time."
        return refused(PATIENT, message, 409, signed)
    context = PATIENT.page(
        "Check your appointment before booking",
        signed,
        back_href=f"{BASE}/book/time?{_query(type=offer.slot_type)}",
        offer=offer,
        change_type=f"{BASE}/book",
        change_time=f"{BASE}/book/time?{_query(type=offer.slot_type)}",
    )
    return pages.render("patient_book_check.jinja", context)


async def book(web: Web, request: Request) -> Response:
    posted = await signed_in_post(web, PATIENT, request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    principal = signed.principal
    slot_id = form.get("slot", "")
    if principal.patient_id is None or not slot_id:
        return refused(PATIENT, "Choose a time to book.", 400, signed)
    patient_id = principal.patient_id
    made = await call(
        PATIENT,
        signed,
        lambda: booking.book_appointment(
            web.store, principal, patient_id=patient_id, slot_ids=[slot_id]
        ),
    )
    if isinstance(made, Response):
        return made
    return see_other(f"{BASE}/{made.id}/booked")


async def _one(
    web: Web, signed: SignedIn, appointment_id: str
) -> booking.AppointmentView | Response:
    principal = signed.principal
    patient_id = principal.patient_id or ""
    found = await call(
        PATIENT,
        signed,
        lambda: booking.patient_appointments(web.store, principal, patient_id),
    )
    if isinstance(found, Response):
        return found
    view = next((a for a in (*found.upcoming, *found.past) if a.id == appointment_id), None)
    if view is None:
        return refused(PATIENT, "We could not find that appointment.", 404, signed)
    return view


async def _shown(
    web: Web, request: Request, title: str, template: str, error: str | None = None
) -> Response:
    signed = await _patient(web, request)
    if isinstance(signed, Response):
        return signed
    view = await _one(web, signed, request.path_params["id"])
    if isinstance(view, Response):
        return view
    now = times.now_utc()
    context = PATIENT.page(
        title,
        signed,
        appointment=_row(view, now),
        reasons=REASONS,
        errors=_cancel_errors(error or request.query_params.get("e")),
    )
    status = 400 if context["errors"] else 200
    return pages.render(template, context, status=status)


def _cancel_errors(code: str | None) -> dict[str, str]:
    if code == "reason":
        return {"reason": "Select why you are cancelling"}
    if code == "reason_text":
        return {"reason_text": f"Tell us in {MAX_REASON_TEXT} characters or fewer"}
    return {}


async def booked(web: Web, request: Request) -> Response:
    return await _shown(web, request, "Appointment booked", "patient_booked.jinja")


async def cancelled(web: Web, request: Request) -> Response:
    return await _shown(web, request, "Appointment cancelled", "patient_cancelled.jinja")


async def confirm_cancel(web: Web, request: Request, error: str | None = None) -> Response:
    return await _shown(
        web,
        request,
        "Are you sure you want to cancel this appointment?",
        "patient_cancel.jinja",
        error,
    )


async def cancel(web: Web, request: Request) -> Response:
    posted = await signed_in_post(web, PATIENT, request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    principal = signed.principal
    appointment_id = request.path_params["id"]
    reason = form.get("reason", "")
    text = form.get("reason_text", "").strip()
    if reason not in REASONS:  # the question again, with its error (and its audit entry)
        return await confirm_cancel(web, request, "reason")
    if len(text) > MAX_REASON_TEXT:
        return await confirm_cancel(web, request, "reason_text")
    view = await _one(web, signed, appointment_id)  # theirs, or not found
    if isinstance(view, Response):
        return view
    done = await call(
        PATIENT,
        signed,
        lambda: booking.cancel_appointment(
            web.store, principal, appointment_id, reason=reason, reason_text=text or None
        ),
    )
    if isinstance(done, Response):
        return done
    return see_other(f"{BASE}/{appointment_id}/cancelled")


def _query(**values: str) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in values.items() if v})
