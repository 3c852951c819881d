"""The appointment screens over HTTP, on both databases: a patient books and cancels online
(the slot is free again), and a POST without the session's CSRF token is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from starlette.testclient import TestClient

from opengp.access import accounts
from opengp.services import appointments as booking
from opengp.services.appointments import PracticeSettings, times
from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import ADMIN, ORG, ROUTINE, seed
from tests.functional.server import http, settings
from tests.functional.test_web_sessions import first_sign_in, hidden

__all__ = ["http", "settings"]  # the fixtures of the screen tests


@pytest.fixture
def practice(store: SqlStore) -> str:
    """The practice of the appointment tests, its slots from today, routine ones online."""
    now = datetime.now(UTC)
    book = seed(store, weeks=3, now=now)
    online = PracticeSettings(online_slot_types=frozenset({ROUTINE.slot_type}))
    booking.save_practice_settings(store, ADMIN, ORG, online)
    return book.schedule_id


def signed_in_patient(http: TestClient, store: SqlStore) -> None:
    with store.writing() as tx:
        user = accounts.create_user(
            tx.conn,
            username="jo.smith",
            kind="patient",
            display_name="Jo Smith",
            fhir_user="Patient/pat-1",
            with_totp=False,
        )
    done = first_sign_in(http, "patient", "jo.smith", user.one_time_password)
    assert done.status_code == 303, done.text


def slot_status(store: SqlStore, slot_id: str) -> str:
    with store.reading() as tx:
        stored = tx.current("Slot", slot_id)
    assert stored is not None and stored.content is not None
    return str(re.search(rb'"status":"([a-z-]+)"', stored.content).group(1).decode())  # type: ignore[union-attr]


def radio_values(page: str, name: str) -> list[str]:
    return [unescape(v) for v in re.findall(rf'name="{name}" type="radio" value="([^"]*)"', page)]


def test_a_patient_books_and_cancels_online(
    http: TestClient, store: SqlStore, practice: str
) -> None:
    signed_in_patient(http, store)
    listing = http.get("/patient/appointments")
    assert listing.status_code == 200 and "Book an appointment" in listing.text
    assert "You have no upcoming appointments" in listing.text

    types = http.get("/patient/appointments/book")
    assert types.status_code == 200
    # Only the types the practice offers online: not the triage sessions.
    assert radio_values(types.text, "type") == [ROUTINE.slot_type]
    unanswered = http.get("/patient/appointments/book/time")
    assert unanswered.status_code == 303
    assert http.get(unanswered.headers["location"]).status_code == 400

    times_page = http.get("/patient/appointments/book/time", params={"type": ROUTINE.slot_type})
    assert times_page.status_code == 200
    offered = re.findall(r'name="slot" type="radio" value="([^"]*)"', times_page.text)
    assert offered
    slot_id = offered[-1]  # the latest: well before the cancellation cut-off
    check = http.get("/patient/appointments/book/check", params={"slot": slot_id})
    assert check.status_code == 200 and "Check your appointment" in check.text
    token = hidden(check.text, "csrf_token")

    forged = http.post("/patient/appointments/book", data={"slot": slot_id})
    assert forged.status_code == 403 and slot_status(store, slot_id) == "free"

    made = http.post("/patient/appointments/book", data={"slot": slot_id, "csrf_token": token})
    assert made.status_code == 303, made.text
    confirmation = http.get(made.headers["location"])
    assert confirmation.status_code == 200 and "Appointment booked" in confirmation.text
    assert slot_status(store, slot_id) == "busy"
    appointment_id = made.headers["location"].split("/")[-2]

    listing = http.get("/patient/appointments")
    assert f"/patient/appointments/{appointment_id}/cancel" in listing.text
    sure = http.get(f"/patient/appointments/{appointment_id}/cancel")
    assert sure.status_code == 200 and "Are you sure" in sure.text
    cancel_url = f"/patient/appointments/{appointment_id}/cancel"
    assert http.post(cancel_url, data={"reason": "pat-fb"}).status_code == 403
    no_reason = http.post(cancel_url, data={"csrf_token": token})
    assert no_reason.status_code == 400 and "Select why you are cancelling" in no_reason.text
    assert slot_status(store, slot_id) == "busy"  # nothing cancelled
    done = http.post(cancel_url, data={"reason": "pat-fb", "csrf_token": token})
    assert done.status_code == 303
    page = http.get(done.headers["location"])
    assert page.status_code == 200 and "Appointment cancelled" in page.text
    assert slot_status(store, slot_id) == "free"
    again = http.get("/patient/appointments/book/time", params={"type": ROUTINE.slot_type})
    assert slot_id in again.text


def test_someone_elses_appointment_is_not_found(
    http: TestClient, store: SqlStore, practice: str
) -> None:
    start = times.now_utc() + timedelta(days=3)
    slots = booking.free_slots(store, ADMIN, start=start, end=start + timedelta(days=7))
    theirs = booking.book_appointment(store, ADMIN, patient_id="pat-2", slot_ids=[slots[0].slot.id])
    signed_in_patient(http, store)
    assert http.get(f"/patient/appointments/{theirs.id}/cancel").status_code in (403, 404)
    token = hidden(http.get("/patient").text, "csrf_token")
    refused = http.post(
        f"/patient/appointments/{theirs.id}/cancel", data={"reason": "pat-fb", "csrf_token": token}
    )
    assert refused.status_code in (403, 404)
    assert slot_status(store, slots[0].slot.id) == "busy"
    assert http.get("/patient/appointments/book/check", params={"slot": "nope"}).status_code == 409
