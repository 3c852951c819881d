"""Finding a patient (by name, date of birth, NHS number or postcode) and their appointments
page: who they are, their alerts, their upcoming and past appointments."""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web.areas import STAFF, Web
from opengp.api.web.reception_common import (
    PATIENTS,
    appointment_row,
    person,
    read_patients,
    render,
    staff_member,
    the_patient,
    valid_postcode,
)
from opengp.api.web.service_calls import call
from opengp.fhir.nhs_number import is_valid_nhs_number
from opengp.services import appointments as booking
from opengp.services.appointments import times

FIELDS = ("name", "nhs_number", "postcode", "dob-day", "dob-month", "dob-year")
MAX_NAME = 100
RESULTS = 20


def _birth_date(day: str, month: str, year: str, errors: dict[str, str]) -> date | None:
    """The date of birth from the NHS.UK date input's three boxes (all empty: none given)."""
    if not (day or month or year):
        return None
    if not (day and month and year):
        errors["dob-day"] = "Date of birth must include a day, month and year"
        return None
    if not all(part.isascii() and part.isdigit() for part in (day, month, year)):
        errors["dob-day"] = "Date of birth must be a real date, in numbers, like 1 5 1970"
        return None
    if len(year) != 4:
        errors["dob-day"] = "Year of birth must have 4 numbers, like 1970"
        return None
    try:
        born = date(int(year), int(month), int(day))
    except ValueError:
        errors["dob-day"] = "Date of birth must be a real date, like 1 5 1970"
        return None
    if born > times.local_day(times.now_utc()):
        errors["dob-day"] = "Date of birth must be today or in the past"
        return None
    return born


def _criteria(asked: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """What to search by, and what is wrong with what was typed (field id -> message)."""
    errors: dict[str, str] = {}
    name = " ".join(asked["name"].split())
    if len(name) > MAX_NAME:
        errors["name"] = f"Name must be {MAX_NAME} characters or fewer"
    digits = "".join(asked["nhs_number"].replace("-", " ").split())
    if digits and not (digits.isascii() and digits.isdigit() and len(digits) == 10):
        errors["nhs_number"] = "NHS number must be 10 numbers, like 943 476 5919"
    elif digits and not is_valid_nhs_number(digits):
        errors["nhs_number"] = (
            "That is not a valid NHS number: the last number (the check digit) does not "
            "match the others. Check it and type it again"
        )
    born = _birth_date(asked["dob-day"], asked["dob-month"], asked["dob-year"], errors)
    postcode = " ".join(asked["postcode"].split()).upper()
    if postcode and not valid_postcode(postcode):
        errors["postcode"] = "Postcode must be letters and numbers only, like ZX1 1AA"
    found_any = name or digits or postcode or born or "dob-day" in errors
    if not errors and not found_any:
        errors["name"] = "Enter a name, date of birth, NHS number or postcode"
    chosen = {"name": name, "nhs_number": digits, "birth_date": born, "postcode": postcode}
    return chosen, errors


async def find_patient(web: Web, request: Request) -> Response:
    signed = await staff_member(web, request)
    if isinstance(signed, Response):
        return signed
    asked = {f: request.query_params.get(f, "").strip()[:200] for f in FIELDS}
    page: dict[str, Any] = {"asked": asked, "back_href": STAFF.home, "searched": False}
    if not any(f in request.query_params for f in FIELDS):
        return render("reception_find.jinja", "Find a patient", signed, **page)
    chosen, errors = _criteria(asked)
    if errors:
        return render("reception_find.jinja", "Find a patient", signed, errors=errors, **page)
    principal = signed.principal

    def search() -> list[Any]:
        found = booking.find_patients(
            web.store,
            principal,
            name=chosen["name"] or None,
            birth_date=chosen["birth_date"],
            nhs_number=chosen["nhs_number"] or None,
            postcode=chosen["postcode"] or None,
            limit=RESULTS,
        )
        bodies = read_patients(web.store, principal, [p.id for p in found])
        return [person(bodies[p.id], p) for p in found if p.id in bodies]

    results = await call(STAFF, signed, search)
    if isinstance(results, Response):
        return results
    page |= {"searched": True, "results": results, "most": RESULTS}
    return render("reception_find.jinja", "Find a patient", signed, **page)


async def patient_page(web: Web, request: Request) -> Response:
    signed = await staff_member(web, request)
    if isinstance(signed, Response):
        return signed
    patient_id = request.path_params["patient"]
    patient = await the_patient(web, signed, patient_id)
    if isinstance(patient, Response):
        return patient
    principal = signed.principal

    def work() -> tuple[list[booking.Alert], booking.PatientAppointments]:
        alerts = booking.patient_alerts(web.store, principal, patient_id)
        return alerts, booking.patient_appointments(web.store, principal, patient_id)

    found = await call(STAFF, signed, work)
    if isinstance(found, Response):
        return found
    alerts, appointments = found
    return render(
        "reception_patient.jinja",
        patient.name,
        signed,
        back_href=PATIENTS,
        patient=patient,
        alerts=alerts,
        upcoming=[appointment_row(a) for a in appointments.upcoming],
        past=[appointment_row(a) for a in appointments.past],
        book_href=f"{PATIENTS}/{patient_id}/book",
    )
