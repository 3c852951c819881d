"""What the practice's appointment screens share: the staff guard, reading a patient's
demographics (through the FHIR read, so the policy, relationship check and audit trail are
the API's), and the words and numbers the pages show."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from opengp.access import policy
from opengp.access.principal import Principal
from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import refused, signed_in, signed_in_post
from opengp.api.web.service_calls import call, day_text, when_text
from opengp.api.web.session import SignedIn
from opengp.fhir.references import is_valid_id
from opengp.services import appointments as booking
from opengp.services.appointments import times
from opengp.services.appointments.views import PatientSummary, patient_summary
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest
from opengp.services.fhir.router import dispatch
from opengp.store import ResourceStore

PATIENTS = "/staff/patients"
DAY_LIST = "/staff/day-list"
MY_DAY = "/staff/your-appointments"
APPOINTMENTS = "/staff/appointments"
NOT_FOUND = "We could not find that patient. Search for them again."
# Reception's cancellation reasons: not the one a patient's own online cancellation records.
REASONS = {k: v for k, v in booking.CANCELLATION_REASONS.items() if k != "pat-cpp"}
STATUS_TEXT = {
    "booked": "Booked",
    "arrived": "Arrived",
    "checked-in": "Called in",
    "fulfilled": "Seen",
    "noshow": "Did not attend",
    "cancelled": "Cancelled",
    "entered-in-error": "Entered in error",
}
CHANNEL_TEXT = {
    "channel_in_person": "In person",
    "channel_telephone": "Telephone",
    "channel_video": "Video",
}
_POSTCODE = re.compile(r"[A-Za-z0-9 ]{1,10}")


@dataclass(frozen=True, slots=True)
class Person:
    """The patient as a receptionist checks them: enough to be sure it is the right one."""

    id: str
    name: str
    born: str  # "1 May 1970", or "Not recorded"
    nhs_number: str  # "943 476 5919", or "Not recorded"
    address: str
    gender: str


def nhs_number_text(value: str | None) -> str:
    """943 476 5919: the 3 3 4 grouping of NHS Digital's style guide."""
    if not value or len(value) != 10:
        return value or "Not recorded"
    return f"{value[:3]} {value[3:6]} {value[6:]}"


def person(body: dict[str, Any], summary: PatientSummary | None = None) -> Person:
    found = summary or patient_summary(body)
    addresses = body.get("address") or [{}]
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0])
    parts = [*home.get("line", []), home.get("city"), home.get("postalCode")]
    born = found.birth_date
    return Person(
        id=found.id,
        name=found.name,
        born=f"{born.day} {born:%B %Y}" if born else "Not recorded",
        nhs_number=nhs_number_text(found.nhs_number),
        address=", ".join(p for p in parts if isinstance(p, str) and p) or "Not recorded",
        gender=(found.gender or "not recorded").capitalize(),
    )


def read_patients(
    store: ResourceStore, principal: Principal, ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The patients of `ids` the user may see, by id: one FHIR search (`_id`), which keeps to
    the patients the user has a relationship with and is audited like any other."""
    wanted = [i for i in dict.fromkeys(ids) if is_valid_id(i)]
    if not wanted:
        return {}
    params = (("_id", ",".join(wanted)), ("_count", str(len(wanted))))
    answer = dispatch(store, FhirRequest("GET", "Patient", params), Context("/fhir", principal))
    bundle = orjson.loads(answer.body or b"{}")
    found = (e.get("resource") or {} for e in bundle.get("entry") or ())
    return {r["id"]: r for r in found if r.get("resourceType") == "Patient"}


async def staff_member(web: Web, request: Request) -> SignedIn | Response:
    return await signed_in(web, STAFF, request)


async def staff_post(web: Web, request: Request) -> tuple[SignedIn, dict[str, str]] | Response:
    return await signed_in_post(web, STAFF, request)


async def the_patient(web: Web, signed: SignedIn, patient_id: str) -> Person | Response:
    """The patient named in the path, or the problem page (not found, or not theirs)."""
    principal = signed.principal
    found = await call(STAFF, signed, lambda: read_patients(web.store, principal, [patient_id]))
    if isinstance(found, Response):
        return found
    if patient_id not in found:
        return refused(STAFF, NOT_FOUND, 404, signed)
    return person(found[patient_id])


def today() -> date:
    """Today in England."""
    return times.local_day(times.now_utc())


def render(
    template: str,
    title: str,
    signed: SignedIn,
    *,
    status: int | None = None,
    **extra: Any,
) -> Response:
    """A staff page; 400 when it shows form errors (unless told otherwise)."""
    context = STAFF.page(title, signed, **extra)
    code = status if status is not None else (400 if context.get("errors") else 200)
    return pages.render(template, context, status=code)


def query(**values: str | None) -> str:
    return urlencode({k: v for k, v in values.items() if v})


def valid_postcode(value: str) -> bool:
    return bool(_POSTCODE.fullmatch(value))


def may(principal: Principal, category: policy.Category, permission: str) -> bool:
    return principal.kind == "staff" and policy.role_allows(principal.roles, category, permission)


def appointment_links(principal: Principal) -> list[dict[str, str]]:
    """The appointment screens this member of staff's roles let them use, for the staff home
    page (the services refuse the rest anyway: this only spares them a dead end)."""
    links = []
    if may(principal, policy.Category.DEMOGRAPHICS, "s") and may(
        principal, policy.Category.APPOINTMENTS, "c"
    ):
        links.append({"href": PATIENTS, "text": "Find a patient and book an appointment"})
    if may(principal, policy.Category.APPOINTMENTS, "u"):
        links.append({"href": DAY_LIST, "text": "Day lists"})
    if principal.practitioner_role and may(principal, policy.Category.CLINICAL, "c"):
        links.append({"href": MY_DAY, "text": "Your appointments today"})
    return links


def day_choices(first: date, days: int) -> dict[str, str]:
    """A day pick list: `days` days from `first`, by ISO date."""
    every = (first + timedelta(days=n) for n in range(days))
    return {day.isoformat(): day_text(day) for day in every}


def options(
    choices: Mapping[str, str], chosen: str | None, blank: str | None = None
) -> list[dict[str, Any]]:
    """Items for the NHS.UK select macro."""
    pairs = [("", blank)] if blank is not None else []
    pairs += list(choices.items())
    return [{"value": k, "text": v, "selected": k == (chosen or "")} for k, v in pairs]


def appointment_row(view: booking.AppointmentView) -> dict[str, Any]:
    return {
        "id": view.id,
        "when": when_text(view.start),
        "type": view.slot_type or "Appointment",
        "clinician": view.clinician or "",
        "status": view.status,
        "status_text": STATUS_TEXT.get(view.status, view.status.capitalize()),
        "reason": view.cancellation_reason or "",
        "live": view.status == "booked",
    }


async def patient_in_path(web: Web, request: Request) -> tuple[SignedIn, Person] | Response:
    """The member of staff, and the patient the path names."""
    signed = await staff_member(web, request)
    if isinstance(signed, Response):
        return signed
    patient = await the_patient(web, signed, request.path_params["patient"])
    if isinstance(patient, Response):
        return patient
    return signed, patient


async def one_appointment(
    web: Web, signed: SignedIn, patient: Person, appointment_id: str
) -> dict[str, Any] | Response:
    """One of the patient's appointments, as the pages show it."""
    principal = signed.principal
    found = await call(
        STAFF, signed, lambda: booking.patient_appointments(web.store, principal, patient.id)
    )
    if isinstance(found, Response):
        return found
    view = next((a for a in (*found.upcoming, *found.past) if a.id == appointment_id), None)
    if view is None:
        return refused(STAFF, "We could not find that appointment.", 404, signed)
    return appointment_row(view)


async def appointment_in_path(
    web: Web, request: Request
) -> tuple[SignedIn, Person, dict[str, Any]] | Response:
    """The member of staff, the patient and the one of their appointments the path names."""
    found = await patient_in_path(web, request)
    if isinstance(found, Response):
        return found
    signed, patient = found
    shown = await one_appointment(web, signed, patient, request.path_params["appointment"])
    if isinstance(shown, Response):
        return shown
    return signed, patient, shown


async def write_for_patient(
    web: Web,
    request: Request,
    work: Callable[[SignedIn, Person, dict[str, str]], Awaitable[Response]],
) -> Response:
    """A checked form post about the patient the path names: `work` does the rest."""
    posted = await staff_post(web, request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    patient = await the_patient(web, signed, request.path_params["patient"])
    if isinstance(patient, Response):
        return patient
    return await work(signed, patient, form)
