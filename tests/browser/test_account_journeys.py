"""Account management in a real browser against a real server: Systems Support adds a staff
account, and that account signs in with the one-time password shown once; the account
pages pass axe-core (WCAG 2.2 A and AA) and reflow at phone width."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from opengp.access.accounts import CreatedUser
from tests.browser.practice import Practice, first_sign_in
from tests.browser.test_reception_journeys import scan


def manager(practice: Practice, username: str) -> CreatedUser:
    return practice.account(username, "staff", "Sam Support", roles=["R8015"])


def add_account(page: Page, practice: Practice, username: str) -> tuple[str, str]:
    """Fill the new-account form; the one-time password and authenticator key shown."""
    page.goto(f"{practice.url}/staff/accounts")
    page.get_by_role("button", name="Add a staff account").click()
    page.get_by_label("Full name").fill("Dr Asha Patel")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Clinical Practitioner Access Role (R8000)").check()
    page.get_by_role("button", name="Add account").click()
    page.get_by_role("heading", name="Account created").wait_for()
    return (
        page.locator("#one-time-password").inner_text(),
        page.locator("#authenticator-key").inner_text(),
    )


def test_an_added_account_signs_in_with_its_one_time_password(
    practice: Practice, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    first_sign_in(page, practice, "staff", manager(practice, "support.journey"))
    page.get_by_role("link", name="Staff accounts").click()
    password, key = add_account(page, practice, "asha.journey")
    page.get_by_role("button", name="Sign out").click()

    newcomer = CreatedUser("", "asha.journey", password, totp_secret=key)
    first_sign_in(page, practice, "staff", newcomer)
    assert page.get_by_text("Dr Asha Patel").first.is_visible()
    # Not Systems Support: no account screens for them.
    assert page.get_by_role("link", name="Staff accounts").count() == 0
    context.close()


def account_tour(page: Page, practice: Practice, tag: str) -> Iterator[str]:
    """Every account page, in the states a user meets it."""
    first_sign_in(page, practice, "staff", manager(practice, f"support.{tag}"))
    page.goto(f"{practice.url}/staff/accounts")
    yield "accounts"
    page.goto(f"{practice.url}/staff/accounts/new")
    yield "new account"
    page.get_by_role("button", name="Add account").click()
    page.get_by_role("heading", name="There is a problem").wait_for()
    yield "new account with problems"
    add_account(page, practice, f"new.{tag}")
    yield "one-time password"
    page.goto(f"{practice.url}/staff/accounts")
    row = page.get_by_role("row", name=re.compile(re.escape(f"new.{tag}")))
    row.get_by_role("link").click()
    yield "account"
    page.get_by_role("link", name="Disable this account").click()
    yield "disable: are you sure"
    page.get_by_role("button", name="Yes, disable the account").click()
    page.get_by_text("Account disabled").wait_for()
    yield "account disabled"
    page.goto(f"{practice.url}/staff/accounts/online-access")
    yield "find a patient"
    page.get_by_label("NHS number").fill("123")
    page.get_by_role("button", name="Find patient").click()
    yield "find a patient with problems"


@pytest.mark.parametrize("width", [320, 1280])
def test_the_account_screens_pass_axe_and_reflow(
    practice: Practice, browser: Browser, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    page = context.new_page()
    seen, severe = scan(page, account_tour(page, practice, f"axe{width}"), width)
    context.close()
    assert len(seen) == 9
    assert severe == []
