"""Whole journeys in a real browser: staff and patients sign in for the first time (one-time
password, security code, new password), use their area, and sign out."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.browser.practice import (
    NEW_PASSWORD,
    Practice,
    fill_sign_in,
    first_sign_in,
    security_code,
)


def test_a_gp_signs_in_for_the_first_time_and_out_again(
    practice: Practice, browser: Browser
) -> None:
    user = practice.staff("dr.shah")
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []

    def note(message: ConsoleMessage) -> None:
        # The NHS.UK CSS names the Frutiger font on assets.nhs.uk, which our policy refuses
        # (self-hosted assets only): the pages fall back to Arial. Nothing else may fail.
        if message.type == "error" and "assets.nhs.uk" not in message.text:
            problems.append(message.text)

    page.on("console", note)
    page.goto(practice.url)
    page.get_by_role("link", name="Practice staff").click()
    page.wait_for_url(f"{practice.url}/staff/sign-in")
    fill_sign_in(page, user.username, user.one_time_password, security_code(user))
    expect(page.get_by_role("heading", name="Create a new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Enter your new password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password and continue").click()
    page.wait_for_url(f"{practice.url}/staff")
    expect(page.get_by_role("heading", level=1)).to_have_text("Practice home")
    expect(page.get_by_role("navigation", name="Your account")).to_contain_text("Dr Amira Shah")
    # The page's own script ran under the CSP nonce, and the NHS.UK components started.
    assert page.evaluate("document.body.classList.contains('nhsuk-frontend-supported')")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You have signed out")).to_be_visible()
    page.goto(f"{practice.url}/staff")
    page.wait_for_url(f"{practice.url}/staff/sign-in")
    # Next time: the new password and the next code go straight to the practice home.
    fill_sign_in(page, user.username, NEW_PASSWORD, security_code(user, steps_ahead=1))
    page.wait_for_url(f"{practice.url}/staff")
    assert problems == []
    context.close()


def test_a_patient_signs_in_and_out_without_javascript(
    practice: Practice, browser: Browser
) -> None:
    user = practice.patient("jo.bloggs", "Jo Bloggs")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{practice.url}/patient")
    page.wait_for_url(f"{practice.url}/patient/sign-in")
    first_sign_in(page, practice, "patient", user)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your GP services")
    expect(page.get_by_text("You are signed in as Jo Bloggs")).to_be_visible()
    # The staff area is not theirs.
    page.goto(f"{practice.url}/staff")
    expect(page.get_by_text("which cannot open these pages")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You have signed out")).to_be_visible()
    context.close()


def test_mistakes_are_summarised_and_each_links_to_its_field(
    practice: Practice, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{practice.url}/staff/sign-in")
    page.get_by_role("button", name="Sign in").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_be_focused()  # NHS.UK frontend moves focus to the summary
    expect(page).to_have_title("Error: Sign in \u2013 OpenGP for practice staff")
    summary.get_by_role("link", name="Enter your username").click()
    expect(page.get_by_label("Username")).to_be_focused()
    fill_sign_in(page, "nobody.here", "wrong password 123", "123456")
    expect(summary).to_contain_text("The username or password is not right")
    context.close()
