"""The practice admin screens over HTTP, on both databases: a practice admin makes an
appointment book, its sessions and its slots, blocks and releases slots and chooses what
patients may book online; every bad answer is named on the page and changes nothing; roles
the policy does not let manage appointments are refused; odd input is never a 500."""

from __future__ import annotations

import re
from datetime import date
from html import unescape
from typing import Any

import pytest
from starlette.testclient import TestClient

from opengp.access import accounts
from opengp.services import appointments as booking
from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import ADMIN, ORG, ROUTINE, resources, seed
from tests.functional.server import http, settings
from tests.functional.test_web_sessions import code_for, first_sign_in, hidden

BOOKS = "/staff/practice/books"
SLOTS = "/staff/practice/slots"
ONLINE = "/staff/practice/online-booking"
TUESDAY = date(2030, 1, 8)  # of the seeded book (appointment_helpers.MONDAY's week)
GOOD_SESSION = {
    "name": "Morning surgery",
    "day_mon": "yes",
    "day_tue": "yes",
    "day_wed": "yes",
    "day_thu": "yes",
    "day_fri": "yes",
    "start": "09:00",
    "end": "10:00",
    "slot_minutes": "15",
    "slot_type": "Routine GP appointment",
    "category": "slot_general_consultation_routine",
    "channel": "channel_in_person",
    "online_days_ahead": "14",
}

__all__ = ["http", "settings"]  # the fixtures of the screen tests


def signed_in_staff(
    http: TestClient, store: SqlStore, roles: str = "R8008", organization: str | None = ORG
) -> str:
    """A member of staff signed in (first sign-in done); their session's CSRF token."""
    username = f"staff.{roles.replace(' ', '.').lower()}"
    with store.writing() as tx:
        user = accounts.create_user(
            tx.conn,
            username=username,
            kind="staff",
            display_name="Pat Manager",
            roles=roles.split(),
            organization_id=organization,
            with_totp=True,
        )
    done = first_sign_in(http, "staff", username, user.one_time_password, code_for(store, user))
    assert done.status_code == 303, done.text
    return hidden(http.get("/staff").text, "csrf_token")


def error_summary(page: str) -> list[str]:
    """The messages of the NHS.UK error summary, in order."""
    box = page.split('class="nhsuk-error-summary"', 1)
    if len(box) == 1:
        return []
    listed = box[1].split("</ul>", 1)[0]
    return [" ".join(unescape(t).split()) for t in re.findall(r"<a [^>]*>(.*?)</a>", listed, re.S)]


def text_of(page: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())


def slot_statuses(store: SqlStore, day: date) -> dict[str, str]:
    found = booking.day_list(store, ADMIN, day, practitioner_role_id="role-gp").rows
    return {row.slot.id: row.slot.status for row in found}


def test_an_admin_makes_a_book_its_sessions_and_its_slots(
    http: TestClient, store: SqlStore
) -> None:
    with store.writing() as tx:
        tx.create_many(resources())
    token = signed_in_staff(http, store)
    home = http.get("/staff")
    assert "Appointment books and sessions" in home.text
    assert "Weekly appointments report" in home.text
    listing = http.get(BOOKS)
    assert listing.status_code == 200 and "no appointment books yet" in listing.text

    form = http.get(f"{BOOKS}/new")
    assert form.status_code == 200
    # Only the practice's clinicians and sites are offered.
    assert 'value="role-gp"' in form.text and 'value="role-other"' not in form.text
    assert 'value="site-1"' in form.text and 'value="site-2"' not in form.text
    wrong = http.post(
        f"{BOOKS}/new", data={"clinician": "role-other", "site": "", "csrf_token": token}
    )
    assert wrong.status_code == 400
    assert error_summary(wrong.text) == [
        "Select the clinician whose appointment book this is",
        "Select the site where the clinician sees patients",
    ]
    assert booking.list_schedules(store, ADMIN) == []
    forged = http.post(f"{BOOKS}/new", data={"clinician": "role-gp", "site": "site-1"})
    assert forged.status_code == 403 and booking.list_schedules(store, ADMIN) == []

    made = http.post(
        f"{BOOKS}/new", data={"clinician": "role-gp", "site": "site-1", "csrf_token": token}
    )
    assert made.status_code == 303
    book_url = made.headers["location"].split("?")[0]
    schedule_id = book_url.rsplit("/", 1)[1]
    page = http.get(made.headers["location"])
    assert page.status_code == 200 and "Book created" in page.text
    assert "Dr A Able" in page.text and "Main surgery" in page.text
    assert "This book has no sessions yet" in page.text
    assert "Dr A Able" in http.get(BOOKS).text

    new_session = f"{book_url}/sessions/new"
    assert http.get(new_session).status_code == 200
    bad = {
        "csrf_token": token,
        "start": "10:00",
        "end": "9:30",
        "slot_minutes": "7",
        "slot_type": "",
        "category": "slot_made_up",
        "channel": "pigeon",
        "online_days_ahead": "-1",
    }
    refused = http.post(new_session, data=bad)
    assert refused.status_code == 400
    assert error_summary(refused.text) == [
        "Select the days of the week the session runs",
        "The end time must be after the start time",
        "Enter the type of appointment, like Routine GP appointment",
        "Select the National Slot Type Category",
        "Select how the appointment is delivered",
        "Enter how many days ahead patients may book online, from 0 to 366, or leave it empty",
    ]
    assert 'value="10:00"' in refused.text  # what was typed is kept
    uneven = http.post(
        new_session, data={**GOOD_SESSION, "slot_minutes": "25", "csrf_token": token}
    )
    assert uneven.status_code == 400
    assert error_summary(uneven.text) == [
        "A 60-minute session does not divide into 25-minute slots: choose a length that "
        "divides it exactly, or change the times"
    ]
    badly_timed = http.post(
        new_session, data={**GOOD_SESSION, "start": "25:00", "end": "noon", "csrf_token": token}
    )
    assert error_summary(badly_timed.text) == [
        "Enter the start time in hours and minutes, like 09:00 or 13:30",
        "Enter the end time in hours and minutes, like 09:00 or 13:30",
    ]
    visit = {**GOOD_SESSION, "channel": "home_visit", "csrf_token": token}
    assert error_summary(http.post(new_session, data=visit).text) == [
        "A home visit session must have the category Home Visit"
    ]
    assert booking.get_schedule(store, ADMIN, schedule_id).sessions == ()

    added = http.post(new_session, data={**GOOD_SESSION, "csrf_token": token})
    assert added.status_code == 303
    page = text_of(http.get(added.headers["location"]).text)
    assert "Session added" in page and "Monday to Friday" in page and "09:00 to 10:00" in page
    assert "Opens 14 days ahead" in page and "Face to face" in page
    overlapping = {**GOOD_SESSION, "day_mon": "", "start": "09:30", "end": "11:30"}
    overlapping |= {"slot_minutes": "10", "csrf_token": token}
    clash = http.post(new_session, data=overlapping)
    assert clash.status_code == 400
    assert error_summary(clash.text) == [
        "This session overlaps another session of this appointment book: change its days or times"
    ]
    home_visits = {**GOOD_SESSION, "day_mon": "", "day_tue": "", "day_wed": "", "day_thu": ""}
    home_visits |= {"start": "13:00", "end": "15:00", "slot_minutes": "30", "csrf_token": token}
    home_visits |= {"channel": "home_visit", "category": "slot_home_visit", "slot_type": "Visit"}
    assert http.post(new_session, data=home_visits).status_code == 303
    sessions = booking.get_schedule(store, ADMIN, schedule_id).sessions
    assert [(s.days, s.channel, s.category) for s in sessions] == [
        (("mon", "tue", "wed", "thu", "fri"), "channel_in_person", ROUTINE.category),
        (("fri",), "channel_in_person", "slot_home_visit"),
    ]
    assert "Home visit" in http.get(book_url).text

    generate = f"{book_url}/generate"
    for weeks in ("0", "53", "two", ""):
        wrong = http.post(generate, data={"weeks": weeks, "csrf_token": token})
        assert wrong.status_code == 400
        assert error_summary(wrong.text) == [
            "Enter how many weeks ahead to make slots for, from 1 to 52"
        ]
    first = http.post(generate, data={"weeks": "2", "csrf_token": token})
    assert first.status_code == 303
    made_count = int(re.search(r"made=(\d+)", first.headers["location"]).group(1))  # type: ignore[union-attr]
    assert made_count > 0
    shown = text_of(http.get(first.headers["location"]).text)
    assert f"{made_count} new slots made for the next 2 weeks" in shown
    assert "never makes a second slot" in shown
    again = http.post(generate, data={"weeks": "2", "csrf_token": token})
    assert re.search(r"made=0&skipped=(\d+)", again.headers["location"])
    assert f"skipped={made_count}&" in again.headers["location"]
    shown = text_of(http.get(again.headers["location"]).text)
    assert "0 new slots made" in shown and f"{made_count} were already in the book" in shown

    key = re.search(r"/sessions/([0-9a-f]+)/remove", http.get(book_url).text).group(1)  # type: ignore[union-attr]
    removed = http.post(f"{book_url}/sessions/{key}/remove", data={"csrf_token": token})
    assert removed.status_code == 303
    assert len(booking.get_schedule(store, ADMIN, schedule_id).sessions) == 1
    twice = http.post(f"{book_url}/sessions/{key}/remove", data={"csrf_token": token})
    assert twice.status_code == 409


def test_a_clinician_is_never_in_two_places_at_once(http: TestClient, store: SqlStore) -> None:
    """One book per clinician and site, and no session that overlaps one of the clinician's
    sessions at another site (their slots would double-book them)."""
    seed(store)  # Dr A Able's book at the Main surgery: ROUTINE and TRIAGE
    branch = {"resourceType": "Location", "id": "site-3", "name": "Branch surgery"}
    branch["managingOrganization"] = {"reference": f"Organization/{ORG}"}
    with store.writing() as tx:
        tx.create_many([branch])
    token = signed_in_staff(http, store)
    again = http.post(
        f"{BOOKS}/new", data={"clinician": "role-gp", "site": "site-1", "csrf_token": token}
    )
    assert again.status_code == 400
    assert error_summary(again.text) == [
        "Dr A Able already has an appointment book at Main surgery: add sessions to that one"
    ]
    assert len(booking.list_schedules(store, ADMIN)) == 1
    made = http.post(
        f"{BOOKS}/new", data={"clinician": "role-gp", "site": "site-3", "csrf_token": token}
    )
    assert made.status_code == 303
    branch_book = made.headers["location"].split("?")[0]
    clash = http.post(f"{branch_book}/sessions/new", data={**GOOD_SESSION, "csrf_token": token})
    assert clash.status_code == 400
    assert error_summary(clash.text) == [
        "Dr A Able already has a session at these times in their book at Main surgery: "
        "change its days or times"
    ]
    afternoon = {**GOOD_SESSION, "start": "16:00", "end": "17:00", "csrf_token": token}
    assert http.post(f"{branch_book}/sessions/new", data=afternoon).status_code == 303


def test_slots_are_blocked_and_released_after_confirming(http: TestClient, store: SqlStore) -> None:
    seed(store)
    token = signed_in_staff(http, store)
    day = {"clinician": "role-gp", "d": "8", "m": "1", "y": "2030"}
    free = sorted(i for i, s in slot_statuses(store, TUESDAY).items() if s == "free")
    booked = booking.book_appointment(store, ADMIN, patient_id="pat-1", slot_ids=[free[0]])
    page = http.get(SLOTS, params=day)
    assert page.status_code == 200 and "Tuesday 8 January 2030" in page.text
    offered = re.findall(r'name="slot" type="checkbox" value="([^"]*)"', page.text)
    assert set(offered) == set(free[1:])  # the booked one cannot be chosen
    assert "Booked slots" in page.text

    confirm = f"{SLOTS}/confirm"
    none = http.get(confirm, params={**day, "action": "block"})
    assert none.status_code == 400 and error_summary(none.text) == ["Select the slots to block"]
    no_reason = http.get(confirm, params={**day, "action": "block", "slot": free[1:3]})
    assert error_summary(no_reason.text) == [
        "Say why the slots are blocked, like annual leave or training"
    ]
    taken = http.get(confirm, params={**day, "action": "block", "slot": [free[0]], "reason": "x"})
    assert taken.status_code == 409
    chosen = {**day, "action": "block", "slot": free[1:3], "reason": "Annual leave"}
    sure = http.get(confirm, params=chosen)
    assert sure.status_code == 200 and "Block 2 slots?" in sure.text
    post_to = unescape(re.search(r'<form method="post" action="([^"]*)"', sure.text).group(1))  # type: ignore[union-attr]
    assert http.post(post_to, data={"csrf_token": "not the one"}).status_code == 403
    assert {slot_statuses(store, TUESDAY)[i] for i in free[1:3]} == {"free"}

    done = http.post(post_to, data={"csrf_token": token})
    assert done.status_code == 303
    assert "2 slots blocked" in http.get(done.headers["location"]).text
    statuses = slot_statuses(store, TUESDAY)
    assert [statuses[i] for i in free[1:3]] == ["busy-unavailable"] * 2
    assert statuses[free[0]] == "busy" and booked.status == "booked"
    free_now = [i for i, s in statuses.items() if s == "free"]
    block_again = {**day, "action": "block", "slot": free[1:2], "reason": "x"}
    assert http.get(confirm, params=block_again).status_code == 409  # already blocked
    mixed = {**day, "action": "release", "slot": [free[1], free_now[0]]}
    assert http.get(confirm, params=mixed).status_code == 409

    release = {**day, "action": "release", "slot": free[1:3]}
    sure = http.get(confirm, params=release)
    assert "Release 2 slots?" in sure.text
    post_to = unescape(re.search(r'<form method="post" action="([^"]*)"', sure.text).group(1))  # type: ignore[union-attr]
    done = http.post(post_to, data={"csrf_token": token})
    assert done.status_code == 303
    assert "2 slots released" in http.get(done.headers["location"]).text
    assert {slot_statuses(store, TUESDAY)[i] for i in free[1:3]} == {"free"}


def test_online_booking_settings_are_checked_and_saved(http: TestClient, store: SqlStore) -> None:
    seed(store)
    token = signed_in_staff(http, store)
    page = http.get(ONLINE)
    assert page.status_code == 200
    types = re.findall(r'name="(type_\d+)" type="checkbox" value="([^"]*)"', page.text)
    assert [v for _, v in types] == ["Duty doctor telephone triage", "Routine GP appointment"]
    assert 'value="24"' in page.text and 'value="28"' in page.text  # the defaults
    before = booking.practice_settings(store, ADMIN, ORG)

    bad = {"csrf_token": token, "online_horizon_days": "400", "cancellation_cutoff_hours": "2h"}
    bad |= {"type_0": "Acupuncture"}
    refused = http.post(ONLINE, data=bad)
    assert refused.status_code == 400
    assert error_summary(refused.text) == [
        "Select only the types of appointment listed",
        "Enter how many days ahead patients may book, from 0 to 366",
        "Enter the cancellation cut-off as a whole number of hours, from 0 to 672",
    ]
    assert booking.practice_settings(store, ADMIN, ORG) == before

    name = next(n for n, v in types if v == ROUTINE.slot_type)
    good = {"csrf_token": token, "online_horizon_days": "21", "cancellation_cutoff_hours": "48"}
    saved = http.post(ONLINE, data={**good, name: ROUTINE.slot_type})
    assert saved.status_code == 303
    assert "Online booking settings saved" in http.get(saved.headers["location"]).text
    assert booking.practice_settings(store, ADMIN, ORG) == booking.PracticeSettings(
        21, 48, frozenset({ROUTINE.slot_type})
    )
    shown = http.get(ONLINE).text
    assert re.search(rf'name="{name}" type="checkbox" value="{ROUTINE.slot_type}" checked', shown)


PAGES = [
    BOOKS,
    f"{BOOKS}/new",
    SLOTS,
    f"{SLOTS}/confirm",
    ONLINE,
    "/staff/practice/report",
    "/staff/practice/report.csv",
]


@pytest.mark.parametrize(
    ("roles", "organization", "message"),
    [
        ("R0001", ORG, "does not let you manage the practice"),  # Privacy Officer
        ("R8015", ORG, "does not let you manage the practice"),  # Systems Support
        ("R8008", None, "not linked to a GP practice"),
    ],
)
def test_those_who_may_not_manage_appointments_are_refused(
    http: TestClient, store: SqlStore, roles: str, organization: str | None, message: str
) -> None:
    practice = seed(store)
    token = signed_in_staff(http, store, roles, organization)
    assert ("Weekly appointments report" in http.get("/staff").text) == (roles == "R8008")
    for path in [*PAGES, f"{BOOKS}/{practice.schedule_id}"]:
        answer = http.get(path)
        assert answer.status_code == 403, path
        assert message in text_of(answer.text), path
    posts: list[tuple[str, dict[str, Any]]] = [
        (f"{BOOKS}/new", {"clinician": "role-gp", "site": "site-1"}),
        (f"{BOOKS}/{practice.schedule_id}/generate", {"weeks": "1"}),
        (f"{BOOKS}/{practice.schedule_id}/sessions/new", GOOD_SESSION),
        (ONLINE, {"online_horizon_days": "1", "cancellation_cutoff_hours": "1"}),
    ]
    before = booking.list_schedules(store, ADMIN)
    for path, form in posts:
        assert http.post(path, data={**form, "csrf_token": token}).status_code == 403, path
    assert booking.list_schedules(store, ADMIN) == before


def test_another_practices_book_is_not_shown(http: TestClient, store: SqlStore) -> None:
    seed(store)
    theirs = booking.create_schedule(
        store, ADMIN, practitioner_role_id="role-other", location_id="site-2"
    )
    token = signed_in_staff(http, store)
    assert theirs.id not in http.get(BOOKS).text
    assert http.get(f"{BOOKS}/{theirs.id}").status_code == 404
    assert http.get(f"{BOOKS}/no-such-book").status_code == 404
    answer = http.post(f"{BOOKS}/{theirs.id}/generate", data={"weeks": "1", "csrf_token": token})
    assert answer.status_code == 404


ODD = ["", "x", "0", "-1", "9" * 40, "2030-02-30", "%00", "\u00e9", "1e3", " 15 ", "<b>"]


def test_odd_input_is_never_a_server_error(http: TestClient, store: SqlStore) -> None:
    practice = seed(store)
    token = signed_in_staff(http, store)
    book = f"{BOOKS}/{practice.schedule_id}"
    for odd in ODD:
        for path, params in [
            (SLOTS, {"clinician": odd, "d": odd, "m": "1", "y": "2030"}),
            (SLOTS, {"clinician": "role-gp", "d": "1", "m": odd, "y": odd}),
            (f"{SLOTS}/confirm", {"clinician": "role-gp", "action": odd, "slot": odd}),
            (f"{SLOTS}/confirm", {"clinician": odd, "action": "block", "slot": odd, "reason": odd}),
            ("/staff/practice/report", {"week": odd}),
            ("/staff/practice/report.csv", {"week": odd}),
            (book, {"made": odd, "skipped": odd, "weeks": odd, "changed": odd}),
        ]:
            answer = http.get(path, params=params)
            assert answer.status_code < 500, (path, params)
        for path, form in [
            (f"{book}/sessions/new", dict.fromkeys(GOOD_SESSION, odd)),
            (f"{book}/sessions/new", {**GOOD_SESSION, "start": odd}),
            (f"{book}/generate", {"weeks": odd}),
            (ONLINE, {"online_horizon_days": odd, "cancellation_cutoff_hours": odd, "type_0": odd}),
            (f"{BOOKS}/new", {"clinician": odd, "site": odd}),
            (f"{book}/sessions/{odd or 'x'}/remove", {}),
        ]:
            answer = http.post(path, data={**form, "csrf_token": token})
            assert answer.status_code in (303, 400, 404, 409), (path, form, answer.status_code)
    assert len(booking.get_schedule(store, ADMIN, practice.schedule_id).sessions) == 2
