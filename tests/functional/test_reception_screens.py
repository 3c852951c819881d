"""The practice's appointment screens over HTTP, on both databases: reception finds a patient
(NHS number check digit, dates, nothing found), sees their alerts and appointments, books
(a slot taken meanwhile shows the choice again), cancels with a reason and rebooks; the day
list (arrived, did not attend); the clinician's own list (call in, start, end); and the
wrong role, a forged form or odd input refused, changing nothing, never a 500."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, time, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from opengp.access import accounts
from opengp.services import appointments as booking
from opengp.services.appointments import times
from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import ADMIN, ROUTINE, resources, slots_on
from tests.functional.server import http, settings
from tests.functional.test_appointment_screens import slot_status
from tests.functional.test_web_sessions import code_for, first_sign_in, hidden

# Every day, all day: whenever the tests run there are slots before and after now.
ALL_WEEK = replace(
    ROUTINE,
    days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
    start=time(0, 0),
    end=time(23, 45),
    slot_minutes=15,
)
ALERT = "Uses a wheelchair: book ground floor rooms"

__all__ = ["http", "settings"]  # the fixtures of the screen tests


def seed_practice(store: SqlStore) -> str:
    """The practice of appointment_helpers, with a GP's book open every day from yesterday
    for a week, and an administrative alert (and a clinical one) on Jo Smith's record."""
    with store.writing() as tx:
        tx.create_many(resources() + alerts())
    book = booking.create_schedule(
        store,
        ADMIN,
        practitioner_role_id="role-gp",
        location_id="site-1",
        healthcare_service_id="gp-service",
        sessions=(ALL_WEEK,),
    )
    yesterday = times.local_day(times.now_utc()) - timedelta(days=1)
    start = times.local(yesterday, time(0, 0))
    booking.generate_slots(store, ADMIN, book.id, weeks=1, first_day=yesterday, now=start)
    return book.id


def alerts() -> list[dict[str, Any]]:
    def flag(id: str, category: str, text: str) -> dict[str, Any]:
        system = "http://terminology.hl7.org/CodeSystem/flag-category"
        return {
            "resourceType": "Flag",
            "id": id,
            "status": "active",
            "category": [{"coding": [{"system": system, "code": category}]}],
            "subject": {"reference": "Patient/pat-1"},
            "code": {"text": text},
        }

    return [flag("flag-admin", "admin", ALERT), flag("flag-clinical", "clinical", "Clinical alert")]


def staff_account(
    store: SqlStore, username: str, roles: list[str], role: str | None = None
) -> accounts.CreatedUser:
    with store.writing() as tx:
        return accounts.create_user(
            tx.conn,
            username=username,
            kind="staff",
            display_name=username.replace(".", " ").title(),
            roles=roles,
            fhir_user="Practitioner/dr-a" if role else None,
            practitioner_role=f"PractitionerRole/{role}" if role else None,
            organization_id="practice-1",
            with_totp=True,
        )


def signed_in_as(
    http: TestClient, store: SqlStore, username: str, roles: list[str], role: str | None = None
) -> str:
    """Through the first sign-in; the session's CSRF token."""
    user = staff_account(store, username, roles, role)
    done = first_sign_in(http, "staff", username, user.one_time_password, code_for(store, user))
    assert done.status_code == 303, done.text
    return hidden(http.get("/staff").text, "csrf_token")


@pytest.fixture
def book_id(store: SqlStore) -> str:
    return seed_practice(store)


def appointments_of(store: SqlStore, patient_id: str) -> list[booking.AppointmentView]:
    found = booking.patient_appointments(store, ADMIN, patient_id)
    return [a for a in (*found.upcoming, *found.past) if a.status != "cancelled"]


def free_later_today(store: SqlStore) -> list[booking.SlotView]:
    now = times.now_utc()
    return [s for s in slots_on(store, times.local_day(now)) if s.start > now]


def slot_values(page: str) -> list[str]:
    return re.findall(r'name="slot" type="radio" value="([^"]*)"', page)


def test_reception_finds_a_patient_and_bad_searches_say_why(
    http: TestClient, store: SqlStore, book_id: str
) -> None:
    signed_in_as(http, store, "reception.find", ["R8009"])
    home = http.get("/staff")
    assert 'href="/staff/patients"' in home.text and 'href="/staff/day-list"' in home.text
    assert 'href="/staff/your-appointments"' not in home.text  # not a clinician
    blank = http.get("/staff/patients")
    assert blank.status_code == 200 and "Find a patient" in blank.text

    found = http.get("/staff/patients", params={"name": "smi"})
    assert found.status_code == 200 and "2 patients found" in found.text
    assert "943 476 5919" in found.text and "1 May 1970" in found.text
    assert "ZX1 1AA" in found.text and "Jo Smith" in found.text and "Sam Jones" not in found.text
    by_number = http.get("/staff/patients", params={"nhs_number": "943 476 5919"})
    assert "1 patient found" in by_number.text and "/staff/patients/pat-1" in by_number.text
    by_birth = http.get(
        "/staff/patients", params={"dob-day": "30", "dob-month": "11", "dob-year": "1985"}
    )
    assert "Sam Jones" in by_birth.text and "Jo Smith" not in by_birth.text
    assert "3 patients found" in http.get("/staff/patients", params={"postcode": "zx1 1aa"}).text
    nobody = http.get("/staff/patients", params={"name": "Nobody"})
    assert nobody.status_code == 200 and "No patients found" in nobody.text

    wrong_check_digit = http.get("/staff/patients", params={"nhs_number": "943 476 5918"})
    assert wrong_check_digit.status_code == 400
    assert "not a valid NHS number" in wrong_check_digit.text
    assert 'href="#nhs_number"' in wrong_check_digit.text
    bad = {
        "nhs_number": "12345",
        "dob-day": "31",
        "postcode": "<script>",
        "name": "x" * 101,
    }
    for field, value in bad.items():
        answer = http.get("/staff/patients", params={field: value})
        assert answer.status_code == 400, field
        assert "There is a problem" in answer.text and "<script>" not in answer.text
    impossible = {"dob-day": "31", "dob-month": "2", "dob-year": "1990"}
    assert "real date" in http.get("/staff/patients", params=impossible).text
    future = {"dob-day": "1", "dob-month": "1", "dob-year": "2999"}
    assert "in the past" in http.get("/staff/patients", params=future).text
    empty = http.get("/staff/patients", params={"name": " "})
    assert empty.status_code == 400 and "Enter a name, date of birth" in empty.text


def test_reception_sees_the_alerts_and_books_and_a_taken_slot_is_offered_again(
    http: TestClient, store: SqlStore, book_id: str
) -> None:
    token = signed_in_as(http, store, "reception.book", ["R8009"])
    page = http.get("/staff/patients/pat-1")
    assert page.status_code == 200
    assert "Alerts for this patient" in page.text and ALERT in page.text
    assert "Clinical alert" not in page.text  # reception sees the booking alerts only
    assert "943 476 5919" in page.text and "No upcoming appointments" in page.text
    quiet = http.get("/staff/patients/pat-2")
    assert quiet.status_code == 200 and "Alerts for this patient" not in quiet.text
    assert http.get("/staff/patients/nobody").status_code == 404

    tomorrow = (times.local_day(times.now_utc()) + timedelta(days=1)).isoformat()
    choice = http.get(
        "/staff/patients/pat-1/book",
        params={"day": tomorrow, "clinician": "role-gp", "type": ROUTINE.slot_type},
    )
    assert choice.status_code == 200 and "Dr A Able" in choice.text and "In person" in choice.text
    offered = slot_values(choice.text)
    assert len(offered) == 95
    slot_id = offered[40]
    check = http.get("/staff/patients/pat-1/book/check", params={"slot": slot_id, "day": tomorrow})
    assert check.status_code == 200 and "Check the details before booking" in check.text
    assert "943 476 5919" in check.text and "1 May 1970" in check.text
    assert "Jo Smith" in check.text and "Dr A Able" in check.text

    form = {"slot": slot_id, "day": tomorrow, "csrf_token": token}
    forged = http.post("/staff/patients/pat-1/book", data=form | {"csrf_token": "x"})
    assert forged.status_code == 403 and slot_status(store, slot_id) == "free"
    made = http.post("/staff/patients/pat-1/book", data=form)
    assert made.status_code == 303, made.text
    confirmation = http.get(made.headers["location"])
    assert confirmation.status_code == 200 and "Appointment booked" in confirmation.text
    assert slot_status(store, slot_id) == "busy"

    # Another receptionist took it meanwhile: the choice again, with a plain message.
    again = http.post("/staff/patients/pat-2/book", data=form)
    assert again.status_code == 409
    assert "just been booked by someone else" in again.text and slot_id not in again.text
    assert slot_values(again.text) and appointments_of(store, "pat-2") == []
    stale = http.get("/staff/patients/pat-2/book/check", params={"slot": slot_id, "day": tomorrow})
    assert stale.status_code == 409 and "just been booked" in stale.text
    assert [a.patient_id for a in appointments_of(store, "pat-1")] == ["pat-1"]
    listing = http.get("/staff/patients/pat-1")
    assert "Upcoming appointments" in listing.text and "Dr A Able" in listing.text

    odd = [
        ("/staff/patients/pat-1/book", {"day": "2030-02-30"}),
        ("/staff/patients/pat-1/book", {"day": "1999-01-01"}),
        ("/staff/patients/pat-1/book", {"clinician": "no,such"}),
        ("/staff/patients/pat-1/book", {"clinician": "role-other"}),
        ("/staff/patients/pat-1/book/check", {"day": tomorrow}),
        ("/staff/patients/pat-1/book/check", {"day": "soon", "slot": slot_id}),
    ]
    for path, params in odd:
        answer = http.get(path, params=params)
        assert answer.status_code == 400, (path, params, answer.status_code)
        assert "There is a problem" in answer.text
    empty = http.post("/staff/patients/pat-1/book", data={"csrf_token": token, "day": tomorrow})
    assert empty.status_code == 400 and len(appointments_of(store, "pat-1")) == 1


def test_the_day_list_marks_arrivals_and_did_not_attend_cancels_and_rebooks(
    http: TestClient, store: SqlStore, book_id: str
) -> None:
    token = signed_in_as(http, store, "reception.day", ["R8009"])
    today = times.local_day(times.now_utc())
    yesterday = today - timedelta(days=1)
    missed_slot = slots_on(store, yesterday)[36]  # 9:00am
    missed = booking.book_appointment(store, ADMIN, patient_id="pat-2", slot_ids=[missed_slot.id])
    later = free_later_today(store)
    if len(later) < 3:
        pytest.skip("too late in the day for today's slots")
    coming = booking.book_appointment(store, ADMIN, patient_id="pat-1", slot_ids=[later[0].id])

    chooser = http.get("/staff/day-list")
    assert chooser.status_code == 200 and "Dr A Able" in chooser.text
    listing = http.get("/staff/day-list", params={"clinician": "role-gp"})  # today
    assert listing.status_code == 200 and "Jo Smith" in listing.text
    assert "943 476 5919" in listing.text and "Booked" in listing.text

    def change(appointment_id: str, what: str, day: date, **extra: str) -> Any:
        form = {"csrf_token": token, "change": what, "clinician": "role-gp"}
        form |= {"day": day.isoformat(), **extra}
        return http.post(f"/staff/appointments/{appointment_id}/status", data=form)

    arrived = change(coming.id, "arrived", today)
    assert arrived.status_code == 303
    assert arrived.headers["location"] == f"/staff/day-list?clinician=role-gp&day={today}"
    assert "Arrived" in http.get(arrived.headers["location"]).text
    assert appointments_of(store, "pat-1")[0].status == "arrived"
    twice = change(coming.id, "arrived", today)
    assert twice.status_code == 422 and "cannot be marked arrived" in twice.text
    assert change(missed.id, "did-not-attend", yesterday).status_code == 303
    assert (
        "Did not attend"
        in http.get(
            "/staff/day-list", params={"clinician": "role-gp", "day": yesterday.isoformat()}
        ).text
    )
    assert change(missed.id, "launch", yesterday).status_code == 400
    assert change(missed.id, "arrived", yesterday, list="mine").status_code == 400
    unsigned = http.post(f"/staff/appointments/{coming.id}/status", data={"change": "arrived"})
    assert unsigned.status_code == 403

    # Rebook: a new time, with a reason; the old slot is free again.
    rebooking = booking.book_appointment(store, ADMIN, patient_id="pat-2", slot_ids=[later[1].id])
    base = f"/staff/patients/pat-2/appointments/{rebooking.id}/rebook"
    choice = http.get(base, params={"day": today.isoformat()})
    assert choice.status_code == 200 and "Choose a new time" in choice.text
    new_slot = later[2].id
    check = http.get(f"{base}/check", params={"slot": new_slot, "day": today.isoformat()})
    assert check.status_code == 200 and "Why is the appointment moving?" in check.text
    form = {"csrf_token": token, "slot": new_slot, "day": today.isoformat()}
    no_reason = http.post(base, data=form)
    assert no_reason.status_code == 400 and "Choose why the appointment is moving" in no_reason.text
    assert slot_status(store, later[1].id) == "busy" and slot_status(store, new_slot) == "free"
    moved = http.post(base, data=form | {"reason": "pat"})
    assert moved.status_code == 303
    assert "Appointment moved" in http.get(moved.headers["location"]).text
    assert slot_status(store, later[1].id) == "free" and slot_status(store, new_slot) == "busy"

    # Cancel, confirmed on its own page, with a reason; back to the day list.
    cancel = f"/staff/patients/pat-1/appointments/{coming.id}/cancel"
    sure = http.get(cancel, params={"clinician": "role-gp", "day": today.isoformat()})
    assert sure.status_code == 200 and "Are you sure" in sure.text and "943 476 5919" in sure.text
    back = {"clinician": "role-gp", "day": today.isoformat(), "csrf_token": token}
    unexplained = http.post(cancel, data=back)
    assert unexplained.status_code == 400 and 'href="#reason"' in unexplained.text
    too_long = http.post(cancel, data=back | {"reason": "pat", "reason_text": "x" * 201})
    assert too_long.status_code == 400 and "200 characters or fewer" in too_long.text
    assert 'value="pat" checked' in too_long.text  # what they chose is kept
    assert appointments_of(store, "pat-1")[0].status == "arrived"
    wrong_patient = f"/staff/patients/pat-2/appointments/{coming.id}/cancel"
    assert http.post(wrong_patient, data=back | {"reason": "pat"}).status_code == 404
    done = http.post(cancel, data=back | {"reason": "pat-fb"})
    assert done.status_code == 303 and done.headers["location"].startswith("/staff/day-list")
    assert appointments_of(store, "pat-1") == [] and slot_status(store, later[0].id) == "free"
    assert "Patient: Feeling Better" in http.get(done.headers["location"]).text


def test_a_clinician_calls_in_starts_and_ends_from_their_own_list(
    http: TestClient, store: SqlStore, book_id: str
) -> None:
    later = free_later_today(store)
    if not later:
        pytest.skip("too late in the day for today's slots")
    seen = booking.book_appointment(store, ADMIN, patient_id="pat-1", slot_ids=[later[0].id])
    token = signed_in_as(http, store, "dr.able", ["R8000"], role="role-gp")
    assert 'href="/staff/your-appointments"' in http.get("/staff").text
    mine = http.get("/staff/your-appointments")
    assert mine.status_code == 200 and "Your appointments today" in mine.text
    assert "Jo Smith" in mine.text and "Call in" in mine.text
    url = f"/staff/appointments/{seen.id}/status"
    today = times.local_day(times.now_utc()).isoformat()
    for step, shown, status in (
        ("called-in", "Start", "checked-in"),
        ("started", "In consultation", "checked-in"),
        ("ended", "Seen", "fulfilled"),
    ):
        form = {"csrf_token": token, "change": step, "list": "mine", "day": today}
        done = http.post(url, data=form)
        assert done.status_code == 303 and done.headers["location"].startswith(
            "/staff/your-appointments"
        )
        assert shown in http.get(done.headers["location"]).text
        assert appointments_of(store, "pat-1")[0].status == status
    assert http.get("/staff/your-appointments", params={"day": "nope"}).status_code == 400


def test_the_wrong_role_or_area_is_refused_and_changes_nothing(
    http: TestClient, store: SqlStore, book_id: str
) -> None:
    assert http.get("/staff/patients").status_code == 303  # not signed in: to sign in
    later = free_later_today(store) or slots_on(store, times.local_day(times.now_utc()))
    booked = booking.book_appointment(store, ADMIN, patient_id="pat-1", slot_ids=[later[0].id])
    token = signed_in_as(http, store, "privacy.officer", ["R0001"])
    assert "/staff/day-list" not in http.get("/staff").text
    assert http.get("/staff/day-list", params={"clinician": "role-gp"}).status_code == 403
    assert http.get("/staff/patients/pat-1/book").status_code == 403
    form = {"csrf_token": token, "change": "arrived", "clinician": "role-gp"}
    refused = http.post(f"/staff/appointments/{booked.id}/status", data=form)
    assert refused.status_code == 403
    cancel = f"/staff/patients/pat-1/appointments/{booked.id}/cancel"
    assert http.post(cancel, data={"csrf_token": token, "reason": "pat"}).status_code == 403
    assert appointments_of(store, "pat-1")[0].status == "booked"

    http.cookies.clear()
    token = signed_in_as(http, store, "reception.start", ["R8009"])
    mine = http.get("/staff/your-appointments")
    assert mine.status_code == 200 and "does not act in a clinician's role" in mine.text
    form = {"csrf_token": token, "change": "started", "list": "mine", "day": "2030-01-01"}
    started = http.post(f"/staff/appointments/{booked.id}/status", data=form)
    assert started.status_code == 403  # reception may not open a consultation
    assert appointments_of(store, "pat-1")[0].status == "booked"


def test_odd_paths_and_values_never_give_a_500(
    http: TestClient, store: SqlStore, book_id: str
) -> None:
    token = signed_in_as(http, store, "reception.odd", ["R8009"])
    for path in (
        "/staff/patients/%00",
        "/staff/patients/a%2Cb",
        "/staff/patients/pat-1/appointments/nope/cancel",
        "/staff/patients/pat-1/appointments/nope/rebook",
        "/staff/patients/pat-1/appointments/nope/booked",
        "/staff/day-list?clinician=%00&day=x",
        "/staff/patients?name=%C0",
        "/staff/patients?dob-day=%D9%A3&dob-month=1&dob-year=1970",
    ):
        answer = http.get(path)
        assert 400 <= answer.status_code < 500 or answer.status_code == 200, path
    for path, form in (
        ("/staff/appointments/nope/status", {"change": "arrived", "clinician": "role-gp"}),
        ("/staff/appointments/nope/status", {"change": "ended", "list": "mine"}),
        ("/staff/patients/pat-1/appointments/nope/cancel", {"reason": "pat"}),
        ("/staff/patients/pat-1/appointments/nope/rebook", {"reason": "pat", "slot": "x"}),
        ("/staff/patients/nobody/book", {"slot": "x"}),
    ):
        answer = http.post(path, data=form | {"csrf_token": token})
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
