"""The practice's appointment screens in a real browser: a receptionist finds a patient,
books a slot and marks them arrived on the day list, and the clinician calls them in, starts
and ends the appointment; two receptionists booking one slot at once leave exactly one
appointment, the other told plainly. axe-core checks each page (nothing serious or critical).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from opengp.services import appointments as booking
from opengp.services.appointments import times
from tests.browser.practice import Practice, axe_findings, first_sign_in, served
from tests.functional.appointment_helpers import ADMIN, slots_on
from tests.functional.test_reception_screens import ALERT, seed_practice

SEVERE = ("serious", "critical")


@contextmanager
def seeded(workdir: Path) -> Iterator[Practice]:
    """A served practice with a GP's book open all day, every day, and Jo Smith's alert."""
    with served(workdir) as practice:
        seed_practice(practice.store)
        yield practice


@pytest.fixture(scope="module")
def reception(tmp_path_factory: pytest.TempPathFactory, practice: Practice) -> Iterator[Practice]:
    with seeded(tmp_path_factory.mktemp("reception")) as running:
        yield running


def receptionist(practice: Practice, username: str) -> Any:
    return practice.account(
        username, "staff", "Robin Reception", roles=["R8009"], organization_id="practice-1"
    )


def clinician(practice: Practice, username: str) -> Any:
    return practice.account(
        username,
        "staff",
        "Dr A Able",
        roles=["R8000"],
        organization_id="practice-1",
        fhir_user="Practitioner/dr-a",
        practitioner_role="PractitionerRole/role-gp",
    )


def serious(page: Page) -> list[dict[str, Any]]:
    return [v for v in axe_findings(page) if v.get("impact") in SEVERE]


def free_times_today(practice: Practice) -> int:
    now = times.now_utc()
    return sum(1 for s in slots_on(practice.store, times.local_day(now)) if s.start > now)


def find_and_check(page: Page, practice: Practice, nhs_number: str) -> None:
    """From the staff home: find the patient by NHS number and choose today's first time."""
    page.goto(f"{practice.url}/staff")
    page.get_by_role("link", name="Find a patient and book an appointment").click()
    page.get_by_label("NHS number").fill(nhs_number)
    page.get_by_role("button", name="Search").click()
    page.locator("h3 a").first.click()
    page.get_by_role("button", name="Book an appointment").click()
    page.get_by_label("Clinician").select_option(label="Dr A Able")
    page.get_by_role("button", name="Show free times").click()
    page.locator('input[name="slot"]').first.check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check the details before booking")).to_be_visible()


def reception_tour(page: Page, practice: Practice, tag: str) -> Iterator[str]:
    """Visit every appointment screen of the staff area, naming each as it comes: finding a
    patient (blank, with errors, with results), the patient, booking (tomorrow, so whatever
    the hour), the day list, cancelling, rebooking, and a clinician's own list."""
    first_sign_in(page, practice, "staff", receptionist(practice, f"robin.{tag}"))
    page.get_by_role("link", name="Find a patient and book an appointment").click()
    yield "reception-find"
    page.get_by_label("NHS number").fill("943 476 5918")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("There is a problem").wait_for()
    yield "reception-find-errors"
    page.get_by_label("NHS number").fill("")
    page.get_by_label("Postcode").fill("ZX1 1AA")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("patients found").wait_for()
    yield "reception-find-results"
    page.get_by_role("link", name="Jo Smith").click()
    yield "reception-patient"
    page.get_by_role("button", name="Book an appointment").click()
    tomorrow = page.get_by_label("Day").locator("option").nth(1).get_attribute("value") or ""
    page.get_by_label("Day").select_option(tomorrow)
    page.get_by_label("Clinician").select_option(label="Dr A Able")
    page.get_by_role("button", name="Show free times").click()
    yield "reception-book-choose"
    page.locator('input[name="slot"]').nth(40).check()
    page.get_by_role("button", name="Continue").click()
    yield "reception-book-check"
    page.get_by_role("button", name="Book appointment").click()
    page.get_by_role("heading", name="Appointment booked").wait_for()
    yield "reception-booked"
    page.goto(f"{practice.url}/staff/day-list?clinician=role-gp&day={tomorrow}")
    yield "reception-day-list"
    page.locator(".nhsuk-card", has_text="Jo Smith").first.get_by_role(
        "link", name="Cancel"
    ).click()
    yield "reception-cancel"
    page.get_by_role("button", name="Cancel appointment").click()
    page.get_by_text("There is a problem").wait_for()
    yield "reception-cancel-errors"
    page.goto(f"{practice.url}/staff/day-list?clinician=role-gp&day={tomorrow}")
    page.locator(".nhsuk-card", has_text="Jo Smith").first.get_by_role(
        "link", name="Rebook"
    ).click()
    yield "reception-rebook"
    page.context.clear_cookies()
    first_sign_in(page, practice, "staff", clinician(practice, f"dr.able.{tag}"))
    page.get_by_role("link", name="Your appointments today").click()
    yield "clinic-your-appointments"


def scan(
    page: Page, names: Iterator[str], width: int
) -> tuple[list[str], list[tuple[str, str, Any]]]:
    """The pages of a tour, and axe-core's serious and critical findings on them; no page
    may scroll sideways at `width`."""
    seen, severe = [], []
    for name in names:
        seen.append(name)
        for finding in axe_findings(page):
            print(f"{width}px {name}: {finding['impact']} {finding['id']}: {finding['help']}")
            if finding["impact"] in SEVERE:
                severe.append((name, finding["id"], [n["target"] for n in finding["nodes"]]))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways at {width}px"
    return seen, severe


def test_reception_books_and_the_clinician_sees_the_patient(
    reception: Practice, browser: Browser
) -> None:
    if free_times_today(reception) < 2:
        pytest.skip("too late in the day for today's slots")
    found: dict[str, list[dict[str, Any]]] = {}
    desk = browser.new_context(bypass_csp=True)  # for axe-core's script
    page = desk.new_page()
    first_sign_in(page, reception, "staff", receptionist(reception, "robin.journey"))
    page.get_by_role("link", name="Find a patient and book an appointment").click()
    page.get_by_label("NHS number").fill("943 476 5918")  # one digit wrong
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("not a valid NHS number").first).to_be_visible()
    found["find error"] = serious(page)
    page.get_by_label("NHS number").fill("943 476 5919")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("1 patient found")).to_be_visible()
    found["find"] = serious(page)
    page.get_by_role("link", name="Jo Smith").click()
    expect(page.get_by_text(ALERT)).to_be_visible()
    found["patient"] = serious(page)
    page.get_by_role("button", name="Book an appointment").click()
    page.get_by_label("Clinician").select_option(label="Dr A Able")
    page.get_by_role("button", name="Show free times").click()
    found["choose"] = serious(page)
    page.locator('input[name="slot"]').first.check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("943 476 5919")).to_be_visible()
    expect(page.get_by_text("1 May 1970")).to_be_visible()
    found["check"] = serious(page)
    page.get_by_role("button", name="Book appointment").click()
    expect(page.get_by_role("heading", name="Appointment booked")).to_be_visible()
    found["booked"] = serious(page)

    page.goto(f"{reception.url}/staff")
    page.get_by_role("link", name="Day lists").click()
    page.get_by_label("Clinician").select_option(label="Dr A Able")
    page.get_by_role("button", name="Show the list").click()
    found["day list"] = serious(page)
    page.get_by_role("button", name="Arrived for Jo Smith").click()
    card = page.locator(".nhsuk-card", has_text="Jo Smith")
    expect(card.get_by_text("Arrived", exact=True)).to_be_visible()
    page.get_by_role("link", name="Cancel Jo Smith").click()
    expect(page.get_by_role("heading", name="Are you sure")).to_be_visible()
    found["cancel"] = serious(page)
    page.get_by_role("link", name="Keep this appointment").click()
    expect(page.get_by_role("heading", name="Day list")).to_be_visible()
    desk.close()

    room = browser.new_context(bypass_csp=True)
    page = room.new_page()
    first_sign_in(page, reception, "staff", clinician(reception, "dr.able.journey"))
    page.get_by_role("link", name="Your appointments today").click()
    found["your appointments"] = serious(page)
    for step, after in (("Call in", "Called in"), ("Start", "In consultation"), ("End", "Seen")):
        page.get_by_role("button", name=f"{step} for Jo Smith").click()
        expect(page.locator(".nhsuk-card", has_text="Jo Smith").get_by_text(after)).to_be_visible()
    room.close()
    assert {name: v for name, v in found.items() if v} == {}


def test_two_receptionists_booking_one_slot_at_once_leave_one_appointment(
    reception: Practice, browser: Browser
) -> None:
    if free_times_today(reception) < 2:
        pytest.skip("too late in the day for today's slots")
    desks: list[tuple[BrowserContext, Page]] = []
    for n, nhs_number in enumerate(("943 476 5870", "999 000 0026")):
        context = browser.new_context()
        page = context.new_page()
        first_sign_in(page, reception, "staff", receptionist(reception, f"desk.{n}"))
        find_and_check(page, reception, nhs_number)
        desks.append((context, page))
    chosen = {p.locator('input[name="slot"]').get_attribute("value") for _, p in desks}
    assert len(chosen) == 1  # both about to book the same slot
    slot_id = chosen.pop()
    # Both press "Book appointment" together: the second press is sent before the first
    # answer comes back.
    for _, page in desks:
        page.get_by_role("button", name="Book appointment").click(no_wait_after=True)
    headings = []
    for _, page in desks:
        page.wait_for_load_state()
        heading = page.locator("h1, .nhsuk-panel__title").first
        expect(heading).not_to_have_text("Check the details before booking")
        headings.append(page.content())
    booked = [h for h in headings if "Appointment booked" in h]
    told = [h for h in headings if "just been booked by someone else" in h]
    assert len(booked) == 1 and len(told) == 1
    holders = [
        a
        for patient in ("pat-2", "child-1")
        for a in booking.patient_appointments(reception.store, ADMIN, patient).upcoming
        if slot_id in a.slot_ids and a.status != "cancelled"
    ]
    assert len(holders) == 1
    for context, _ in desks:
        context.close()
