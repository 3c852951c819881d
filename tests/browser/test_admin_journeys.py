"""The practice admin screens in a real browser: a practice admin signs in, creates an
appointment book and a session, makes slots, blocks one and releases it, then reads the
weekly report and downloads it as CSV. axe-core checks each page (nothing serious or
critical). `admin_tour` visits every admin page in each state, for the accessibility scan
and `make screenshots`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from opengp.access.accounts import CreatedUser
from opengp.services.appointments import times
from opengp.services.appointments.report import CSV_HEADER
from tests.browser.practice import Practice, axe_findings, first_sign_in, served
from tests.functional.appointment_helpers import ORG, resources

SEVERE = ("serious", "critical")
SLOT_TYPE = "Routine GP appointment"


@contextmanager
def admin_practice(workdir: Path) -> Iterator[Practice]:
    """A served practice with its clinicians and sites, and no appointment book yet."""
    with served(workdir) as practice:
        with practice.store.writing() as tx:
            tx.create_many(resources())
        yield practice


@pytest.fixture(scope="module")
def practice_admin(
    tmp_path_factory: pytest.TempPathFactory, practice: Practice
) -> Iterator[Practice]:
    with admin_practice(tmp_path_factory.mktemp("practice-admin")) as running:
        yield running


def admin(practice: Practice, username: str) -> CreatedUser:
    return practice.account(username, "staff", "Pat Manager", roles=["R8008"], organization_id=ORG)


def clinician(practice: Practice, tag: str) -> str:
    """A new clinician of the practice (their own book, so tours never meet); their name."""
    name = f"Dr {tag.capitalize()} Test"
    role = {
        "resourceType": "PractitionerRole",
        "id": f"role-{tag}",
        "practitioner": {"display": name},
        "organization": {"reference": f"Organization/{ORG}"},
    }
    with practice.store.writing() as tx:
        tx.create_many([role])
    return name


def serious(page: Page) -> list[dict[str, Any]]:
    return [v for v in axe_findings(page) if v.get("impact") in SEVERE]


def create_book(page: Page, name: str) -> None:
    page.get_by_label("Clinician").select_option(label=name)
    page.get_by_label("Site").select_option(label="Main surgery")
    page.get_by_role("button", name="Create appointment book").click()
    expect(page.get_by_role("heading", name=f"Appointment book: {name}")).to_be_visible()


def fill_session(page: Page) -> None:
    """Every day, 09:00 to 10:00 in 15-minute routine face-to-face slots."""
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        page.get_by_label(day).check()
    page.get_by_label("Start time").fill("09:00")
    page.get_by_label("End time").fill("10:00")
    page.get_by_label("Slot length in minutes").fill("15")
    page.get_by_label("Type of appointment").fill(SLOT_TYPE)
    page.get_by_label("National Slot Type Category").select_option(
        label="General Consultation Routine"
    )
    page.get_by_label("Face to face").check()
    page.get_by_label("Days ahead patients may book online (optional)").fill("14")
    page.get_by_role("button", name="Add session").click()
    expect(page.get_by_text("Session added")).to_be_visible()


def make_slots(page: Page, weeks: str) -> None:
    page.get_by_label("How many weeks ahead?").fill(weeks)
    page.get_by_role("button", name="Make slots").click()
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("new slot")


def show_tomorrow(page: Page) -> None:
    """Tomorrow's slots (today's may all have started)."""
    tomorrow = times.local_day(times.now_utc()) + timedelta(days=1)
    page.locator("#day").fill(str(tomorrow.day))
    page.locator("#day-month").fill(str(tomorrow.month))
    page.locator("#day-year").fill(str(tomorrow.year))
    page.get_by_role("button", name="Show slots").click()


def test_an_admin_sets_up_a_book_blocks_a_slot_and_reads_the_report(
    practice_admin: Practice, browser: Browser
) -> None:
    name = clinician(practice_admin, "journey")
    context = browser.new_context(bypass_csp=True, accept_downloads=True)  # axe-core's script
    page = context.new_page()
    first_sign_in(page, practice_admin, "staff", admin(practice_admin, "pat.journey"))
    found: dict[str, list[dict[str, Any]]] = {"home": serious(page)}

    page.get_by_role("link", name="Appointment books and sessions").click()
    found["books"] = serious(page)
    page.get_by_role("button", name="Create an appointment book").click()
    create_book(page, name)
    found["book"] = serious(page)
    page.get_by_role("button", name="Add a session").click()
    page.get_by_role("button", name="Add session").click()  # nothing filled in
    expect(page.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(
        page.get_by_role("link", name="Select the days of the week the session runs")
    ).to_be_visible()
    found["session errors"] = serious(page)
    fill_session(page)
    expect(page.get_by_text("09:00 to 10:00", exact=True)).to_be_visible()
    make_slots(page, "2")
    banner = page.locator(".nhsuk-notification-banner").inner_text()
    made = int(banner.split(" new slot")[0].split()[-1])
    assert 48 <= made <= 56  # 14 days of 4 slots, less today's that have started
    found["generated"] = serious(page)
    make_slots(page, "2")  # again: nothing new
    expect(page.get_by_text("0 new slots made")).to_be_visible()
    expect(page.get_by_text(f"{made} were already in the book")).to_be_visible()

    page.get_by_role("link", name="Block or release this clinician's slots").click()
    show_tomorrow(page)
    found["day"] = serious(page)
    first = page.locator('input[name="slot"]').first
    slot_id = first.get_attribute("value")
    first.check()
    page.get_by_label("Why are they blocked? (needed to block)").fill("Practice meeting")
    page.get_by_role("button", name="Block chosen slots").click()
    expect(page.get_by_role("heading", name="Block 1 slot?")).to_be_visible()
    found["confirm"] = serious(page)
    page.get_by_role("button", name="Block slots").click()
    expect(page.get_by_text("1 slot blocked")).to_be_visible()
    chosen = page.locator(f'input[value="{slot_id}"]')
    expect(chosen.locator("xpath=..")).to_contain_text("(Blocked)")
    found["blocked"] = serious(page)
    chosen.check()
    page.get_by_role("button", name="Release chosen slots").click()
    expect(page.get_by_role("heading", name="Release 1 slot?")).to_be_visible()
    page.get_by_role("button", name="Release slots").click()
    expect(page.get_by_text("1 slot released")).to_be_visible()
    expect(page.locator(f'input[value="{slot_id}"]').locator("xpath=..")).to_contain_text("(Free)")

    page.goto(f"{practice_admin.url}/staff")
    page.get_by_role("link", name="Weekly appointments report").click()
    expect(page.get_by_role("heading", name="Weekly appointments report")).to_be_visible()
    expect(page.locator('svg.opengp-chart[role="img"]')).to_have_count(4)
    found["report"] = serious(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    saved = download.value
    assert saved.suggested_filename.startswith("appointments-Y00001-week-")
    assert saved.suggested_filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(Path(saved.path()).read_text())))
    assert tuple(rows[0]) == CSV_HEADER
    assert {name: v for name, v in found.items() if v} == {}
    context.close()


def admin_tour(page: Page, practice: Practice, tag: str) -> Iterator[str]:
    """Visit every practice admin screen, naming each as it comes: the books, a new book
    (blank, with errors), a book, a new session (blank, with errors), slots made, a day's
    slots (with errors), blocking (are you sure, done), online booking (and its errors), and
    the weekly report (and a week that is not one)."""
    name = clinician(practice, tag)
    first_sign_in(page, practice, "staff", admin(practice, f"pat.{tag}"))
    yield "admin-home"
    page.get_by_role("link", name="Appointment books and sessions").click()
    yield "admin-books"
    page.get_by_role("button", name="Create an appointment book").click()
    yield "admin-book-new"
    page.get_by_role("button", name="Create appointment book").click()
    page.get_by_text("There is a problem").wait_for()
    yield "admin-book-new-errors"
    create_book(page, name)
    yield "admin-book"
    page.get_by_role("button", name="Add a session").click()
    yield "admin-session-new"
    page.get_by_label("End time").fill("8:00")
    page.get_by_role("button", name="Add session").click()
    page.get_by_text("There is a problem").wait_for()
    yield "admin-session-new-errors"
    fill_session(page)
    make_slots(page, "1")
    yield "admin-book-slots-made"
    page.get_by_role("link", name="Block or release this clinician's slots").click()
    show_tomorrow(page)
    yield "admin-slots"
    page.get_by_role("button", name="Block chosen slots").click()
    page.get_by_text("There is a problem").wait_for()
    yield "admin-slots-errors"
    page.locator('input[name="slot"]').first.check()
    page.get_by_label("Why are they blocked? (needed to block)").fill("Training")
    page.get_by_role("button", name="Block chosen slots").click()
    yield "admin-slots-confirm"
    page.get_by_role("button", name="Block slots").click()
    page.get_by_text("1 slot blocked").wait_for()
    yield "admin-slots-blocked"
    page.goto(f"{practice.url}/staff/practice/online-booking")
    yield "admin-online-booking"
    page.get_by_label("Cancellation cut-off in hours").fill("a day")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("There is a problem").wait_for()
    yield "admin-online-booking-errors"
    page.goto(f"{practice.url}/staff/practice/report")
    yield "admin-report"
    page.goto(f"{practice.url}/staff/practice/report?week=not-a-week")
    yield "admin-report-errors"
    page.get_by_role("button", name="Sign out").click()
