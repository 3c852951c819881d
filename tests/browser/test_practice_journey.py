"""The whole practice in one journey, in a real browser: the practice admin sets up a session
and opens it to online booking, a receptionist books a patient into it, and the patient signs
in, sees the appointment and cancels it online, after which the slot is free again for the
receptionist. axe-core checks each page (nothing serious or critical).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from opengp.services import appointments as booking
from tests.browser.practice import Practice, first_sign_in
from tests.browser.test_admin_journeys import (
    SLOT_TYPE,
    admin,
    admin_practice,
    clinician,
    create_book,
    fill_session,
    make_slots,
    serious,
)
from tests.functional.appointment_helpers import ADMIN, ORG


@pytest.fixture(scope="module")
def whole_practice(
    tmp_path_factory: pytest.TempPathFactory, practice: Practice
) -> Iterator[Practice]:
    with admin_practice(tmp_path_factory.mktemp("whole-practice")) as running:
        yield running


def receptionist_chooses(page: Page, practice: Practice, name: str, days_ahead: int) -> str:
    """From the staff home, as a receptionist: find Jo Smith and list `name`'s free times
    `days_ahead` days from today; the first one's slot id."""
    page.goto(f"{practice.url}/staff")
    page.get_by_role("link", name="Find a patient and book an appointment").click()
    page.get_by_label("NHS number").fill("943 476 5919")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Jo Smith").click()
    page.get_by_role("button", name="Book an appointment").click()
    day = page.get_by_label("Day").locator("option").nth(days_ahead).get_attribute("value")
    page.get_by_label("Day").select_option(day or "")
    page.get_by_label("Clinician").select_option(label=name)
    page.get_by_role("button", name="Show free times").click()
    return page.locator('input[name="slot"]').first.get_attribute("value") or ""


def test_admin_sets_up_reception_books_and_the_patient_cancels_online(
    whole_practice: Practice, browser: Browser
) -> None:
    found: dict[str, list[dict[str, Any]]] = {}
    name = clinician(whole_practice, "whole")

    office = browser.new_context(bypass_csp=True)  # for axe-core's script
    page = office.new_page()
    first_sign_in(page, whole_practice, "staff", admin(whole_practice, "pat.whole"))
    page.get_by_role("link", name="Appointment books and sessions").click()
    page.get_by_role("button", name="Create an appointment book").click()
    create_book(page, name)
    page.get_by_role("button", name="Add a session").click()
    fill_session(page)  # every day 09:00-10:00, open online 14 days ahead
    make_slots(page, "2")
    page.goto(f"{whole_practice.url}/staff/practice/online-booking")
    page.get_by_label(SLOT_TYPE).check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Online booking settings saved")).to_be_visible()
    found["settings"] = serious(page)
    office.close()

    desk = browser.new_context(bypass_csp=True)
    page = desk.new_page()
    reception = whole_practice.account(
        "robin.whole", "staff", "Robin Reception", roles=["R8009"], organization_id=ORG
    )
    first_sign_in(page, whole_practice, "staff", reception)
    slot_id = receptionist_chooses(page, whole_practice, name, days_ahead=3)
    found["choose"] = serious(page)
    page.locator(f'input[value="{slot_id}"]').check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Book appointment").click()
    expect(page.get_by_role("heading", name="Appointment booked")).to_be_visible()
    found["booked"] = serious(page)

    home = browser.new_context(bypass_csp=True)
    phone = home.new_page()
    phone.set_viewport_size({"width": 375, "height": 800})
    jo = whole_practice.account("jo.whole", "patient", "Jo Smith", fhir_user="Patient/pat-1")
    first_sign_in(phone, whole_practice, "patient", jo)
    phone.get_by_role("link", name="Your appointments").click()
    expect(phone.get_by_text(name).first).to_be_visible()
    found["patient appointments"] = serious(phone)
    phone.get_by_role("link", name="Cancel this appointment").first.click()
    phone.get_by_label("I am feeling better").check()
    phone.get_by_role("button", name="Cancel appointment").click()
    expect(phone.get_by_role("heading", name="Appointment cancelled")).to_be_visible()
    found["patient cancelled"] = serious(phone)
    home.close()

    held = booking.patient_appointments(whole_practice.store, ADMIN, "pat-1").upcoming
    assert [a.status for a in held if slot_id in a.slot_ids] == ["cancelled"]
    again = receptionist_chooses(page, whole_practice, name, days_ahead=3)
    assert again == slot_id  # the receptionist is offered the same time again
    desk.close()
    assert {step: v for step, v in found.items() if v} == {}
