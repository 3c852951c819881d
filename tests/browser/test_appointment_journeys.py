"""A patient books an appointment online and cancels it, in a real browser; axe-core checks
each page of the journey (nothing serious or critical)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import Browser, Page, expect

from opengp.services import appointments as booking
from opengp.services.appointments import PracticeSettings
from tests.browser.practice import Practice, axe_findings, first_sign_in
from tests.functional.appointment_helpers import ADMIN, ORG, ROUTINE, seed


def serious(page: Page) -> list[dict[str, Any]]:
    return [v for v in axe_findings(page) if v.get("impact") in ("serious", "critical")]


def test_a_patient_books_and_cancels_online(practice: Practice, browser: Browser) -> None:
    seed(practice.store, weeks=3, now=datetime.now(UTC))
    online = PracticeSettings(online_slot_types=frozenset({ROUTINE.slot_type}))
    booking.save_practice_settings(practice.store, ADMIN, ORG, online)
    user = practice.account("jo.smith.online", "patient", "Jo Smith", fhir_user="Patient/pat-1")
    context = browser.new_context(bypass_csp=True)  # for axe-core's script
    page = context.new_page()
    first_sign_in(page, practice, "patient", user)
    found: dict[str, list[dict[str, Any]]] = {}

    page.get_by_role("link", name="Your appointments").click()
    found["appointments"] = serious(page)
    page.get_by_role("button", name="Book an appointment").click()
    found["type"] = serious(page)
    page.get_by_role("button", name="Continue").click()  # nothing chosen: the error
    expect(page.get_by_role("heading", name="There is a problem")).to_be_visible()
    found["type error"] = serious(page)
    page.get_by_label(ROUTINE.slot_type).check()
    page.get_by_role("button", name="Continue").click()
    found["time"] = serious(page)
    page.locator('input[name="slot"]').last.check()
    slot_id = page.locator('input[name="slot"]').last.get_attribute("value")
    page.get_by_role("button", name="Continue").click()
    found["check"] = serious(page)
    page.get_by_role("button", name="Book appointment").click()
    expect(page.get_by_role("heading", name="Appointment booked")).to_be_visible()
    found["booked"] = serious(page)

    page.get_by_role("link", name="View your appointments").click()
    page.get_by_role("link", name="Cancel this appointment").click()
    found["cancel"] = serious(page)
    page.get_by_label("I am feeling better").check()
    page.get_by_role("button", name="Cancel appointment").click()
    expect(page.get_by_role("heading", name="Appointment cancelled")).to_be_visible()
    found["cancelled"] = serious(page)
    assert {name: v for name, v in found.items() if v} == {}

    assert slot_id is not None
    page.goto(f"{practice.url}/patient/appointments/book/time?type={ROUTINE.slot_type}")
    expect(page.locator(f'input[value="{slot_id}"]')).to_have_count(1)  # free again
    context.close()
